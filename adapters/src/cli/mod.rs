//! Flag parsing as Go's pflag does it, with one-line errors, and the start every binary shares.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

use crate::logging::KlogFlags;

/// Both binaries' `--help`: clap's layout under a first line that names the program and its
/// version, as the Go originals' usage line names the program.
pub const HELP_TEMPLATE: &str = "\
{name} {version}
{before-help}{about-with-newline}
{usage-heading} {usage}

{all-args}{after-help}";

/// What both binaries do once their flags are parsed: start logging from the klog flags, build
/// the runtime, run `serve`, and turn an error into one logged line (with its causes) and exit 1.
pub fn run_program<F, E>(
    program: &str,
    klog: &KlogFlags,
    runtime: std::io::Result<tokio::runtime::Runtime>,
    serve: F,
) -> ExitCode
where
    F: Future<Output = Result<ExitCode, E>>,
    E: Display,
{
    if let Err(error) = klog.init(program) {
        eprintln!("{program}: {error}");
        return ExitCode::FAILURE;
    }
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the process's arguments. `--help` prints usage and exits 0; a bad flag or value prints
/// one line that names it and what was expected, and exits 2 (as pflag does).
pub fn parse_flags<T: Parser>() -> T {
    match T::try_parse() {
        Ok(flags) => flags,
        Err(error) => exit_on(error),
    }
}

/// Refuses flags that parsed one by one but not together (`T::command().error(…)`), as
/// [`parse_flags`] refuses a bad value: one line, exit 2.
pub fn refuse(error: clap::Error) -> ! {
    exit_on(error)
}

fn exit_on(error: clap::Error) -> ! {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        #[allow(clippy::exit)] // The process has done what was asked: show help.
        {
            let _ = error.print();
            std::process::exit(0);
        }
    }
    eprintln!("{}", one_line(&error));
    #[allow(clippy::exit)] // Nothing has started yet; there is nothing to clean up.
    std::process::exit(2)
}

/// The first line of clap's message, which names the flag, the value and the reason; the rest
/// is usage hints that a log line does not need.
pub fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let first = rendered
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("error: invalid flags");
    match error.kind() {
        ErrorKind::UnknownArgument => format!("{first} (see --help for the flags)"),
        // clap lists the missing flags on the lines below; fold them into this one.
        ErrorKind::MissingRequiredArgument => match error.get(ContextKind::InvalidArg) {
            Some(ContextValue::Strings(flags)) => {
                format!("error: missing required flag {}", flags.join(", "))
            }
            _ => first.to_owned(),
        },
        // clap puts the accepted values on a line of their own.
        ErrorKind::InvalidValue => match error.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(values)) => {
                format!("{first}: expected one of {}", values.join(", "))
            }
            _ => first.to_owned(),
        },
        _ => first.to_owned(),
    }
}
