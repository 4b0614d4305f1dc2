//! What the webhook did with a review, for logs and metrics.

use super::rule::Outcome;

impl Outcome {
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Patched { .. } => OutcomeKind::Patched,
            Outcome::Unchanged => OutcomeKind::Unchanged,
            Outcome::OptedOut { .. } => OutcomeKind::OptedOut,
            Outcome::MirrorPod => OutcomeKind::MirrorPod,
            Outcome::NotAPodCreate { .. } => OutcomeKind::NotAPodCreate,
            Outcome::PodUnreadable { .. } => OutcomeKind::PodUnreadable,
            Outcome::TooLarge { .. } => OutcomeKind::TooLarge,
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
    MirrorPod = 6,
    TooLarge = 7,
}

impl OutcomeKind {
    /// Every kind, in discriminant order (metrics index a table by it).
    pub const ALL: [Self; 8] = [
        Self::Patched,
        Self::Unchanged,
        Self::OptedOut,
        Self::NotAPodCreate,
        Self::PodUnreadable,
        Self::BadRequest,
        Self::MirrorPod,
        Self::TooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Patched => "patched",
            OutcomeKind::Unchanged => "unchanged",
            OutcomeKind::OptedOut => "opted_out",
            OutcomeKind::NotAPodCreate => "not_a_pod_create",
            OutcomeKind::PodUnreadable => "pod_unreadable",
            OutcomeKind::BadRequest => "bad_request",
            OutcomeKind::MirrorPod => "mirror_pod",
            OutcomeKind::TooLarge => "too_large",
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
}

/// The AdmissionReview version of a request, as far as it could be read: a metric label, so that
/// an operator sees when the API server still sends `v1beta1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewVersion {
    V1 = 0,
    V1beta1 = 1,
    /// Not a review, or not read as far as its version (wrong path, method, content type, ...).
    Unknown = 2,
}

impl ReviewVersion {
    /// Every version, in discriminant order (metrics index a table by it).
    pub const ALL: [Self; 3] = [Self::V1, Self::V1beta1, Self::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewVersion::V1 => "v1",
            ReviewVersion::V1beta1 => "v1beta1",
            ReviewVersion::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::fqdn::ApiserverFqdn;
    use crate::webhook::review::{report as report_of, review};
    use rstest::rstest;

    const SAMPLE: &str = include_str!("../../../testdata/admission/pod-create-v1.json");

    fn report(body: &str) -> ReviewReport {
        let fqdn: ApiserverFqdn = "foo.bar.".parse().expect("a valid name");
        report_of(&review(body.as_bytes(), &fqdn))
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
                "bad_request",
                "mirror_pod",
                "too_large"
            ]
        );
        let versions: Vec<_> = ReviewVersion::ALL
            .into_iter()
            .map(ReviewVersion::as_str)
            .collect();
        assert_eq!(versions, ["v1", "v1beta1", "unknown"]);
    }
}
