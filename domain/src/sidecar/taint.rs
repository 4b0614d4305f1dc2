//! The startup taint's values: its key (`--startup-taint`), the node's name (`--node-name`), a
//! taint as the API server keeps it, and why reading or removing one failed.

use std::fmt;
use std::str::FromStr;

use crate::dns_name::check_subdomain;

/// The name part of a label key.
const MAX_KEY_NAME_BYTES: usize = 63;

/// Why a flag value is not a taint key or a node name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a {what}: {reason}")]
pub struct TaintFlagError {
    pub input: String,
    pub what: &'static str,
    pub reason: String,
}

/// A taint key, valid as Kubernetes validates a label key: an optional DNS-1123 subdomain prefix
/// and '/', then a name of at most 63 characters, `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaintKey(String);

impl TaintKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TaintKey {
    type Err = TaintFlagError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: String| {
            TaintFlagError {
            input: input.to_owned(),
            what: "taint key",
            reason: format!(
                "{reason} (expected a label key such as apiserver-proxy.networking.gardener.cloud/not-ready)"
            ),
        }
        };
        let (prefix, name) = match input.split_once('/') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, input),
        };
        if let Some(prefix) = prefix {
            check_subdomain(prefix)
                .map_err(|reason| refuse(format!("prefix {prefix:?}: {reason}")))?;
        }
        check_key_name(name).map_err(refuse)?;
        Ok(Self(input.to_owned()))
    }
}

impl fmt::Display for TaintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of this node's Node object, a DNS-1123 subdomain as the API server requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeName(String);

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = TaintFlagError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        check_subdomain(input).map_err(|reason| TaintFlagError {
            input: input.to_owned(),
            what: "node name",
            reason,
        })?;
        Ok(Self(input.to_owned()))
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name part of a label key.
fn check_key_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_KEY_NAME_BYTES {
        return Err(format!(
            "the name after the prefix has {} characters: expected 1 to {MAX_KEY_NAME_BYTES}",
            name.len()
        ));
    }
    let inner = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    let bytes = name.as_bytes();
    let ends = [bytes[0], bytes[bytes.len() - 1]];
    if ends.iter().all(u8::is_ascii_alphanumeric) && bytes.iter().copied().all(inner) {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// One entry of a Node's `spec.taints`, exactly as the API server returned it: the removal's
/// `test` compares the whole entry, so nothing is normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
    /// RFC 3339, as the API server wrote it (it sets this for `NoExecute` taints only).
    pub time_added: Option<String>,
}

/// Why the Node's taints could not be read or the startup taint not removed. Every variant is
/// retried: RBAC can be granted, a Node can register late, the API server can come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaintError {
    /// No answer: the connection was refused, timed out or broke (the API server is down, or
    /// the path to it leads through the proxy this node is still starting).
    #[error("cannot reach the API server: {reason}")]
    Unreachable { reason: String },
    /// 403: RBAC lacks `verb` on `resource` (the ClusterRole of docs/examples/startup-taint).
    #[error("forbidden: cannot {verb} resource {resource:?}: {message}")]
    Forbidden {
        verb: String,
        resource: String,
        message: String,
    },
    /// 404 on the Node: `--node-name` (or `NODE_NAME`) names no Node, or it has not registered.
    #[error("node {node:?} not found: check --node-name (or NODE_NAME)")]
    NodeNotFound { node: String },
    /// 422 from the patch's `test`: another controller changed the taints since they were read.
    #[error("taint changed concurrently, re-read")]
    Changed,
    /// Any other answer, with its HTTP status and the API server's message.
    #[error("the API server answered {code}: {message}")]
    Api { code: u16, message: String },
    /// The credentials (service account token, kubeconfig) could not be loaded.
    #[error("no credentials for the API server: {reason}")]
    Config { reason: String },
    /// Anything else the client reports, such as an answer it could not read.
    #[error("unexpected answer from the API server: {reason}")]
    Unexpected { reason: String },
}

impl TaintError {
    /// A short name for log fields; a new kind of failure is logged, a repeated one is not.
    pub fn kind(&self) -> &'static str {
        match self {
            TaintError::Unreachable { .. } => "unreachable",
            TaintError::Forbidden { .. } => "forbidden",
            TaintError::NodeNotFound { .. } => "node-not-found",
            TaintError::Changed => "changed",
            TaintError::Api { .. } => "api",
            TaintError::Config { .. } => "config",
            TaintError::Unexpected { .. } => "unexpected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("apiserver-proxy.networking.gardener.cloud/not-ready")]
    #[case("not-ready")]
    #[case("a")]
    #[case("example.com/A_b.C-9")]
    #[case("node.cilium.io/agent-not-ready")]
    fn valid_label_keys_are_taint_keys(#[case] input: &str) {
        assert_eq!(
            input.parse::<TaintKey>().map(|k| k.to_string()),
            Ok(input.to_owned())
        );
    }

    #[rstest]
    #[case("", "expected 1 to 63")]
    #[case("example.com/", "expected 1 to 63")]
    #[case("/not-ready", "got nothing")]
    #[case("Example.com/not-ready", "\"Example\" is not a DNS-1123 label")]
    #[case("a/b/c", "\"b/c\" must be letters")]
    #[case("-not-ready", "must be letters")]
    #[case("not-ready.", "must be letters")]
    #[case("not ready", "must be letters")]
    #[case("not-ready:NoSchedule", "must be letters")]
    #[case("not-ready=x", "must be letters")]
    fn other_texts_are_refused_naming_the_input(#[case] input: &str, #[case] why: &str) {
        let error = input.parse::<TaintKey>().expect_err("invalid").to_string();
        assert!(
            error.contains(&format!("{input:?} is not a taint key")),
            "{error}"
        );
        assert!(error.contains(why), "{error} does not say {why:?}");
        assert!(error.contains("expected a label key such as"), "{error}");
    }

    #[test]
    fn the_name_may_have_63_characters_and_the_prefix_253() {
        let label = "a".repeat(62);
        let prefix = format!("{label}.{label}.{label}.{label}.a");
        assert_eq!(prefix.len(), 253);
        let name = "n".repeat(63);
        assert!(format!("{prefix}/{name}").parse::<TaintKey>().is_ok());
        assert!(format!("{prefix}/{name}n").parse::<TaintKey>().is_err());
        assert!(format!("{prefix}b/{name}").parse::<TaintKey>().is_err());
    }

    #[rstest]
    #[case("node-2", true)]
    #[case("ip-10-0-1-2.eu-west-1.compute.internal", true)]
    #[case("", false)]
    #[case("Node-2", false)]
    #[case("node_2", false)]
    fn node_names_are_dns_subdomains(#[case] input: &str, #[case] valid: bool) {
        let parsed = input.parse::<NodeName>();
        assert_eq!(parsed.is_ok(), valid, "{parsed:?}");
        if let Err(error) = parsed {
            assert!(error
                .to_string()
                .starts_with(&format!("{input:?} is not a node name")));
        }
    }
}
