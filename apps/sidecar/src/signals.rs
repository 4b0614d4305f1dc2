//! When to stop: SIGTERM (kubelet) or SIGINT (a person at a terminal).

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

#[derive(Debug)]
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs the handlers now, so a signal that arrives during the first sync is not lost.
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    /// Completes at the next SIGTERM or SIGINT.
    pub async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("received SIGTERM"),
            _ = self.interrupt.recv() => tracing::info!("received SIGINT"),
        }
    }
}
