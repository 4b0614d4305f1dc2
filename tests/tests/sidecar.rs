//! Black-box tier: the built `apiserver-proxy-sidecar` with real flags, inside network namespaces
//! of its own.

use blackbox_tests::netns::{in_netns, sh, try_sh};
use blackbox_tests::sidecar::{
    binary_path, on_lo, our_rules, output, spawn, start, stderr, terminate, SIDECAR,
};
use blackbox_tests::{
    assert_names_the_version, assert_one_line_flag_error, check_openmetrics, http_get, metric,
    skip, wait_until,
};
use rstest::rstest;

#[rstest]
#[case::prefix(&["--ip-address=10.96.0.2/32"], "10.96.0.2/32")]
#[case::zone(&["--ip-address=fe80::1%eth0"], "fe80::1%eth0")]
#[case::two_of_one_family(&["--ip-address=10.96.0.2,10.96.0.3"], "10.96.0.2,10.96.0.3")]
#[case::empty_element(&["--ip-address=10.96.0.2,"], "10.96.0.2,")]
#[case::broadcast(&["--ip-address=255.255.255.255"], "255.255.255.255")]
#[case::ipv4_mapped(&["--ip-address=::ffff:10.96.0.2"], "::ffff:10.96.0.2")]
#[case::zero_interval(&["--ip-address=10.96.0.2", "--sync-interval=0s"], "--sync-interval")]
#[case::interval_that_spins(&["--ip-address=10.96.0.2", "--sync-interval=1ns"], "at least 100ms")]
#[case::interval_below_the_floor(&["--ip-address=10.96.0.2", "--sync-interval=99ms"], "99ms")]
#[case::bad_interval(&["--ip-address=10.96.0.2", "--sync-interval=1x"], "1x")]
#[case::long_interface(&["--ip-address=10.96.0.2", "--interface=abcdefghijklmnop"], "abcdefghijklmnop")]
#[case::bad_bool(&["--ip-address=10.96.0.2", "--cleanup=yes"], "yes")]
#[case::bad_port(&["--ip-address=10.96.0.2", "--port=70000"], "70000")]
#[case::unknown(&["--ip-address=10.96.0.2", "--frobnicate"], "--frobnicate")]
#[case::missing_address(&[], "--ip-address")]
#[case::bad_taint_key(&["--ip-address=10.96.0.2", "--startup-taint=not ready", "--node-name=n"], "not ready")]
#[case::taint_without_node(&["--ip-address=10.96.0.2", "--startup-taint=not-ready"], "--node-name")]
fn bad_flags_exit_non_zero_with_one_line_naming_them(#[case] args: &[&str], #[case] named: &str) {
    assert_one_line_flag_error(&output(args), named);
}

#[rstest]
#[case::version("--version")]
#[case::help("--help")]
fn version_and_help_name_the_version_and_exit_zero(#[case] flag: &str) {
    assert_names_the_version(&output(&[flag]), SIDECAR);
}

