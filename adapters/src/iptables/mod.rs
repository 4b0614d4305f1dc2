//! The conntrack-bypass rules, through the iptables command-line tools, and the events that say
//! when to look at them again.
//!
//! The CLI is run directly, through `tokio::process`, rather than through the `iptables` crate:
//! the crate blocks the runtime thread on `std::process::Command`, returns a non-`Send`
//! `Box<dyn Error>`, and its `exists()` takes any failure for "absent", which is how a failed
//! check grows duplicate rules. See docs/iptables.md.
//!
//! - `backend`: nft or legacy, and how the host's choice is detected.
//! - `command`: running one tool; its exit status and stderr as a [`domain::sidecar::model::RuleCommandError`].
//! - `save`: reading `iptables-save` output.
//! - `rules`: [`IptablesRules`], the `RuleManager`.
//! - `events`: [`rule_events`], nf_tables change events or a timer.

mod backend;
mod command;
mod events;
mod rules;
mod save;

pub use backend::{warn_if_kube_proxy_iptables_mode, Backend};
pub use command::Tools;
pub use events::{rule_events, LEGACY_POLL};
pub use rules::IptablesRules;
