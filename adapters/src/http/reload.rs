//! The serving certificate, reloaded when its files change: rotation without restart.
//!
//! rustls asks a [`ResolvesServerCert`] for the certificate at every handshake, so swapping the
//! pair behind a lock is enough; connections already open keep the pair they started with.
//! Changes are found by polling `stat` of both paths once a second: it follows symlinks, so it
//! sees the Kubernetes secret-volume swap of `..data` as well as an in-place rewrite, costs two
//! system calls a second, and needs no inotify watch on a directory that is itself replaced.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use domain::ports::Clock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use super::certs::{CertError, CertPaths, ServingPair};
use crate::metrics::webhook::WebhookMetrics;
use crate::rfc3339::rfc3339;

/// How often the files are looked at. A rotated certificate is served within this time.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What a look at the files found.
#[derive(Debug)]
pub enum Reload {
    /// The files are as they were at the last look.
    Unchanged,
    /// The files changed and the new pair is served from now on.
    Reloaded { not_after: OffsetDateTime },
    /// The files changed but the new pair is unusable: the last good pair is still served.
    /// Not retried until the files change again.
    Refused(CertError),
}

/// Identity of one file as `stat` sees it through symlinks; a rewrite changes the modification
/// time or size, a replacement the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    modified_nanos: i128,
    len: u64,
}

type PairStamp = (Option<FileStamp>, Option<FileStamp>);

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        device: metadata.dev(),
        inode: metadata.ino(),
        modified_nanos: i128::from(metadata.mtime()) * 1_000_000_000
            + i128::from(metadata.mtime_nsec()),
        len: metadata.len(),
    })
}

/// Serves the last good certificate pair read from [`CertPaths`].
pub struct ReloadingCertResolver {
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    current: RwLock<ServingPair>,
    /// The files as they were when last read, good or not.
    seen: Mutex<PairStamp>,
}

impl ReloadingCertResolver {
    /// Reads the pair once; a start-up without a usable pair is an error, not a wait.
    pub fn load(paths: CertPaths, provider: Arc<CryptoProvider>) -> Result<Self, CertError> {
        let seen = (stamp(&paths.cert), stamp(&paths.key));
        let current = paths.load(&provider)?;
        Ok(Self {
            paths,
            provider,
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        })
    }

    /// Looks at the files once, and reloads the pair if they changed.
    pub fn check(&self) -> Reload {
        let now = (stamp(&self.paths.cert), stamp(&self.paths.key));
        {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match self.paths.load(&self.provider) {
            Ok(pair) => {
                let not_after = pair.not_after;
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = pair;
                Reload::Reloaded { not_after }
            }
            Err(cause) => Reload::Refused(cause),
        }
    }

    /// Checks every [`POLL_INTERVAL`] on `clock` (the pair was read at [`load`](Self::load)
    /// just before), for ever, logging and counting each reload and each refusal. A check takes
    /// two `stat` calls, so sleeping after it rather than keeping a fixed rate changes nothing.
    pub async fn watch(self: Arc<Self>, metrics: Arc<WebhookMetrics>, clock: impl Clock) {
        loop {
            clock.sleep(POLL_INTERVAL).await;
            match self.check() {
                Reload::Unchanged => {}
                Reload::Reloaded { not_after } => {
                    metrics.certificate_reloaded(not_after);
                    tracing::info!(
                        cert = %self.paths.cert.display(),
                        key = %self.paths.key.display(),
                        not_after = %rfc3339(not_after),
                        "reloaded the serving certificate"
                    );
                }
                Reload::Refused(cause) => {
                    metrics.certificate_refused();
                    tracing::error!(
                        %cause,
                        "refused the changed serving certificate: still serving the last good one"
                    );
                }
            }
        }
    }

    /// The pair handshakes get now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.serving().key)
    }

    /// When the certificate served now expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.serving().not_after
    }

    fn serving(&self) -> std::sync::RwLockReadGuard<'_, ServingPair> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