#[test]
fn help_lists_every_flag_of_the_original_with_its_default() {
    let output = output(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--add_dir_header",
        "--alsologtostderr",
        "--cleanup",
        "--daemon",
        "--interface",
        "--ip-address",
        "--log_backtrace_at",
        "--log_dir",
        "--log_file",
        "--log_file_max_size",
        "--logtostderr",
        "--port",
        "--setup-iptables",
        "--skip_headers",
        "--skip_log_headers",
        "--stderrthreshold",
        "--sync-interval",
        "-v, --v",
        "--vmodule",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    for default in [
        "[default: lo]",
        "[default: 443]",
        "[default: 1m0s]",
        "At least 100ms",
        "[default: true]",
        "[default: 1800]",
        "[default: 2]",
    ] {
        assert!(
            help.contains(default),
            "{default} missing from --help:\n{help}"
        );
    }
}

#[test]
fn one_shot_adds_the_address_with_global_scope_and_exits_zero() {
    in_netns(
        "one_shot_adds_the_address_with_global_scope_and_exits_zero",
        || async {
            let output = output(&["--daemon=false", "--ip-address=10.96.0.2"]);
            assert!(output.status.success(), "{}", stderr(&output));
            let shown = sh("ip -d addr show dev lo");
            assert!(
                shown.contains("inet 10.96.0.2/32 scope global lo"),
                "{shown}"
            );
            // klog's header: severity, date, time, pid, file:line.
            let first = stderr(&output)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let header = first.split(']').next().unwrap_or_default();
            assert!(
                header.starts_with('I') && header.contains(".rs:"),
                "{first}"
            );
        },
    );
}

#[test]
fn one_shot_with_cleanup_leaves_nothing() {
    in_netns("one_shot_with_cleanup_leaves_nothing", || async {
        let output = output(&["--daemon=false", "--cleanup", "--ip-address=10.96.0.2"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(!on_lo("10.96.0.2"));
        assert!(on_lo("127.0.0.1/8"), "lo keeps its own address");
    });
}

#[test]
fn one_shot_that_fails_exits_non_zero_with_the_reason() {
    in_netns(
        "one_shot_that_fails_exits_non_zero_with_the_reason",
        || async {
            let (has_dummy, _, _) = try_sh("ip link add probe0 type dummy && ip link del probe0");
            let output = output(&[
                "--daemon=false",
                "--interface=proxy0",
                "--ip-address=10.96.0.2",
            ]);
            if has_dummy {
                assert!(output.status.success(), "{}", stderr(&output));
            } else {
                assert_eq!(output.status.code(), Some(1));
                let stderr = stderr(&output);
                assert!(
                    stderr.contains("cannot create a link of type \"dummy\""),
                    "{stderr}"
                );
            }
        },
    );
}

#[test]
fn daemon_repairs_deletion_and_cleans_up_on_sigterm() {
    in_netns(
        "daemon_repairs_deletion_and_cleans_up_on_sigterm",
        || async {
            let child = start(&["--ip-address=10.96.0.2", "--cleanup=true"]);
            wait_until("the address is added", || on_lo("10.96.0.2/32"));
            for _ in 0..3 {
                sh("ip addr del 10.96.0.2/32 dev lo");
                wait_until("the address is back", || on_lo("10.96.0.2/32"));
            }
            let output = terminate(child);
            assert!(output.status.success(), "{}", stderr(&output));
            assert!(!on_lo("10.96.0.2"), "cleanup removed the address");
            assert!(stderr(&output).contains("was missing on lo: added it"));
        },
    );
}

#[test]
fn daemon_without_cleanup_leaves_the_address_on_sigterm() {
    in_netns(
        "daemon_without_cleanup_leaves_the_address_on_sigterm",
        || async {
            let child = start(&["--ip-address=10.96.0.2"]);
            wait_until("the address is added", || on_lo("10.96.0.2/32"));
            let output = terminate(child);
            assert!(output.status.success(), "{}", stderr(&output));
            assert!(on_lo("10.96.0.2/32"));
        },
    );
}

#[test]
fn daemon_keeps_an_ipv6_address() {
    in_netns("daemon_keeps_an_ipv6_address", || async {
        sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
        let child = start(&["--ip-address=fd00::2", "--cleanup"]);
        wait_until("the address is added", || on_lo("fd00::2/128"));
        sh("ip addr del fd00::2/128 dev lo");
        wait_until("the address is back", || on_lo("fd00::2/128"));
        let output = terminate(child);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(!on_lo("fd00::2"));
    });
}

const METRICS_PORT: u16 = 9090;

fn scrape() -> String {
    let (status, body) = http_get(METRICS_PORT, "/metrics").expect("the metrics endpoint answers");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn metrics_count_a_repair_exactly_once_and_parse_as_openmetrics() {
    in_netns(
        "metrics_count_a_repair_exactly_once_and_parse_as_openmetrics",
        || async {
            let child = start(&[
                "--ip-address=10.96.0.2",
                "--metrics-bind-address=127.0.0.1:9090",
            ]);
            let address_repairs = "apiserver_proxy_sidecar_repairs_total{kind=\"address\"}";
            wait_until("the first sync is counted", || {
                http_get(METRICS_PORT, "/metrics")
                    .is_ok_and(|(_, text)| metric(&text, address_repairs) == Some(1.0))
            });
            let before = scrape();
            sh("ip addr del 10.96.0.2/32 dev lo");
            wait_until("the repair is counted", || {
                http_get(METRICS_PORT, "/metrics")
                    .is_ok_and(|(_, text)| metric(&text, address_repairs) == Some(2.0))
            });
            let after = scrape();
            let event_syncs =
                "apiserver_proxy_sidecar_syncs_total{trigger=\"event\",result=\"success\"}";
            assert_eq!(
                metric(&after, event_syncs).unwrap() - metric(&before, event_syncs).unwrap(),
                1.0,
                "{after}"
            );
            assert_eq!(
                metric(
                    &after,
                    "apiserver_proxy_sidecar_repairs_total{kind=\"link\"}"
                ),
                Some(0.0)
            );
            assert_eq!(
                metric(
                    &after,
                    "apiserver_proxy_sidecar_address_present{address=\"10.96.0.2\"}"
                ),
                Some(1.0)
            );
            let build_info = format!(
                "apiserver_proxy_sidecar_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            );
            assert_eq!(metric(&after, &build_info), Some(1.0), "{after}");
            assert_eq!(http_get(METRICS_PORT, "/healthz").unwrap().0, 200);
            assert_eq!(http_get(METRICS_PORT, "/readyz").unwrap().0, 200);
            match check_openmetrics(&after) {
                Ok(()) => {}
                Err(why) if why.contains("No module named") => skip("openmetrics parser", &why),
                Err(why) => panic!("the exposition does not parse: {why}\n{after}"),
            }
            terminate(child);
        },
    );
}

#[test]
fn readiness_fails_while_the_address_cannot_be_added_and_recovers() {
    in_netns(
        "readiness_fails_while_the_address_cannot_be_added_and_recovers",
        || async {
            // Every kernel refuses an IPv6 address on a link with IPv6 disabled ("IPv6 is disabled
            // on this device"), whatever link types it was built with.
            sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=1");
            let child = start(&[
                "--ip-address=fd00::2",
                "--interface=lo",
                "--sync-interval=2s",
                "--metrics-bind-address=127.0.0.1:9090",
            ]);
            wait_until("a failed sync is counted", || {
                http_get(METRICS_PORT, "/metrics").is_ok_and(|(_, text)| {
                    metric(
                        &text,
                        "apiserver_proxy_sidecar_errors_total{kind=\"address\"}",
                    )
                    .is_some_and(|n| n >= 1.0)
                })
            });
            assert_eq!(http_get(METRICS_PORT, "/readyz").unwrap().0, 503);
            assert_eq!(
                http_get(METRICS_PORT, "/healthz").unwrap().0,
                200,
                "a kernel refusal never fails liveness"
            );
            // An operator enables IPv6 again: a retry (at most the 2 s interval away) recovers.
            sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
            wait_until("ready again", || {
                http_get(METRICS_PORT, "/readyz").is_ok_and(|(status, _)| status == 200)
            });
            assert!(sh("ip -6 addr show dev lo").contains("fd00::2/128"));
            terminate(child);
        },
    );
}

#[test]
fn setup_iptables_keeps_the_five_rules_repairs_a_flush_and_cleans_up() {
    in_netns(
        "setup_iptables_keeps_the_five_rules_repairs_a_flush_and_cleans_up",
        || async {
            if !try_sh("command -v iptables-save").0 {
                skip(
                    "setup_iptables_keeps_the_five_rules_repairs_a_flush_and_cleans_up",
                    "iptables is not installed (make deps)",
                );
                return;
            }
            // A foreign rule in one of our chains must survive everything.
            sh("iptables -t filter -A INPUT -p udp --dport 53 -j ACCEPT");
            let child = start(&["--ip-address=10.96.0.2", "--setup-iptables", "--cleanup"]);
            wait_until("the five rules are in place", || {
                our_rules("iptables-save") == 5
            });
            let save = sh("iptables-save");
            for rule in [
                "-A PREROUTING -d 10.96.0.2/32 -p tcp -m tcp --dport 443",
                "-A OUTPUT -d 10.96.0.2/32 -p tcp -m tcp --dport 443",
                "-A OUTPUT -s 10.96.0.2/32 -p tcp -m tcp --sport 443",
                "-A INPUT -d 10.96.0.2/32 -p tcp -m tcp --dport 443",
                "-A OUTPUT -s 10.96.0.2/32 -p tcp -m tcp --sport 443",
            ] {
                assert!(save.contains(rule), "{rule} missing:\n{save}");
            }
            sh("iptables -t raw -F");
            wait_until("the flushed rules are back", || {
                our_rules("iptables-save") == 5
            });
            let output = terminate(child);
            assert!(output.status.success(), "{}", stderr(&output));
            assert_eq!(our_rules("iptables-save"), 0, "cleanup removed our rules");
            assert!(
                sh("iptables-save -t filter").contains("--dport 53 -j ACCEPT"),
                "the foreign rule stays"
            );
        },
    );
}

#[test]
fn setup_iptables_uses_ip6tables_for_ipv6() {
    in_netns("setup_iptables_uses_ip6tables_for_ipv6", || async {
        if !try_sh("command -v ip6tables-save").0 {
            skip(
                "setup_iptables_uses_ip6tables_for_ipv6",
                "iptables is not installed (make deps)",
            );
            return;
        }
        sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
        let output = output(&["--daemon=false", "--ip-address=fd00::2", "--setup-iptables"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(our_rules("ip6tables-save"), 5);
        assert!(sh("ip6tables-save").contains("-d fd00::2/128 -p tcp -m tcp --dport 443"));
        assert_eq!(our_rules("iptables-save"), 0);
    });
}

/// As Go's runtime does at start, and as the original sidecar therefore did: a container runtime
/// sets a low soft limit (containerd 2.x: 1024) under a high hard one.
#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    in_netns(
        "the_soft_open_file_limit_is_raised_to_the_hard_limit",
        || async {
            let mut command = std::process::Command::new("prlimit");
            command
                .args(["--nofile=256:4096", "--"])
                .arg(binary_path())
                .args([
                    "--ip-address=10.96.0.2",
                    "--metrics-bind-address=127.0.0.1:9090",
                    "--v=2",
                ]);
            // prlimit sets the limit and execs the sidecar: same process, same pid.
            let child = spawn(command);
            wait_until("the sidecar serves", || {
                http_get(METRICS_PORT, "/healthz").is_ok_and(|(status, _)| status == 200)
            });
            let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id()))
                .expect("the limits");
            let line = limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .expect("the open-file limit");
            let fields: Vec<_> = line.split_whitespace().collect();
            assert_eq!(fields[3..5], ["4096", "4096"], "{line}");
            let output = terminate(child);
            assert!(
                stderr(&output).contains("open-file limit raised to the hard limit"),
                "{}",
                stderr(&output)
            );
        },
    );
}

#[test]
fn dual_stack_one_shot_adds_both_addresses_usable_at_once() {
    in_netns(
        "dual_stack_one_shot_adds_both_addresses_usable_at_once",
        || async {
            sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
            let output = output(&["--daemon=false", "--ip-address=10.96.0.2,fd00::2"]);
            assert!(output.status.success(), "{}", stderr(&output));
            let shown = sh("ip addr show dev lo");
            assert!(
                shown.contains("inet 10.96.0.2/32 scope global lo")
                    && shown.contains("inet6 fd00::2/128 scope global")
                    && !shown.contains("tentative"),
                "{shown}"
            );
        },
    );
}

#[test]
fn a_restart_with_a_new_ip_address_removes_the_earlier_one() {
    in_netns(
        "a_restart_with_a_new_ip_address_removes_the_earlier_one",
        || async {
            sh("ip addr add 10.0.0.9/32 dev lo");
            let earlier = output(&["--daemon=false", "--ip-address=10.96.0.9"]);
            assert!(earlier.status.success(), "{}", stderr(&earlier));
            let later = output(&["--daemon=false", "--ip-address=10.96.0.2"]);
            let log = stderr(&later);
            assert!(later.status.success(), "{log}");
            assert!(on_lo("10.96.0.2/32") && !on_lo("10.96.0.9"), "{log}");
            assert!(on_lo("10.0.0.9/32"), "an unmarked address stays");
            assert!(
                log.contains(
                    "removed stale address 10.96.0.9/32 on lo: it carries the address protocol 97"
                ),
                "{log}"
            );
        },
    );
}

#[test]
fn an_uninstall_job_removes_the_interface_an_earlier_process_used_and_says_why() {
    in_netns(
        "an_uninstall_job_removes_the_interface_an_earlier_process_used_and_says_why",
        || async {
            // This kernel has no dummy type: a veth with our alias stands in for the dummy an
            // earlier sidecar created. A link without our alias is never deleted.
            sh("ip link add apiserver-proxy type veth peer name peer0");
            sh("ip link set apiserver-proxy alias apiserver-proxy");
            sh("ip link add foreign type veth peer name peer1");
            let flags = ["--ip-address=10.96.0.2", "--interface=apiserver-proxy"];
            let install = output(&[&flags[..], &["--daemon=false"]].concat());
            assert!(install.status.success(), "{}", stderr(&install));
            let uninstall = output(&[&flags[..], &["--daemon=false", "--cleanup"]].concat());
            let log = stderr(&uninstall);
            assert!(uninstall.status.success(), "{log}");
            assert!(!try_sh("ip link show dev apiserver-proxy").0, "{log}");
            sh("ip link show dev foreign");
            assert!(
                log.contains(
                    "removed address 10.96.0.2/32 on apiserver-proxy: --ip-address names it"
                ) && log.contains("removed interface apiserver-proxy: its alias is")
                    && log.contains("and it holds no address"),
                "{log}"
            );
            assert!(!log.contains("removed what this process added"), "{log}");
        },
    );
}

#[test]
fn help_says_how_an_operator_sees_the_ownership_marks() {
    let help = String::from_utf8_lossy(&output(&["--help"]).stdout).into_owned();
    assert!(
        help.contains("address protocol 97") && help.contains("alias \"apiserver-proxy\""),
        "{help}"
    );
}
