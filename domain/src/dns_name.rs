//! DNS names as Kubernetes validates them (apimachinery's `IsDNS1123Label` and
//! `IsDNS1123Subdomain`): the one home of these rules, for the webhook's `--apiserver-fqdn` and
//! the sidecar's `--node-name` and taint key prefix alike.

/// DNS-1123 subdomain limit: a node's name, the prefix of a label key.
const MAX_SUBDOMAIN_BYTES: usize = 253;
/// DNS-1123 label limit.
const MAX_LABEL_BYTES: usize = 63;

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters.
pub fn check_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("expected a DNS-1123 subdomain such as node-1.example, got nothing".to_owned());
    }
    if name.len() > MAX_SUBDOMAIN_BYTES {
        return Err(format!(
            "expected at most {MAX_SUBDOMAIN_BYTES} characters, got {}",
            name.len()
        ));
    }
    name.split('.').try_for_each(check_label)
}

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.len() > MAX_LABEL_BYTES {
        return Err(format!(
            "label {label:?} has {} characters: expected at most {MAX_LABEL_BYTES}",
            label.len()
        ));
    }
    let alphanumeric = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = match (label.as_bytes().first(), label.as_bytes().last()) {
        (Some(&first), Some(&last)) => {
            alphanumeric(first)
                && alphanumeric(last)
                && label.bytes().all(|c| alphanumeric(c) || c == b'-')
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "label {label:?} is not a DNS-1123 label: expected lower case letters, digits or '-', \
             starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("a", true)]
    #[case("node-2", true)]
    #[case("0abc9", true)]
    #[case("", false)]
    #[case("-a", false)]
    #[case("a-", false)]
    #[case("A", false)]
    #[case("a_b", false)]
    #[case("a.b", false)]
    fn labels_are_lower_case_alphanumerics_and_inner_dashes(
        #[case] label: &str,
        #[case] valid: bool,
    ) {
        assert_eq!(check_label(label).is_ok(), valid, "{label:?}");
    }

    #[test]
    fn a_label_has_at_most_63_characters() {
        assert!(check_label(&"a".repeat(63)).is_ok());
        let error = check_label(&"a".repeat(64)).expect_err("too long");
        assert!(
            error.contains("has 64 characters: expected at most 63"),
            "{error}"
        );
    }

    #[rstest]
    #[case("node-2.example", true)]
    #[case("a", true)]
    #[case("", false)]
    #[case("a..b", false)]
    #[case("a.", false)]
    fn subdomains_are_labels_joined_by_dots(#[case] name: &str, #[case] valid: bool) {
        assert_eq!(check_subdomain(name).is_ok(), valid, "{name:?}");
    }

    #[test]
    fn a_subdomain_has_at_most_253_characters() {
        let label = "a".repeat(62);
        let longest = format!("{label}.{label}.{label}.{label}.a");
        assert_eq!(longest.len(), 253);
        assert!(check_subdomain(&longest).is_ok());
        let error = check_subdomain(&format!("{longest}b")).expect_err("too long");
        assert!(
            error.contains("expected at most 253 characters, got 254"),
            "{error}"
        );
    }
}
