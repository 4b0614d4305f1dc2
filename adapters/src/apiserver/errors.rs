//! kube's errors translated at the seam into the domain's [`TaintError`], so that the log names
//! what is missing (a verb on a resource, a Node) rather than an HTTP status.

use domain::sidecar::taint::{NodeName, TaintError};
use kube::core::ErrorResponse;

/// What the adapter was doing when the API server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb {
    Get,
    Patch,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Patch => "patch",
        }
    }
}

/// The resource both verbs act on.
const NODES: &str = "nodes";

pub(super) fn translate(error: kube::Error, verb: Verb, node: &NodeName) -> TaintError {
    match error {
        kube::Error::Api(answer) => translate_answer(answer, verb, node),
        // A refused, reset or timed-out connection: the service layer wraps hyper's errors.
        kube::Error::HyperError(_) | kube::Error::Service(_) => TaintError::Unreachable {
            reason: chain(&error),
        },
        kube::Error::Auth(_) => TaintError::Config {
            reason: chain(&error),
        },
        other => TaintError::Unexpected {
            reason: chain(&other),
        },
    }
}

fn translate_answer(answer: ErrorResponse, verb: Verb, node: &NodeName) -> TaintError {
    match answer.code {
        403 => TaintError::Forbidden {
            verb: verb.as_str().to_owned(),
            resource: NODES.to_owned(),
            message: answer.message,
        },
        404 => TaintError::NodeNotFound {
            node: node.to_string(),
        },
        // The API server answers a failed `test` (or a `remove` of an index that is gone) with
        // 422: the taints changed since they were read.
        422 if verb == Verb::Patch => TaintError::Changed,
        code => TaintError::Api {
            code,
            message: answer.message,
        },
    }
}

/// The error and its causes on one line: kube's outer errors say little ("ServiceError") and
/// the cause (connection refused, a timeout) is in the chain.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = inner.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn answer(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(ErrorResponse {
            status: "Failure".into(),
            message: message.into(),
            reason: String::new(),
            code,
        })
    }

    fn node() -> NodeName {
        "node-2".parse().unwrap()
    }

    #[rstest]
    #[case(Verb::Get, "get")]
    #[case(Verb::Patch, "patch")]
    fn forbidden_names_the_verb_and_the_resource(#[case] verb: Verb, #[case] named: &str) {
        let message = format!("nodes \"node-2\" is forbidden: User \"system:serviceaccount:kube-system:apiserver-proxy\" cannot {named} resource \"nodes\" in API group \"\" at the cluster scope");
        let error = translate(answer(403, &message), verb, &node());
        assert!(
            error
                .to_string()
                .starts_with(&format!("forbidden: cannot {named} resource \"nodes\": ")),
            "{error}"
        );
        assert_eq!(error.kind(), "forbidden");
    }

    #[rstest]
    #[case(404, Verb::Get, "node-not-found")]
    #[case(422, Verb::Patch, "changed")]
    #[case(422, Verb::Get, "api")]
    #[case(500, Verb::Patch, "api")]
    #[case(429, Verb::Get, "api")]
    fn statuses_become_what_they_mean(#[case] code: u16, #[case] verb: Verb, #[case] kind: &str) {
        assert_eq!(translate(answer(code, "m"), verb, &node()).kind(), kind);
    }

    #[test]
    fn a_missing_node_is_named() {
        let error = translate(
            answer(404, "nodes \"node-2\" not found"),
            Verb::Get,
            &node(),
        );
        assert_eq!(
            error.to_string(),
            "node \"node-2\" not found: check --node-name (or NODE_NAME)"
        );
    }

    #[test]
    fn a_failed_test_says_re_read() {
        let error = translate(answer(422, "testing value failed"), Verb::Patch, &node());
        assert_eq!(error.to_string(), "taint changed concurrently, re-read");
    }
}
