//! The flags of the original `apiserver-proxy-sidecar --help`, same names, defaults and meaning.

use std::path::PathBuf;
use std::time::Duration;

use adapters::cli::HELP_TEMPLATE;
use adapters::flag_values::{go_boolean, parse_port};
use adapters::logging::KlogFlags;
use adapters::metrics::flags::MetricsFlags;
use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory, Parser};
use domain::duration::format_go_duration;
use domain::sidecar::desired::{earlier_addresses, InterfaceName, ProxyAddress, ProxyAddresses};
use domain::sidecar::interval;
use domain::sidecar::taint::{NodeName, TaintKey};

#[derive(Debug, Parser)]
#[command(
    name = "apiserver-proxy-sidecar",
    about = "Keeps the API server proxy's address on a node-local interface, and optionally the iptables rules that skip conntrack for it.",
    version,
    // `--version` is the field below: clap's own flag would also take -V, which pflag refuses.
    disable_version_flag = true,
    help_template = HELP_TEMPLATE,
    mut_args(go_boolean),
    // pflag lets a later occurrence of a flag override an earlier one.
    args_override_self = true
)]
pub struct Flags {
    /// [optional] indicates whether created interface and iptables should be removed on exit.
    #[arg(long)]
    pub cleanup: bool,

    /// [optional] indicates if the sidecar should run as a daemon
    #[arg(long, default_value = "true")]
    pub daemon: bool,

    /// [optional] name of the interface to add address to.
    #[arg(long, value_name = "string", default_value = "lo")]
    pub interface: InterfaceName,

    /// ip-address on which the proxy is listening: one address, or one of each family for dual-stack (10.96.0.2,fd00::2). Ownership marks: each address is added with address protocol 97 (`proto 97` in `ip -d addr` of iproute2 6.3 or later), a missing interface is created as a dummy with the alias "apiserver-proxy" (`ip link show`); at start and on each interval, marked addresses no longer wanted and empty links with that alias other than --interface are removed.
    #[arg(long = "ip-address", value_name = "string", required = true)]
    pub ip_address: ProxyAddresses,

    /// [optional] addresses used before, removed from every interface at each sync, whoever added them (the Go original's, which carries no mark, after an --ip-address change): repeat the flag or give a comma-separated list; none may be an --ip-address.
    #[arg(long = "remove-address", value_name = "strings", value_delimiter = ',', action = ArgAction::Append)]
    pub remove_address: Vec<ProxyAddress>,

    /// [optional] port on which the proxy is listening.
    #[arg(long, value_name = "string", default_value = "443", value_parser = parse_port)]
    pub port: u16,

    /// [optional] indicates whether iptables rules should be setup. WARNING: under kube-proxy's iptables mode (and likely its nftables mode), Pods that reach the proxy through a Service's cluster IP then get no answer: the NOTRACK rule for the proxy's replies skips the conntrack entry that would undo kube-proxy's DNAT. Safe where clients connect to --ip-address itself, or the cluster IP is translated without conntrack (IPVS, socket-level load balancing). A warning is logged at start when kube-proxy's iptables-mode chains are present. See docs/iptables.md.
    #[arg(long = "setup-iptables")]
    pub setup_iptables: bool,

    /// [optional] interval to check for iptables rules. At least 100ms.
    #[arg(long = "sync-interval", value_name = "duration", default_value = "1m0s", value_parser = parse_sync_interval)]
    pub sync_interval: Duration,

    /// [optional] key of a NoSchedule taint the node registers with (kubelet --register-with-taints=KEY:NoSchedule), such as apiserver-proxy.networking.gardener.cloud/not-ready; removed from this node once the address (and the iptables rules, when on) is in place and, unless --wait-for-proxy=false, the proxy answers on --ip-address:--port; never put back. Needs --node-name and RBAC to get and patch nodes.
    #[arg(long = "startup-taint", value_name = "string", requires = "node_name")]
    pub startup_taint: Option<TaintKey>,

    /// [optional] with --startup-taint: remove the taint only once the proxy answers, that is once a TCP connection from the node to --ip-address:--port (each address when dual-stack) succeeds, as well as once the address is in place; the daemon probes every 250ms to 2s until it does. false: once the address is in place. The one-shot (--daemon=false) never waits: it removes the taint only if the proxy answers at its one probe, else leaves it to the daemon.
    #[arg(long = "wait-for-proxy", default_value = "true")]
    pub wait_for_proxy: bool,

    /// [optional] name of this node's Node object, for --startup-taint.
    #[arg(long = "node-name", value_name = "string", env = "NODE_NAME")]
    pub node_name: Option<NodeName>,

