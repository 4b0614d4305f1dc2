//! The outside world behind the domain's ports.
//!
//! # Layout
//!
//! - [`netlink`]: rtnetlink `AddressManager` (links and addresses) and the link/address event
//!   stream.
//! - [`http`]: the pod webhook's HTTPS server (hyper, tokio-rustls), with certificate reloading.
//! - [`iptables`]: the `RuleManager` over the iptables CLI (nft or legacy, as the host uses), and
//!   the stream of nf_tables change events (a timer for legacy) that triggers repair.
//! - [`apiserver`]: the `NodeTaints` port over the Kubernetes API server (kube-rs), for
//!   `--startup-taint`: the client, built on first use, and its errors translated.
//! - [`accept`]: the accept loop every server shares: a pause and one log line per condition
//!   when accepts fail (out of descriptors, out of memory), never a spin.
//! - [`rlimit`]: the open-file limit, raised from soft to hard at start.
//! - [`cli`]: Go/pflag flag values (booleans, ports, addresses), one-line flag errors, and the
//!   start both binaries share.
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
pub mod http;
pub mod iptables;
pub mod logging;
pub mod metrics;
pub mod netlink;
pub mod rfc3339;
pub mod rlimit;
pub mod signals;
