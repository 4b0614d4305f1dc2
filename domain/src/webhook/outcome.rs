//! What the webhook did with a review, for logs and metrics.

use std::fmt;

use super::pod_patch::PodError;
use super::review::{Answer, ReviewError, ReviewVersion};

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
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Patched { .. } => OutcomeKind::Patched,
            Outcome::Unchanged => OutcomeKind::Unchanged,
            Outcome::OptedOut { .. } => OutcomeKind::OptedOut,
            Outcome::NotAPodCreate { .. } => OutcomeKind::NotAPodCreate,
            Outcome::PodUnreadable { .. } => OutcomeKind::PodUnreadable,
        }
    }

    /// A short, stable name: the metric label and the log field.
    pub fn as_str(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// What became of one request, without the details: an [`Outcome`] of a decodable review, or an
/// error answer. The metric label and log field `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    Patched = 0,
    Unchanged = 1,
    OptedOut = 2,
    NotAPodCreate = 3,
    PodUnreadable = 4,
    /// Not a review this webhook can answer: a 4xx (wrong path, method, content type, size,
    /// timeout, or a body that is not a review).
    BadRequest = 5,
}

impl OutcomeKind {
    /// Every kind, in discriminant order (metrics index a table by it).
    pub const ALL: [Self; 6] = [
        Self::Patched,
        Self::Unchanged,
        Self::OptedOut,
        Self::NotAPodCreate,
        Self::PodUnreadable,
        Self::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Patched => "patched",
            OutcomeKind::Unchanged => "unchanged",
            OutcomeKind::OptedOut => "opted_out",
            OutcomeKind::NotAPodCreate => "not_a_pod_create",
            OutcomeKind::PodUnreadable => "pod_unreadable",
            OutcomeKind::BadRequest => "bad_request",
        }
    }
}

/// The labels one answered request counts under. Two small copies, so counting costs nothing on
/// the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReviewReport {
    pub outcome: OutcomeKind,
    pub version: ReviewVersion,
}

impl ReviewReport {
    /// A request refused before its body was read as a review: another path or method, no JSON,
    /// too large, too slow.
    pub const REFUSED: Self = Self {
        outcome: OutcomeKind::BadRequest,
        version: ReviewVersion::Unknown,
    };

    /// The labels of what [`super::review::review`] decided: the outcome and version of an
    /// answer, or `bad_request` with as much of the version as the body named.
    pub fn of(result: &Result<Answer, ReviewError>) -> Self {
        match result {
            Ok(answer) => Self {
                outcome: answer.outcome.kind(),
                version: answer.version,
            },
            Err(error) => Self {
                outcome: OutcomeKind::BadRequest,
                version: error.version(),
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::fqdn::ApiserverFqdn;
    use crate::webhook::review::review;
    use rstest::rstest;

    const SAMPLE: &str = include_str!("../../../testdata/admission/pod-create-v1.json");

    fn report(body: &str) -> ReviewReport {
        let fqdn: ApiserverFqdn = "foo.bar.".parse().expect("a valid name");
        ReviewReport::of(&review(body.as_bytes(), &fqdn))
    }

    fn sample_with(from: &str, to: &str) -> String {
        assert!(SAMPLE.contains(from), "the sample has {from:?}");
        SAMPLE.replacen(from, to, 1)
    }

    #[rstest]
    #[case::patched(SAMPLE.to_owned(), OutcomeKind::Patched, ReviewVersion::V1)]
    #[case::v1beta1(
        sample_with("admission.k8s.io/v1\"", "admission.k8s.io/v1beta1\""),
        OutcomeKind::Patched,
        ReviewVersion::V1beta1
    )]
    #[case::update(
        sample_with("\"CREATE\"", "\"UPDATE\""),
        OutcomeKind::NotAPodCreate,
        ReviewVersion::V1
    )]
    #[case::no_request(r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#.to_owned(), OutcomeKind::BadRequest, ReviewVersion::V1beta1)]
    #[case::not_a_review(r#"{"apiVersion":"v1","kind":"Pod"}"#.to_owned(), OutcomeKind::BadRequest, ReviewVersion::Unknown)]
    #[case::empty(String::new(), OutcomeKind::BadRequest, ReviewVersion::Unknown)]
    fn a_review_counts_under_its_outcome_and_version(
        #[case] body: String,
        #[case] outcome: OutcomeKind,
        #[case] version: ReviewVersion,
    ) {
        assert_eq!(report(&body), ReviewReport { outcome, version });
    }

    #[test]
    fn the_tables_are_in_discriminant_order() {
        for (index, kind) in OutcomeKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index);
        }
        for (index, version) in ReviewVersion::ALL.into_iter().enumerate() {
            assert_eq!(version as usize, index);
        }
    }

    #[test]
    fn labels_are_the_documented_ones() {
        let labels: Vec<_> = OutcomeKind::ALL
            .into_iter()
            .map(OutcomeKind::as_str)
            .collect();
        assert_eq!(
            labels,
            [
                "patched",
                "unchanged",
                "opted_out",
                "not_a_pod_create",
                "pod_unreadable",
                "bad_request"
            ]
        );
        let versions: Vec<_> = ReviewVersion::ALL
            .into_iter()
            .map(ReviewVersion::as_str)
            .collect();
        assert_eq!(versions, ["v1", "v1beta1", "unknown"]);
    }
}
