//! The flags of the original `apiserver-proxy-pod-webhook --help`, same names and defaults, plus
//! the klog flags the sidecar documents (the original accepted them too).

use std::path::PathBuf;
use std::time::Duration;

use adapters::cli::HELP_TEMPLATE;
use adapters::flag_values::{parse_duration, parse_port};
use adapters::http::server::Config;
use adapters::logging::KlogFlags;
use adapters::metrics::flags::MetricsFlags;
use clap::{ArgAction, Parser};
use domain::duration::format_go_duration;
use domain::webhook::fqdn::ApiserverFqdn;
use domain::webhook::shutdown;

#[derive(Debug, Parser)]
#[command(
    name = "apiserver-proxy-pod-webhook",
    about = "A mutating admission webhook that adds KUBERNETES_SERVICE_HOST=<--apiserver-fqdn> to every container of new Pods.",
    version,
    // `--version` is the field below: clap's own flag would also take -V, which pflag refuses.
    disable_version_flag = true,
    help_template = HELP_TEMPLATE,
    // pflag lets a later occurrence of a flag override an earlier one.
    args_override_self = true
)]
pub struct Flags {
    /// apiserver-fqdn is the fully qualified domain name of the Kube-API Server e.g. example.com.
    #[arg(long = "apiserver-fqdn", value_name = "string", required = true)]
    pub apiserver_fqdn: ApiserverFqdn,

    /// cert-dir is the directory that contains the server key and certificate.
    #[arg(long = "cert-dir", value_name = "string", required = true)]
    pub cert_dir: PathBuf,

    /// [optional] cert-name is the server certificate name.
    #[arg(long = "cert-name", value_name = "string", default_value = "tls.crt")]
    pub cert_name: String,

    /// [optional] client-ca-name is the CA certificate name which server used to verify remote(client)'s certificate. Defaults to "", which means server does not verify client's certificate.
    #[arg(long = "client-ca-name", value_name = "string", default_value = "")]
    pub client_ca_name: String,

    /// [optional] host is the address that the server will listen on. Defaults to "" - all addresses.
    #[arg(long, value_name = "string", default_value = "")]
    pub host: String,

    /// [optional] key-name is the server key name.
    #[arg(long = "key-name", value_name = "string", default_value = "tls.key")]
    pub key_name: String,

    /// [optional] port is the port number that the server will serve.
    #[arg(long, value_name = "int", default_value = "9443", value_parser = parse_port)]
    pub port: u16,

    /// [not in the original] shutdown-delay-duration is how long, after SIGTERM, the server still accepts and answers reviews, each answer closing its connection, before it stops: until the API server has dropped this endpoint, it may still call it. A second signal ends the delay at once. 0s stops at once, as the original did. At most 1m0s: the delay and the 10s given to requests in flight after it must fit the Pod's terminationGracePeriodSeconds (30s by default).
    #[arg(long = "shutdown-delay-duration", value_name = "duration", default_value = "5s", value_parser = parse_shutdown_delay)]
    pub shutdown_delay: Duration,

    #[command(flatten)]
    pub metrics: MetricsFlags,

    #[command(flatten)]
    pub klog: KlogFlags,

    /// Print the version and exit
    #[arg(long, action = ArgAction::Version)]
    pub version: (),
}

/// A Go duration of at most the domain's [`shutdown::MAX_DELAY`].
fn parse_shutdown_delay(value: &str) -> Result<Duration, String> {
    shutdown::check_delay(parse_duration(value)?).map_err(|error| error.to_string())
}

impl Flags {
    /// The flags as one log line, so the start of every log says what the process was asked.
    pub fn summary(&self) -> String {
        format!(
            "apiserver-fqdn={} cert-dir={} cert-name={} key-name={} client-ca-name={:?} host={:?} port={} shutdown-delay-duration={} metrics-bind-address={:?}",
            self.apiserver_fqdn,
            self.cert_dir.display(),
            self.cert_name,
            self.key_name,
            self.client_ca_name,
            self.host,
            self.port,
            format_go_duration(self.shutdown_delay),
            self.metrics
                .bind_address
                .0
                .map(|address| address.to_string())
                .unwrap_or_default()
        )
    }

