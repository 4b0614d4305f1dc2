//! Which iptables backend the host uses. Rules written through the other one would sit in tables
//! that the host's kube-proxy and kubelet never look at, so the sidecar follows the host.

use std::cmp::Ordering;
use std::fmt;

use domain::sidecar::model::IpFamily;

use super::command::Tools;
use super::save;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `iptables-nft`: rules live in nf_tables, and every change is announced on netlink.
    Nft,
    /// `iptables-legacy`: the x_tables interface, guarded by the xtables lock, with no change
    /// events.
    Legacy,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        }
    }

    /// The tool that changes rules of `family`.
    pub fn iptables(self, family: IpFamily) -> &'static str {
        match (self, family) {
            (Backend::Nft, IpFamily::V4) => "iptables-nft",
            (Backend::Nft, IpFamily::V6) => "ip6tables-nft",
            (Backend::Legacy, IpFamily::V4) => "iptables-legacy",
            (Backend::Legacy, IpFamily::V6) => "ip6tables-legacy",
        }
    }

    /// The tool that lists rules of `family`.
    pub fn save(self, family: IpFamily) -> &'static str {
        match (self, family) {
            (Backend::Nft, IpFamily::V4) => "iptables-nft-save",
            (Backend::Nft, IpFamily::V6) => "ip6tables-nft-save",
            (Backend::Legacy, IpFamily::V4) => "iptables-legacy-save",
            (Backend::Legacy, IpFamily::V6) => "ip6tables-legacy-save",
        }
    }

    /// Picks the backend the host uses, the way Kubernetes' iptables-wrapper does, so the
    /// sidecar writes where kube-proxy and the kubelet write:
    /// 1. the kubelet's `KUBE-IPTABLES-HINT` or `KUBE-KUBELET-CANARY` chain in the mangle table
    ///    of nft, then of legacy;
    /// 2. otherwise the backend holding more rules;
    /// 3. otherwise (no rules anywhere) the distribution's choice: the mode `iptables -V` names.
    ///
    /// A tool that is missing or fails counts as showing nothing. This runs at most seven
    /// processes, once.
    pub async fn detect(tools: &Tools) -> Backend {
        let nft_mangle = dump(tools, Backend::Nft, &["-t", "mangle"]).await;
        if save::has_kubelet_hint(&nft_mangle) {
            return Backend::Nft;
        }
        // Everything rather than `-t mangle`: asking legacy for a table creates it in the kernel.
        let legacy = dump(tools, Backend::Legacy, &[]).await;
        if save::has_kubelet_hint(&legacy) {
            return Backend::Legacy;
        }
        let nft = dump(tools, Backend::Nft, &[]).await;
        match save::count_rules(&legacy).cmp(&save::count_rules(&nft)) {
            Ordering::Greater => Backend::Legacy,
            Ordering::Less => Backend::Nft,
            Ordering::Equal => match tools.run("iptables", &["-V"]).await {
                Ok(version) => Backend::from_version(&version),
                Err(error) => {
                    tracing::debug!(cause = %error, "no default iptables; choosing nft");
                    Backend::Nft
                }
            },
        }
    }

    /// The backend `iptables -V` names: `iptables v1.8.9 (nf_tables)` or `(legacy)`. Releases
    /// before 1.8 name none and only know legacy.
    fn from_version(version: &str) -> Backend {
        if version.contains("nf_tables") {
            Backend::Nft
        } else {
            Backend::Legacy
        }
    }
}

/// Logs a warning when kube-proxy runs in iptables mode (as far as its chains show at this
/// moment) in one of `families`: its DNAT from a Service's cluster IP to the address is undone
/// on the reply only through conntrack, which the rules' `-s ADDRESS --sport PORT -j NOTRACK`
/// skips, so Pods that connect through the cluster IP get no answer (docs/iptables.md). Runs
/// one `-save` per family, once, at start.
pub async fn warn_if_kube_proxy_iptables_mode(
    tools: &Tools,
    backend: Backend,
    families: &[IpFamily],
) {
    for &family in families {
        // Every table rather than `-t nat`: asking legacy for a table creates it in the kernel.
        let Ok(save) = tools.run(backend.save(family), &[]).await else {
            continue;
        };
        if save::has_kube_proxy_iptables_mode(&save) {
            tracing::warn!(
                "kube-proxy runs in iptables mode here (KUBE-SERVICES and KUBE-SVC- chains in the nat table of {}): with --setup-iptables, Pods that reach the proxy through a Service's cluster IP get no answer, since the NOTRACK rule for the proxy's replies skips the conntrack entry that would undo kube-proxy's DNAT; drop --setup-iptables on this node (docs/iptables.md)",
                backend.save(family)
            );
            return;
        }
    }
}

/// Both families' `-save` output of `backend`, or what there is of it.
async fn dump(tools: &Tools, backend: Backend, args: &[&str]) -> String {
    let mut all = String::new();
    for family in IpFamily::ALL {
        match tools.run(backend.save(family), args).await {
            Ok(text) => all.push_str(&text),
            Err(error) => tracing::debug!(cause = %error, "backend detection sees nothing here"),
        }
    }
    all
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::nft("iptables v1.8.9 (nf_tables)\n", Backend::Nft)]
    #[case::legacy("iptables v1.8.9 (legacy)\n", Backend::Legacy)]
    #[case::before_nft_existed("iptables v1.6.1\n", Backend::Legacy)]
    fn the_default_follows_iptables_version(#[case] version: &str, #[case] backend: Backend) {
        assert_eq!(Backend::from_version(version), backend);
    }
}
