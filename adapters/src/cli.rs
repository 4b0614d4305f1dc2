//! Flag parsing as Go's pflag does it, with one-line errors.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Parser;

use crate::logging::KlogFlags;

/// Go's `strconv.ParseBool`, which pflag uses for `--flag=value` booleans.
pub fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("expected a boolean: true, false, 1, 0, t, f".to_owned()),
    }
}

/// An optional `host:port` flag: empty means off, as Kubernetes components' bind-address flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

impl FromStr for BindAddress {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.is_empty() {
            return Ok(Self(None));
        }
        value
            .parse()
            .map(|address| Self(Some(address)))
            .map_err(|_| {
                "expected host:port such as 127.0.0.1:9090 or [::1]:9090, or empty for off"
                    .to_owned()
            })
    }
}

/// A TCP port to listen on; 0 (any port) is refused, as nothing would know where to connect.
pub fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err("expected a port number from 1 to 65535".to_owned()),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("true", true)]
    #[case("True", true)]
    #[case("TRUE", true)]
    #[case("t", true)]
    #[case("1", true)]
    #[case("false", false)]
    #[case("F", false)]
    #[case("0", false)]
    fn parses_booleans_as_go_does(#[case] value: &str, #[case] expected: bool) {
        assert_eq!(parse_go_bool(value), Ok(expected));
    }

    #[rstest]
    #[case("yes")]
    #[case("")]
    #[case("tRuE")]
    fn refuses_what_go_refuses(#[case] value: &str) {
        assert!(parse_go_bool(value).is_err());
    }
}