    pub fn server_config(self) -> Config {
        Config {
            fqdn: self.apiserver_fqdn,
            cert_dir: self.cert_dir,
            cert_name: self.cert_name,
            key_name: self.key_name,
            client_ca_name: self.client_ca_name,
            host: self.host,
            port: self.port,
            shutdown_delay: self.shutdown_delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use rstest::rstest;

    const REQUIRED: [&str; 2] = ["--apiserver-fqdn=foo.bar.", "--cert-dir=/certs"];

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        Flags::try_parse_from(
            std::iter::once("apiserver-proxy-pod-webhook").chain(args.iter().copied()),
        )
    }

    #[test]
    fn defaults_are_the_originals() {
        let config = parse(&REQUIRED).expect("valid").server_config();
        assert_eq!(config.fqdn.as_str(), "foo.bar.");
        assert_eq!(config.cert_dir, PathBuf::from("/certs"));
        assert_eq!(config.cert_name, "tls.crt");
        assert_eq!(config.key_name, "tls.key");
        assert_eq!(config.client_ca_name, "");
        assert_eq!(config.host, "");
        assert_eq!(config.port, 9443);
        assert_eq!(config.shutdown_delay, Duration::from_secs(5));
    }

    #[rstest]
    #[case("0s", Duration::ZERO)]
    #[case("0", Duration::ZERO)]
    #[case("1m0s", Duration::from_secs(60))]
    #[case("500ms", Duration::from_millis(500))]
    fn the_shutdown_delay_is_a_go_duration(#[case] text: &str, #[case] delay: Duration) {
        let flag = format!("--shutdown-delay-duration={text}");
        let flags = parse(&[&REQUIRED[..], &[flag.as_str()]].concat()).expect("valid");
        assert_eq!(flags.shutdown_delay, delay);
    }

    #[rstest]
    #[case::equals(&["--apiserver-fqdn=a.b", "--cert-dir=/c", "--port=8443", "--host=127.0.0.1", "--cert-name=s.crt", "--key-name=s.key", "--client-ca-name=ca.crt"])]
    #[case::separate(&["--apiserver-fqdn", "a.b", "--cert-dir", "/c", "--port", "8443", "--host", "127.0.0.1", "--cert-name", "s.crt", "--key-name", "s.key", "--client-ca-name", "ca.crt"])]
    fn every_flag_takes_both_pflag_forms(#[case] args: &[&str]) {
        let config = parse(args).expect("valid").server_config();
        assert_eq!(
            (
                config.fqdn.as_str(),
                config.port,
                config.host.as_str(),
                config.cert_name.as_str(),
                config.key_name.as_str(),
                config.client_ca_name.as_str()
            ),
            ("a.b", 8443, "127.0.0.1", "s.crt", "s.key", "ca.crt")
        );
    }

    #[test]
    fn metrics_are_opt_in() {
        assert_eq!(
            parse(&REQUIRED).expect("valid").metrics.bind_address.0,
            None
        );
        let flags = parse(&[&REQUIRED[..], &["--metrics-bind-address=127.0.0.1:9090"]].concat())
            .expect("valid");
        assert_eq!(
            flags.metrics.bind_address.0,
            Some("127.0.0.1:9090".parse().expect("an address"))
        );
    }

    #[test]
    fn a_later_flag_overrides_an_earlier_one_as_in_pflag() {
        let flags = parse(&[&REQUIRED[..], &["--port=1", "--port=2"]].concat()).expect("valid");
        assert_eq!(flags.port, 2);
    }

    #[test]
    fn klog_flags_are_accepted() {
        let flags =
            parse(&[&REQUIRED[..], &["-v", "2", "--logtostderr=true"]].concat()).expect("valid");
        assert_eq!(flags.klog.v, 2);
    }

    #[rstest]
    #[case(&["--port=0"], "--port", "1 to 65535")]
    #[case(&["--port=x"], "'x'", "port number")]
    #[case(&["--port=70000"], "70000", "port number")]
    #[case(&["--apiserver-fqdn=localhost"], "localhost", "at least two labels")]
    #[case(&["--apiserver-fqdn=Foo.Bar"], "Foo.Bar", "DNS-1123")]
    #[case(&["--shutdown-delay-duration=5"], "--shutdown-delay-duration", "Go duration")]
    #[case(&["--shutdown-delay-duration=-1s"], "-1s", "positive")]
    #[case(&["--shutdown-delay-duration=1h"], "'1h'", "at most 1m0s")]
    #[case(&["--shutdown-delay-duration=1m0.001s"], "'1m0.001s'", "terminationGracePeriodSeconds")]
    fn bad_values_name_the_flag_value_and_expectation(
        #[case] args: &[&str],
        #[case] named: &str,
        #[case] expected: &str,
    ) {
        let error = parse(&[&REQUIRED[..], args].concat()).expect_err("invalid");
        let line = adapters::cli::one_line(&error);
        assert!(line.contains(named) && line.contains(expected), "{line}");
        assert!(!line.contains('\n'));
    }

    #[rstest]
    #[case(&["--cert-dir=/c"], "--apiserver-fqdn")]
    #[case(&["--apiserver-fqdn=a.b"], "--cert-dir")]
    fn required_flags_are_named_when_missing(#[case] args: &[&str], #[case] missing: &str) {
        let error = parse(args).expect_err("missing");
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
        assert!(adapters::cli::one_line(&error).contains(missing));
    }

    #[test]
    fn version_is_long_only_as_v_is_klogs_verbosity() {
        let version = parse(&["--version"]).expect_err("prints the version");
        assert_eq!(version.kind(), ErrorKind::DisplayVersion);
        assert_eq!(
            version.to_string(),
            concat!(
                "apiserver-proxy-pod-webhook ",
                env!("CARGO_PKG_VERSION"),
                "\n"
            )
        );
        let error = parse(&[&REQUIRED[..], &["-V"]].concat()).expect_err("not a pflag flag");
        assert_eq!(error.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn help_names_the_version_first() {
        let help = parse(&["--help"]).expect_err("prints help").to_string();
        assert_eq!(
            help.lines().next(),
            Some(concat!(
                "apiserver-proxy-pod-webhook ",
                env!("CARGO_PKG_VERSION")
            ))
        );
    }

    #[test]
    fn unknown_flags_are_refused_by_name() {
        let error = parse(&[&REQUIRED[..], &["--frobnicate"]].concat()).expect_err("unknown");
        assert!(adapters::cli::one_line(&error).contains("--frobnicate"));
    }
}
