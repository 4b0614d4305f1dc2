//! Reading the serving certificate, its key and the client CA from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use time::OffsetDateTime;

use super::not_after::{not_after, NotAfterError};

/// Why a certificate, key or CA file cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not valid PEM: {cause}")]
    Pem { path: PathBuf, cause: pem::Error },
    #[error("{path} holds no certificate: expected PEM blocks of type CERTIFICATE")]
    NoCertificate { path: PathBuf },
    #[error(
        "{path} holds no private key: expected a PEM block of type RSA PRIVATE KEY (PKCS#1), \
         PRIVATE KEY (PKCS#8) or EC PRIVATE KEY (SEC1)"
    )]
    NoKey { path: PathBuf },
    /// The key is of an unsupported type, or is not the key of the certificate (a rotation that
    /// replaced only one of the two files).
    #[error("key {key} does not serve certificate {cert}: {cause}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        cause: rustls::Error,
    },
    #[error("{path} holds a CA certificate that cannot be used: {cause}")]
    BadCa { path: PathBuf, cause: rustls::Error },
    /// Cannot happen to a certificate rustls accepted (webpki parsed the same field), short of a
    /// bug in the DER walk; kept as an error so that such a bug refuses a pair, never panics.
    #[error("{path}: {cause}")]
    NoExpiry { path: PathBuf, cause: NotAfterError },
}

/// A usable pair, and when its certificate expires.
#[derive(Debug, Clone)]
pub struct ServingPair {
    pub key: Arc<CertifiedKey>,
    pub not_after: OffsetDateTime,
}

/// Where the serving certificate (with its chain) and its key are: `--cert-dir` joined with
/// `--cert-name` and `--key-name`. The paths are kept as given, not resolved: a Kubernetes
/// secret volume swaps the `..data` symlink behind them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPaths {
    pub fn in_dir(dir: &Path, cert_name: &str, key_name: &str) -> Self {
        Self {
            cert: dir.join(cert_name),
            key: dir.join(key_name),
        }
    }

    /// Reads and checks the pair: the chain parses, the key parses (RSA PKCS#1 or PKCS#8,
    /// ECDSA SEC1 or PKCS#8, Ed25519) and is the key of the first certificate, whose NotAfter is
    /// read for the metrics and the log.
    pub fn load(&self, provider: &CryptoProvider) -> Result<ServingPair, CertError> {
        let chain = read_certificates(&self.cert)?;
        let leaf = chain.first().ok_or_else(|| CertError::NoCertificate {
            path: self.cert.clone(),
        })?;
        let not_after = not_after(leaf).map_err(|cause| CertError::NoExpiry {
            path: self.cert.clone(),
            cause,
        })?;
        let key_pem = read(&self.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|cause| match cause {
            pem::Error::NoItemsFound => CertError::NoKey {
                path: self.key.clone(),
            },
            cause => CertError::Pem {
                path: self.key.clone(),
                cause,
            },
        })?;
        // `from_der` also compares the key's public half with the certificate's.
        let key =
            CertifiedKey::from_der(chain, key, provider).map_err(|cause| CertError::Unusable {
                cert: self.cert.clone(),
                key: self.key.clone(),
                cause,
            })?;
        Ok(ServingPair {
            key: Arc::new(key),
            not_after,
        })
    }
}

/// The CAs that sign the client certificates `--client-ca-name` accepts.
pub fn load_client_roots(path: &Path) -> Result<Arc<RootCertStore>, CertError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path)? {
        roots.add(certificate).map_err(|cause| CertError::BadCa {
            path: path.to_owned(),
            cause,
        })?;
    }
    Ok(Arc::new(roots))
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|cause| CertError::Read {
        path: path.to_owned(),
        cause,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|cause| CertError::Pem {
            path: path.to_owned(),
            cause,
        })?;
    if certificates.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}
