//! When to stop: SIGTERM (kubelet) or SIGINT (a person at a terminal).

use futures::stream::{self, Stream};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Why the handlers cannot be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot handle {signal}: {cause}")]
pub struct SignalError {
    pub signal: &'static str,
    pub cause: std::io::Error,
}

#[derive(Debug)]
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs the handlers now, so a signal that arrives during start-up is not lost.
    pub fn install() -> Result<Self, SignalError> {
        let install = |kind, name| {
            signal(kind).map_err(|cause| SignalError {
                signal: name,
                cause,
            })
        };
        Ok(Self {
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    /// Every SIGTERM or SIGINT from now on, one item each.
    pub fn into_stream(self) -> impl Stream<Item = ()> {
        stream::unfold(self, |mut signals| async {
            signals.next().await;
            Some(((), signals))
        })
    }

    /// Completes at the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("received SIGTERM"),
            _ = self.interrupt.recv() => tracing::info!("received SIGINT"),
        }
    }
}
