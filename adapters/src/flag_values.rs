//! Flag values as Go's pflag reads them. A module of its own, not part of `cli` (which starts the
//! program, logging included), so that every flag group (`cli`'s apps, klog's flags in
//! `logging`, the metrics address) uses them without importing the start.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Arg, ArgAction};
use domain::duration::parse_go_duration;

/// Go's `strconv.ParseBool`, which pflag uses for `--flag=value` booleans.
fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("expected a boolean: true, false, 1, 0, t, f".to_owned()),
    }
}

/// Makes an on/off flag (a `bool` field, clap's `SetTrue`) take pflag's forms: `--flag` and
/// `--flag=<bool>`, never `--flag <bool>` (pflag reads the next word as a positional). Every
/// flag struct names it once, `#[command(mut_args(go_boolean))]`, instead of each flag repeating
/// the attributes; it leaves every other flag, and a flag it already changed, as it is.
pub fn go_boolean(arg: Arg) -> Arg {
    if !matches!(arg.get_action(), ArgAction::SetTrue) {
        return arg;
    }
    let default = arg
        .get_default_values()
        .first()
        .cloned()
        .unwrap_or_else(|| "false".into());
    arg.action(ArgAction::Set)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .default_value(default)
        .value_parser(parse_go_bool)
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

/// A duration in Go's syntax (`5s`, `1m0s`, `500ms`), as a Kubernetes component's duration flag.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    parse_go_duration(value).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
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

    #[derive(Debug, Parser)]
    #[command(mut_args(go_boolean))]
    struct Flags {
        #[arg(long)]
        off: bool,
        #[arg(long, default_value = "true")]
        on: bool,
        #[arg(long, default_value_t = 0)]
        number: u8,
        word: Option<String>,
    }

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        Flags::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
    }

    #[rstest]
    #[case(&[], false, true)]
    #[case(&["--off", "--on"], true, true)]
    #[case(&["--off=true", "--on=false"], true, false)]
    #[case(&["--off=1", "--on=0"], true, false)]
    #[case(&["--off=T", "--on=F"], true, false)]
    fn bool_fields_take_pflag_forms_and_keep_their_defaults(
        #[case] args: &[&str],
        #[case] off: bool,
        #[case] on: bool,
    ) {
        let flags = parse(args).expect("valid");
        assert_eq!((flags.off, flags.on), (off, on));
    }

    #[test]
    fn a_separate_word_is_not_the_flags_value() {
        let flags = parse(&["--on", "false"]).expect("valid");
        assert!(flags.on);
        assert_eq!(flags.word.as_deref(), Some("false"));
    }

    #[test]
    fn a_bad_boolean_is_refused_and_other_flags_are_left_alone() {
        let error = parse(&["--off=yes"]).expect_err("not a Go boolean");
        assert!(error.to_string().contains("expected a boolean"), "{error}");
        assert_eq!(parse(&["--number", "3"]).expect("valid").number, 3);
    }
}
