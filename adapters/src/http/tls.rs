//! The rustls server configuration: TLS 1.2 and 1.3 only, HTTP/1.1, optional client certificates.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

/// Why the TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the crypto provider cannot do TLS 1.2 and 1.3: {cause}")]
    Versions { cause: rustls::Error },
    #[error("the client CA cannot verify client certificates: {cause}")]
    ClientVerifier {
        cause: rustls::server::VerifierBuilderError,
    },
}

/// The provider all TLS here uses: ring (see docs/webhook.md for why not aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration that takes its certificate from `certs` at every handshake and, with
/// `client_roots`, refuses clients without a certificate signed by one of them.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    certs: Arc<dyn ResolvesServerCert>,
    client_roots: Option<Arc<RootCertStore>>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|cause| TlsError::Versions { cause })?;
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|cause| TlsError::ClientVerifier { cause })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(certs);
    // HTTP/1.1 only, as controller-runtime's webhook server since HTTP/2 "rapid reset"
    // (CVE-2023-44487): the API server's client offers both and takes this one.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
