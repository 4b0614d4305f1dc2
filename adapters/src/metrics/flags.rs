//! The metrics flag both binaries accept.

use clap::Args;

use crate::flag_values::BindAddress;

/// Where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
#[derive(Debug, Clone, Args)]
pub struct MetricsFlags {
    /// [optional] address (e.g. 127.0.0.1:9090) to serve /metrics, /healthz and /readyz on, over plain HTTP. Empty: off.
    #[arg(
        long = "metrics-bind-address",
        value_name = "string",
        default_value = ""
    )]
    pub bind_address: BindAddress,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rstest::rstest;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        metrics: MetricsFlags,
    }

    fn parse(args: &[&str]) -> Result<BindAddress, clap::Error> {
        Flags::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .map(|flags| flags.metrics.bind_address)
    }

    #[rstest]
    #[case(&[], None)]
    #[case(&["--metrics-bind-address="], None)]
    #[case(&["--metrics-bind-address=127.0.0.1:9090"], Some("127.0.0.1:9090"))]
    #[case(&["--metrics-bind-address", "[::1]:9090"], Some("[::1]:9090"))]
    fn metrics_are_opt_in(#[case] args: &[&str], #[case] address: Option<&str>) {
        let expected = address.map(|address| address.parse().expect("an address"));
        assert_eq!(parse(args).expect("valid").0, expected);
    }

    #[rstest]
    #[case("localhost")]
    #[case("9090")]
    fn an_address_without_host_and_port_is_named(#[case] value: &str) {
        let error = parse(&[&format!("--metrics-bind-address={value}")]).expect_err("invalid");
        let line = crate::cli::one_line(&error);
        assert!(line.contains(value) && line.contains("host:port"), "{line}");
    }
}
