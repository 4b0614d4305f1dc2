//! The outside world behind the domain's ports.
//!
//! # Layout
//!
//! - [`netlink`]: the `Links` (`link.rs`) and `Addresses` (`address.rs`) ports over rtnetlink,
//!   and the link/address event stream.
//! - [`http`]: the pod webhook's HTTPS server (hyper, tokio-rustls), with certificate reloading.
//! - [`iptables`]: the `RuleManager` over the iptables CLI (nft or legacy, as the host uses), and
//!   the stream of nf_tables change events (a timer for legacy) that triggers repair.
//! - [`connections`]: the cap on a server's open connections (at the cap, the one that made no
//!   progress the longest goes) and the request-head deadline, for the webhook's TLS port and
//!   the metrics ports alike.
//! - [`apiserver`]: the `NodeTaints` port over the Kubernetes API server (kube-rs), for
//!   `--startup-taint`: the client, built on first use, and its errors translated.
//! - [`proxy_probe`]: the `ProxyProbe` port: a TCP connection to the proxy with a timeout.
//! - [`accept`]: the accept loop every server shares: a pause, and a log line when a condition
//!   starts and when it ends, while accepts fail (out of descriptors, out of memory), never a
//!   spin.
//! - [`rlimit`]: the open-file limit, raised from soft to hard at start.
//! - [`cli`]: one-line flag errors, `--help`'s layout, and the start both binaries share.
//! - [`flag_values`]: flag values as Go's pflag reads them (booleans, ports, addresses), for
//!   every flag group: the apps', klog's in [`logging`], the metrics address.
//! - [`clock`]: the domain's `Clock` on tokio's timer.
//! - [`logging`]: klog-compatible logging and the klog flags both binaries accept.
//! - [`metrics`]: Prometheus metrics (each with a `build_info` gauge) and health endpoints (opt-in
//!   plain HTTP), and the `--metrics-bind-address` flag.
//! - [`rfc3339`]: how times are written in logs and probe answers.
//! - [`signals`]: SIGTERM and SIGINT, the two ways both binaries are asked to stop.

pub mod accept;
pub mod apiserver;
pub mod cli;
pub mod clock;
pub mod connections;
pub mod flag_values;
pub mod http;
pub mod iptables;
pub mod logging;
pub mod metrics;
pub mod netlink;
pub mod proxy_probe;
pub mod rfc3339;
pub mod rlimit;
pub mod signals;
