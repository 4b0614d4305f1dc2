//! The outside world behind the domain's ports.
//!
//! # Layout
//!
//! - [`netlink`]: rtnetlink `AddressManager` (links and addresses) and the link/address event
//!   stream.
//! - [`cli`]: Go/pflag flag forms and one-line flag errors.
//! - [`clock`]: the domain's `Clock` on tokio's timer.
//! - [`logging`]: klog-compatible logging and the klog flags both binaries accept.
//! - [`metrics`]: Prometheus metrics and health endpoints (opt-in plain HTTP).

pub mod cli;
pub mod clock;
pub mod logging;
pub mod metrics;
pub mod netlink;
