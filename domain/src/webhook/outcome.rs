//! What the webhook did with a review, for logs and metrics.

use std::fmt;

use super::pod_patch::PodError;

/// The decision on one decodable review. Every outcome answers `allowed: true`: the webhook never
/// denies a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Some containers lacked the variable: the answer carries a patch.
    Patched { containers: usize },
    /// Every container sets the variable already.
    Unchanged,
    /// The Pod carries the opt-out label with a false-like value.
    OptedOut { value: String },
    /// Not the CREATE of a core/v1 Pod: nothing to do (a Pod's env cannot change after creation,
    /// so a patch on UPDATE would only make the update fail).
    NotAPodCreate { kind: String, operation: String },
    /// The Pod's JSON is not shaped like a Pod: let it through untouched, the API server's own
    /// validation will say what is wrong with it.
    PodUnreadable { reason: PodError },
}

impl Outcome {
    /// A short, stable name: the metric label and the log field.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Patched { .. } => "patched",
            Outcome::Unchanged => "unchanged",
            Outcome::OptedOut { .. } => "opted_out",
            Outcome::NotAPodCreate { .. } => "not_a_pod_create",
            Outcome::PodUnreadable { .. } => "pod_unreadable",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Patched { containers } => {
                write!(f, "added the variable to {containers} container(s)")
            }
            Outcome::Unchanged => f.write_str("every container sets the variable already"),
            Outcome::OptedOut { value } => write!(
                f,
                "the Pod opted out with label {}={value}",
                super::pod_patch::OPT_OUT_LABEL
            ),
            Outcome::NotAPodCreate { kind, operation } => {
                write!(f, "{operation} of {kind} is not the creation of a Pod")
            }
            Outcome::PodUnreadable { reason } => {
                write!(
                    f,
                    "allowed without a patch: the Pod cannot be read: {reason}"
                )
            }
        }
    }
}
