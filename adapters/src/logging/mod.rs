//! Logging as klog does it, so operators' log pipelines keep parsing our lines, and the klog flags
//! both binaries accept.
//!
//! Verbosity: errors, warnings and info always; `--v=2` and above adds debug, `--v=4` and above
//! trace. Flags that have no meaning here are accepted and ignored (see docs/flags.md).

mod format;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use tracing::level_filters::LevelFilter;
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::flag_values::go_boolean;
pub use format::Klog;

/// The klog flags of the original `--help`, same names and defaults.
#[derive(Debug, Clone, Args)]
#[command(mut_args(go_boolean))]
pub struct KlogFlags {
    /// If true, adds the file directory to the header
    #[arg(long = "add_dir_header", alias = "add-dir-header")]
    pub add_dir_header: bool,

    /// log to standard error as well as files
    #[arg(long = "alsologtostderr")]
    pub alsologtostderr: bool,

    /// when logging hits line file:N, emit a stack trace (accepted, no effect: Rust has no such hook)
    #[arg(
        long = "log_backtrace_at",
        alias = "log-backtrace-at",
        value_name = "traceLocation",
        default_value = ":0"
    )]
    pub log_backtrace_at: String,

    /// If non-empty, write log files in this directory
    #[arg(
        long = "log_dir",
        alias = "log-dir",
        value_name = "string",
        default_value = ""
    )]
    pub log_dir: String,

    /// If non-empty, use this log file
    #[arg(
        long = "log_file",
        alias = "log-file",
        value_name = "string",
        default_value = ""
    )]
    pub log_file: String,

    /// Defines the maximum size a log file can grow to. Unit is megabytes. If the value is 0, the maximum file size is unlimited. (accepted, no effect: files are not rotated)
    #[arg(
        long = "log_file_max_size",
        alias = "log-file-max-size",
        value_name = "uint",
        default_value_t = 1800
    )]
    pub log_file_max_size: u64,

    /// log to standard error instead of files
    #[arg(long = "logtostderr", default_value = "true")]
    pub logtostderr: bool,

    /// If true, avoid header prefixes in the log messages
    #[arg(long = "skip_headers", alias = "skip-headers")]
    pub skip_headers: bool,

    /// If true, avoid headers when opening log files (accepted, no effect: no file headers are written)
    #[arg(long = "skip_log_headers", alias = "skip-log-headers")]
    pub skip_log_headers: bool,

    /// logs at or above this threshold go to stderr (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL)
    #[arg(long = "stderrthreshold", value_name = "severity", default_value = "2", value_parser = parse_severity)]
    pub stderrthreshold: Level,

    /// number for the log level verbosity
    #[arg(short = 'v', long = "v", value_name = "Level", default_value_t = 0)]
    pub v: u8,

    /// [optional] log line format: text (klog, as the original) or json
    #[arg(
        long = "logging-format",
        value_name = "string",
        value_enum,
        default_value = "text"
    )]
    pub logging_format: LogFormat,

    /// comma-separated list of pattern=N settings for file-filtered logging (accepted, no effect)
    #[arg(long = "vmodule", value_name = "moduleSpec", default_value = "")]
    pub vmodule: String,
}

/// The shape of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// klog's text lines, as the original programs write them.
    Text,
    /// One JSON object per line, for log pipelines that index fields.
    Json,
}

/// klog's severities, by number or by name.
fn parse_severity(value: &str) -> Result<Level, String> {
    match value.to_ascii_uppercase().as_str() {
        "0" | "INFO" => Ok(Level::INFO),
        "1" | "WARNING" => Ok(Level::WARN),
        // Nothing logs FATAL here; at FATAL only errors would ever qualify.
        "2" | "ERROR" | "3" | "FATAL" => Ok(Level::ERROR),
        _ => Err("expected a severity: 0 (INFO), 1 (WARNING), 2 (ERROR) or 3 (FATAL)".to_owned()),
    }
}

