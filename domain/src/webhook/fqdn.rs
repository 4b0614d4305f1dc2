//! The API server's name as `--apiserver-fqdn` gives it, validated as Kubernetes validates a
//! fully qualified domain name (`IsFullyQualifiedDomainName` in apimachinery).

use std::fmt;
use std::str::FromStr;

use crate::dns_name::check_label;

/// DNS-1123 subdomain limit, which applies to the name without its trailing dot.
const MAX_NAME_BYTES: usize = 253;

/// Why a text is not a fully qualified domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a fully qualified domain name: {reason}")]
pub struct FqdnError {
    pub input: String,
    pub reason: String,
}

/// A fully qualified domain name, kept exactly as given (a trailing dot stays: `foo.bar.` is what
/// the Pods get). Holds only `a-z`, `0-9`, `-` and `.`, so the patch writes it into JSON as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiserverFqdn(String);

impl ApiserverFqdn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ApiserverFqdn {
    type Err = FqdnError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: String| FqdnError {
            input: input.to_owned(),
            reason,
        };
        let name = input.strip_suffix('.').unwrap_or(input);
        if name.is_empty() {
            return Err(refuse(
                "expected a name such as api.example.com, got nothing".to_owned(),
            ));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(refuse(format!(
                "expected at most {MAX_NAME_BYTES} characters without the trailing dot, got {}",
                name.len()
            )));
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(refuse(
                "expected at least two labels separated by dots, such as example.com".to_owned(),
            ));
        }
        for label in labels {
            check_label(label).map_err(&refuse)?;
        }
        Ok(Self(input.to_owned()))
    }
}

impl fmt::Display for ApiserverFqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("foo.bar")]
    #[case("foo.bar.")]
    #[case("api.shoot--project--name.example.com")]
    #[case("1.example")]
    #[case("a-b.c-d")]
    #[case("kubernetes.default.svc.cluster.local.")]
    fn keeps_valid_names_exactly_as_given(#[case] input: &str) {
        assert_eq!(
            input.parse::<ApiserverFqdn>().map(|f| f.to_string()),
            Ok(input.to_owned())
        );
    }

    #[rstest]
    #[case("", "got nothing")]
    #[case(".", "got nothing")]
    #[case("localhost", "at least two labels")]
    #[case("localhost.", "at least two labels")]
    #[case("Foo.bar", "\"Foo\" is not a DNS-1123 label")]
    #[case("foo..bar", "\"\" is not a DNS-1123 label")]
    #[case("foo.bar..", "\"\" is not a DNS-1123 label")]
    #[case("-foo.bar", "\"-foo\" is not a DNS-1123 label")]
    #[case("foo-.bar", "\"foo-\" is not a DNS-1123 label")]
    #[case("foo_bar.baz", "\"foo_bar\" is not a DNS-1123 label")]
    #[case("foo.bar:443", "\"bar:443\" is not a DNS-1123 label")]
    #[case("https://foo.bar", "is not a DNS-1123 label")]
    #[case(" foo.bar", "\" foo\" is not a DNS-1123 label")]
    #[case("xn--bcher-kva.ch.ü", "\"ü\" is not a DNS-1123 label")]
    fn refuses_names_kubernetes_refuses(#[case] input: &str, #[case] why: &str) {
        let error = input
            .parse::<ApiserverFqdn>()
            .expect_err("an invalid name")
            .to_string();
        assert!(
            error.contains(&format!("{input:?}")),
            "{error} does not name the input"
        );
        assert!(error.contains(why), "{error} does not say {why:?}");
    }

    #[test]
    fn a_label_may_have_63_characters_but_not_64() {
        let longest = format!("{}.com", "a".repeat(63));
        assert!(longest.parse::<ApiserverFqdn>().is_ok());
        let error = format!("{}.com", "a".repeat(64))
            .parse::<ApiserverFqdn>()
            .expect_err("a label too long");
        assert!(error
            .reason
            .contains("has 64 characters: expected at most 63"));
    }

    #[test]
    fn a_name_may_have_253_characters_plus_the_trailing_dot() {
        // 4 labels of 62 characters and dots: 4 * 62 + 3 = 251, then ".ab" makes 254.
        let label = "a".repeat(62);
        let longest = format!("{label}.{label}.{label}.{label}.a");
        assert_eq!(longest.len(), 253);
        assert!(longest.parse::<ApiserverFqdn>().is_ok());
        assert!(format!("{longest}.").parse::<ApiserverFqdn>().is_ok());
        let error = format!("{longest}b")
            .parse::<ApiserverFqdn>()
            .expect_err("a name too long");
        assert!(error.reason.contains("at most 253 characters"), "{error}");
    }
}
