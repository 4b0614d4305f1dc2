//! The Kubernetes API server, reached with kube-rs for `--startup-taint` only: the client is
//! built on the first call, from the in-cluster configuration (the Pod's service account, whose
//! bound token kube re-reads as it rotates) or from `--kubeconfig`.

mod errors;
pub mod node_taints;

use std::path::PathBuf;
use std::time::Duration;

use domain::sidecar::taint::TaintError;

/// A connection attempt longer than this is a failure, retried by the domain with backoff.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A get or a patch of one Node is small: an answer slower than this is a failure too (kube's
/// default, 295 s, is meant for watches).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the credentials and the API server's address come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account's token and CA.
    InCluster,
    /// `--kubeconfig`: its current context.
    Kubeconfig(PathBuf),
}

impl Credentials {
    /// `--kubeconfig`, or the in-cluster configuration without it.
    pub fn from_flag(kubeconfig: Option<PathBuf>) -> Self {
        kubeconfig.map_or(Self::InCluster, Self::Kubeconfig)
    }

    /// A client with our timeouts. A failure is a [`TaintError::Config`] naming the source.
    async fn client(&self) -> Result<kube::Client, TaintError> {
        let refuse = |reason: String| TaintError::Config { reason };
        let mut config = match self {
            Self::InCluster => kube::Config::incluster()
                .map_err(|error| refuse(format!("in-cluster configuration: {error}")))?,
            Self::Kubeconfig(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .map_err(|error| refuse(format!("--kubeconfig={}: {error}", path.display())))?;
                let options = kube::config::KubeConfigOptions::default();
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|error| refuse(format!("--kubeconfig={}: {error}", path.display())))?
            }
        };
        // kube loads the system's roots for a kubeconfig without a CA before it honours
        // `insecure-skip-tls-verify`, and the FROM-scratch image has none, so the client failed
        // with "no valid native root CA certificates found". An empty set of roots is never
        // consulted: the flag replaces the verifier with one that accepts any certificate.
        if config.accept_invalid_certs && config.root_cert.is_none() {
            config.root_cert = Some(Vec::new());
        }
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(REQUEST_TIMEOUT);
        config.write_timeout = Some(REQUEST_TIMEOUT);
        kube::Client::try_from(config).map_err(|error| refuse(errors::chain(&error)))
    }
}