/// The tracing level `--v` enables.
pub fn verbosity(v: u8) -> LevelFilter {
    match v {
        0..=1 => LevelFilter::INFO,
        2..=3 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path:?}: {cause}")]
pub struct LoggingError {
    pub path: PathBuf,
    pub cause: std::io::Error,
}

impl KlogFlags {
    /// Where log lines go besides stderr, as klog decides: only when `--logtostderr=false`.
    fn log_file_path(&self, program: &str) -> Option<PathBuf> {
        match (
            self.logtostderr,
            self.log_file.as_str(),
            self.log_dir.as_str(),
        ) {
            (true, _, _) => None,
            (false, file, _) if !file.is_empty() => Some(PathBuf::from(file)),
            (false, _, dir) if !dir.is_empty() => {
                Some(Path::new(dir).join(format!("{program}.log")))
            }
            // klog would pick a temporary directory; a container's stderr is the better default.
            (false, _, _) => None,
        }
    }

    /// One output in the chosen format.
    fn layer<W>(&self, klog: Klog, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer);
        match self.logging_format {
            LogFormat::Text => layer.event_format(klog).boxed(),
            LogFormat::Json => layer
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .boxed(),
        }
    }

    /// Installs the global subscriber. Call once, first thing in `main`.
    pub fn init(&self, program: &str) -> Result<(), LoggingError> {
        let level = verbosity(self.v);
        let format = Klog {
            skip_headers: self.skip_headers,
            add_dir_header: self.add_dir_header,
        };
        let file = match self.log_file_path(program) {
            Some(path) => Some(open_append(&path).map_err(|cause| LoggingError { path, cause })?),
            None => None,
        };
        // Everything goes to stderr unless a file takes it; then stderr gets what crosses the
        // threshold, or everything with --alsologtostderr.
        let stderr_level = if file.is_none() || self.alsologtostderr {
            level
        } else {
            level.min(self.stderrthreshold.into())
        };
        let mut outputs = vec![self
            .layer(format.clone(), std::io::stderr)
            .with_filter(stderr_level)
            .boxed()];
        if let Some(file) = file {
            outputs.push(
                self.layer(format, Arc::new(file))
                    .with_filter(level)
                    .boxed(),
            );
        }
        // kube's client logs every failed request at ERROR from its own trace layer; the
        // startup taint logs a failure once, when failing starts (docs/deploy.md), so kube's
        // own lines show only at -v=4 and above.
        let kube_too = self.v >= 4;
        let quiet_kube = tracing_subscriber::filter::filter_fn(move |event| {
            kube_too || !event.target().starts_with("kube_client")
        });
        tracing_subscriber::registry()
            .with(outputs)
            .with(quiet_kube)
            .init();
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rstest::rstest;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        klog: KlogFlags,
    }

    fn parse(args: &[&str]) -> Result<KlogFlags, clap::Error> {
        Flags::try_parse_from(std::iter::once("test").chain(args.iter().copied())).map(|f| f.klog)
    }

    #[test]
    fn defaults_are_klogs() {
        let flags = parse(&[]).unwrap();
        assert!(flags.logtostderr);
        assert!(!flags.alsologtostderr);
        assert_eq!(flags.v, 0);
        assert_eq!(flags.log_file_max_size, 1800);
        assert_eq!(flags.stderrthreshold, Level::ERROR);
        assert_eq!(flags.log_backtrace_at, ":0");
    }

    #[rstest]
    #[case(&["--v=2"], 2)]
    #[case(&["--v", "3"], 3)]
    #[case(&["-v", "4"], 4)]
    #[case(&["-v=5"], 5)]
    #[case(&["-v6"], 6)]
    fn verbosity_takes_every_pflag_form(#[case] args: &[&str], #[case] v: u8) {
        assert_eq!(parse(args).unwrap().v, v);
    }

    #[rstest]
    #[case(&["--logtostderr=false"], false)]
    #[case(&["--logtostderr"], true)]
    #[case(&["--logtostderr=0"], false)]
    fn booleans_take_go_forms(#[case] args: &[&str], #[case] value: bool) {
        assert_eq!(parse(args).unwrap().logtostderr, value);
    }

    #[test]
    fn every_klog_flag_of_the_seed_is_accepted() {
        let args = [
            "--add_dir_header",
            "--alsologtostderr",
            "--log_backtrace_at=main.go:1",
            "--log_dir=/tmp",
            "--log_file=/tmp/x.log",
            "--log_file_max_size=10",
            "--logtostderr=true",
            "--skip_headers",
            "--skip_log_headers",
            "--stderrthreshold=WARNING",
            "--v=2",
            "--vmodule=foo=3",
        ];
        let flags = parse(&args).unwrap();
        assert_eq!(flags.stderrthreshold, Level::WARN);
    }

    #[rstest]
    #[case(&[], LogFormat::Text)]
    #[case(&["--logging-format=json"], LogFormat::Json)]
    #[case(&["--logging-format", "text"], LogFormat::Text)]
    fn log_format_is_text_unless_asked(#[case] args: &[&str], #[case] format: LogFormat) {
        assert_eq!(parse(args).unwrap().logging_format, format);
    }

    #[test]
    fn a_bad_severity_is_named() {
        let error = parse(&["--stderrthreshold=LOUD"]).unwrap_err().to_string();
        assert!(
            error.contains("LOUD") && error.contains("--stderrthreshold"),
            "{error}"
        );
    }

    #[rstest]
    #[case(0, LevelFilter::INFO)]
    #[case(2, LevelFilter::DEBUG)]
    #[case(4, LevelFilter::TRACE)]
    fn v_maps_to_levels(#[case] v: u8, #[case] level: LevelFilter) {
        assert_eq!(verbosity(v), level);
    }

    #[test]
    fn files_only_when_not_logging_to_stderr() {
        let mut flags = parse(&["--log_dir=/var/log"]).unwrap();
        assert_eq!(flags.log_file_path("sidecar"), None);
        flags.logtostderr = false;
        assert_eq!(
            flags.log_file_path("sidecar"),
            Some(PathBuf::from("/var/log/sidecar.log"))
        );
        flags.log_file = "/tmp/a.log".into();
        assert_eq!(
            flags.log_file_path("sidecar"),
            Some(PathBuf::from("/tmp/a.log"))
        );
    }
}
