//! The outside world behind the domain's ports.
//!
//! # Layout
//!
//! - [`iptables`]: the `RuleManager` over the iptables CLI (nft or legacy, as the host uses), and
//!   the stream of nf_tables change events (a timer for legacy) that triggers repair.
pub mod iptables;
