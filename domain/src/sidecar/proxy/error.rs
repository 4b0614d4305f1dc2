//! What a `ProxyProbe` answers when the proxy does not.

use std::time::Duration;

use crate::duration::format_go_duration;

/// Why a probe got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Nothing listens there (yet): the proxy has not started, or it stopped.
    #[error("connection refused: nothing listens there")]
    Refused,
    /// No answer in time: a firewall drops the SYN, or the proxy is stuck.
    #[error("no answer within {}", format_go_duration(*after))]
    TimedOut { after: Duration },
    /// Anything else the kernel said, such as "network unreachable" when the address is gone.
    #[error("{reason}")]
    Failed { reason: String },
}

impl ProbeError {
    /// A short name for metric labels and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeError::Refused => "refused",
            ProbeError::TimedOut { .. } => "timeout",
            ProbeError::Failed { .. } => "error",
        }
    }

    pub const KINDS: [&'static str; 3] = ["refused", "timeout", "error"];
}
