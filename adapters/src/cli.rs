//! Flag parsing as Go's pflag does it, with one-line errors.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

/// Go's `strconv.ParseBool`, which pflag uses for `--flag=value` booleans.
pub fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("expected a boolean: true, false, 1, 0, t, f".to_owned()),
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