    /// [optional] kubeconfig for --startup-taint; the in-cluster configuration (service account) when unset.
    #[arg(long, value_name = "string")]
    pub kubeconfig: Option<PathBuf>,

    #[command(flatten)]
    pub metrics: MetricsFlags,

    #[command(flatten)]
    pub klog: KlogFlags,

    /// Print the version and exit
    #[arg(long, action = ArgAction::Version)]
    pub version: (),
}

fn parse_sync_interval(value: &str) -> Result<Duration, String> {
    interval::parse_sync_interval(value).map_err(|error| error.to_string())
}

impl Flags {
    /// The addresses `--remove-address` names, checked against `--ip-address`.
    pub fn earlier_addresses(&self) -> Result<Vec<ProxyAddress>, clap::Error> {
        earlier_addresses(&self.remove_address, &self.ip_address).map_err(|error| {
            Self::command().error(
                ErrorKind::ArgumentConflict,
                format!("invalid value for --remove-address: {error}"),
            )
        })
    }

    /// The flags as one log line, so the start of every log says what the process was asked.
    pub fn summary(&self) -> String {
        let mut summary = format!(
            "ip-address={} remove-address={} interface={} port={} setup-iptables={} sync-interval={} daemon={} cleanup={}",
            self.ip_address,
            self.remove_address
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(","),
            self.interface,
            self.port,
            self.setup_iptables,
            format_go_duration(self.sync_interval),
            self.daemon,
            self.cleanup
        );
        if let (Some(key), Some(node)) = (&self.startup_taint, &self.node_name) {
            let kubeconfig = match &self.kubeconfig {
                Some(path) => path.display().to_string(),
                None => "in-cluster".to_owned(),
            };
            summary.push_str(&format!(
                " startup-taint={key} node-name={node} kubeconfig={kubeconfig} wait-for-proxy={}",
                self.wait_for_proxy
            ));
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::FromArgMatches;
    use rstest::rstest;

    /// The flags as the command line alone gives them: `--node-name`'s `NODE_NAME` fallback is
    /// turned off, so a runner whose environment sets it (a CI job in a Pod) parses the same.
    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        let command = Flags::command().mut_arg("node_name", |arg| arg.env(None));
        let matches = command.try_get_matches_from(
            std::iter::once("apiserver-proxy-sidecar").chain(args.iter().copied()),
        )?;
        Flags::from_arg_matches(&matches)
    }

    #[test]
    fn node_name_falls_back_to_the_node_name_variable() {
        let command = Flags::command();
        let node_name = command
            .get_arguments()
            .find(|arg| arg.get_id() == "node_name")
            .expect("--node-name");
        assert_eq!(node_name.get_env(), Some(std::ffi::OsStr::new("NODE_NAME")));
    }

    #[test]
    fn defaults_are_the_originals() {
        let flags = parse(&["--ip-address=10.96.0.2"]).expect("valid");
        assert_eq!(flags.interface.as_str(), "lo");
        assert_eq!(flags.port, 443);
        assert_eq!(flags.sync_interval, Duration::from_secs(60));
        assert!(flags.daemon);
        assert!(!flags.cleanup);
        assert!(!flags.setup_iptables);
        assert_eq!(flags.metrics.bind_address.0, None);
    }

    #[test]
    fn the_metrics_flag_is_accepted() {
        let flags = parse(&[
            "--ip-address=10.96.0.2",
            "--metrics-bind-address=127.0.0.1:9090",
        ])
        .expect("valid");
        assert_eq!(
            flags.metrics.bind_address.0,
            Some("127.0.0.1:9090".parse().expect("an address"))
        );
    }

    #[test]
    fn a_later_flag_overrides_an_earlier_one_as_in_pflag() {
        let flags = parse(&[
            "--ip-address=10.96.0.1",
            "--ip-address=10.96.0.2",
            "--daemon=false",
            "--daemon=true",
            "-v=1",
            "-v=3",
        ])
        .expect("valid");
        assert_eq!(flags.ip_address.to_string(), "10.96.0.2");
        assert!(flags.daemon);
        assert_eq!(flags.klog.v, 3);
    }

    #[rstest]
    #[case(&["--cleanup"], true, true)]
    #[case(&["--cleanup=true"], true, true)]
    #[case(&["--cleanup=false"], false, true)]
    #[case(&["--daemon=false"], false, false)]
    #[case(&["--daemon=0", "--cleanup=1"], true, false)]
    fn booleans_take_go_forms(#[case] args: &[&str], #[case] cleanup: bool, #[case] daemon: bool) {
        let flags = parse(&[args, &["--ip-address", "10.96.0.2"]].concat()).expect("valid");
        assert_eq!((flags.cleanup, flags.daemon), (cleanup, daemon));
    }

    #[rstest]
    #[case("30s", 30_000)]
    #[case("1m0s", 60_000)]
    #[case("1h2m3.5s", 3_723_500)]
    #[case("500ms", 500)]
    fn sync_interval_is_a_go_duration(#[case] text: &str, #[case] millis: u64) {
        let flags = parse(&["--ip-address=10.96.0.2", "--sync-interval", text]).expect("valid");
        assert_eq!(flags.sync_interval, Duration::from_millis(millis));
    }

    #[rstest]
    #[case(&["--ip-address=10.96.0.2", "--sync-interval=0s"], "--sync-interval", "at least 100ms")]
    #[case(&["--ip-address=10.96.0.2", "--sync-interval=1ns"], "1ns", "at least 100ms")]
    #[case(&["--ip-address=10.96.0.2", "--sync-interval=1x"], "1x", "expected one of ns")]
    #[case(&["--ip-address=10.96.0.2/32"], "10.96.0.2/32", "plain IPv4 or IPv6")]
    #[case(&["--ip-address=fe80::1%eth0"], "fe80::1%eth0", "no zone")]
    #[case(&["--ip-address=10.96.0.2,10.96.0.3"], "10.96.0.2,10.96.0.3", "two addresses of one family")]
    #[case(&["--ip-address=10.96.0.2,fd00::2,10.96.0.3"], "10.96.0.2,fd00::2,10.96.0.3", "more than two")]
    #[case(&["--ip-address=10.96.0.2,"], "10.96.0.2,", "an empty element")]
    #[case(&["--ip-address=255.255.255.255"], "255.255.255.255", "broadcast route")]
    #[case(&["--ip-address=::ffff:10.96.0.2"], "::ffff:10.96.0.2", "IPv4-mapped")]
    #[case(&["--ip-address=10.96.0.2", "--interface=abcdefghijklmnop"], "abcdefghijklmnop", "1 to 15 bytes")]
    #[case(&["--ip-address=10.96.0.2", "--port=0"], "--port", "1 to 65535")]
    #[case(&["--ip-address=10.96.0.2", "--remove-address=10.96.0.9/32"], "10.96.0.9/32", "plain IPv4 or IPv6")]
    #[case(&["--ip-address=10.96.0.2", "--port=https"], "https", "port number")]
    #[case(&["--ip-address=10.96.0.2", "--cleanup=yes"], "yes", "boolean")]
    #[case(&["--ip-address=10.96.0.2", "--logging-format=xml"], "xml", "expected one of text, json")]
    fn bad_values_name_the_flag_value_and_expectation(
        #[case] args: &[&str],
        #[case] named: &str,
        #[case] expected: &str,
    ) {
        let error = parse(args).expect_err("invalid");
        let line = adapters::cli::one_line(&error);
        assert!(line.contains(named) && line.contains(expected), "{line}");
        assert!(!line.contains('\n'));
    }

    #[rstest]
    #[case::repeated(&["--remove-address=10.96.0.9", "--remove-address=10.96.0.8"], "10.96.0.9,10.96.0.8")]
    #[case::list(&["--remove-address=10.96.0.9,fd00::9"], "10.96.0.9,fd00::9")]
    #[case::absent(&[], "")]
    fn remove_address_is_repeatable_and_takes_lists(#[case] args: &[&str], #[case] shown: &str) {
        let flags = parse(&[&["--ip-address=10.96.0.2"][..], args].concat()).expect("valid");
        let earlier: Vec<String> = flags
            .earlier_addresses()
            .expect("none wanted")
            .iter()
            .map(|a| a.ip().to_string())
            .collect();
        assert_eq!(earlier.join(","), shown);
    }

    #[rstest]
    #[case(&["--remove-address=10.96.0.2"], "\"10.96.0.2\" is also an --ip-address")]
    #[case(&["--remove-address=10.96.0.9,fd00::2"], "\"fd00::2\" is also an --ip-address")]
    fn remove_address_refuses_a_wanted_address_in_one_line(
        #[case] args: &[&str],
        #[case] expected: &str,
    ) {
        let flags =
            parse(&[&["--ip-address=10.96.0.2,fd00::2"][..], args].concat()).expect("parses");
        let error = flags.earlier_addresses().expect_err("wanted");
        let line = adapters::cli::one_line(&error);
        assert!(
            line.contains("--remove-address") && line.contains(expected),
            "{line}"
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn the_startup_taint_is_off_by_default() {
        let flags = parse(&["--ip-address=10.96.0.2"]).expect("valid");
        assert_eq!(flags.startup_taint, None);
        assert_eq!(flags.kubeconfig, None);
        assert!(
            flags.wait_for_proxy,
            "waits for the proxy unless told not to"
        );
    }

    #[rstest]
    #[case(&[], true)]
    #[case(&["--wait-for-proxy"], true)]
    #[case(&["--wait-for-proxy=false"], false)]
    #[case(&["--wait-for-proxy=0"], false)]
    fn wait_for_proxy_takes_go_boolean_forms(#[case] args: &[&str], #[case] waits: bool) {
        let flags = parse(&[&["--ip-address=10.96.0.2"][..], args].concat()).expect("valid");
        assert_eq!(flags.wait_for_proxy, waits);
    }

    #[test]
    fn the_startup_taint_takes_a_label_key_and_the_node_name() {
        let flags = parse(&[
            "--ip-address=10.96.0.2",
            "--startup-taint=apiserver-proxy.networking.gardener.cloud/not-ready",
            "--node-name=node-2",
            "--kubeconfig=/etc/kubeconfig",
        ])
        .expect("valid");
        assert_eq!(
            flags.startup_taint.map(|key| key.to_string()).as_deref(),
            Some("apiserver-proxy.networking.gardener.cloud/not-ready")
        );
        assert_eq!(
            flags.node_name.map(|n| n.to_string()).as_deref(),
            Some("node-2")
        );
        assert_eq!(flags.kubeconfig, Some(PathBuf::from("/etc/kubeconfig")));
    }

    #[rstest]
    #[case(&["--startup-taint=not-ready"], "--node-name", "required")]
    #[case(&["--startup-taint=not ready", "--node-name=n"], "not ready", "is not a taint key")]
    #[case(&["--startup-taint=Not.Ready/x", "--node-name=n"], "Not.Ready/x", "DNS-1123 label")]
    #[case(&["--startup-taint=x", "--node-name=Node_2"], "Node_2", "is not a node name")]
    fn startup_taint_values_are_checked(
        #[case] args: &[&str],
        #[case] named: &str,
        #[case] expected: &str,
    ) {
        let error = parse(&[&["--ip-address=10.96.0.2"][..], args].concat()).expect_err("invalid");
        let line = adapters::cli::one_line(&error);
        assert!(line.contains(named) && line.contains(expected), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn ip_address_takes_one_address_of_each_family() {
        let flags = parse(&["--ip-address=10.96.0.2,fd00::2"]).expect("valid");
        let families: Vec<bool> = flags.ip_address.iter().map(|a| a.is_ipv6()).collect();
        assert_eq!(families, vec![false, true]);
    }

    #[test]
    fn ip_address_is_required() {
        assert_eq!(
            parse(&[]).expect_err("missing").kind(),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn version_is_long_only_as_v_is_klogs_verbosity() {
        let version = parse(&["--version"]).expect_err("prints the version");
        assert_eq!(version.kind(), ErrorKind::DisplayVersion);
        assert_eq!(
            version.to_string(),
            concat!("apiserver-proxy-sidecar ", env!("CARGO_PKG_VERSION"), "\n")
        );
        let error = parse(&[&["--ip-address=10.96.0.2"][..], &["-V"]].concat())
            .expect_err("not a pflag flag");
        assert_eq!(error.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn help_warns_about_setup_iptables_under_kube_proxys_iptables_mode() {
        let help = parse(&["--help"]).expect_err("prints help").to_string();
        let setup = help
            .split("--setup-iptables")
            .nth(1)
            .expect("--setup-iptables in --help");
        assert!(
            setup.contains("WARNING: under kube-proxy's iptables mode"),
            "{help}"
        );
        assert!(setup.contains("docs/iptables.md"), "{help}");
    }

    #[test]
    fn help_names_the_version_first() {
        let help = parse(&["--help"]).expect_err("prints help").to_string();
        assert_eq!(
            help.lines().next(),
            Some(concat!(
                "apiserver-proxy-sidecar ",
                env!("CARGO_PKG_VERSION")
            ))
        );
    }

    #[test]
    fn unknown_flags_are_refused_by_name() {
        let error = parse(&["--ip-address=10.96.0.2", "--frobnicate"]).expect_err("unknown");
        assert!(adapters::cli::one_line(&error).contains("--frobnicate"));
    }
}
