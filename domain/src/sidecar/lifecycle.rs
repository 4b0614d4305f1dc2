//! The process from start to exit: one sync or a loop (`--daemon`), the startup taint's removal
//! beside it (`--startup-taint`), the cleanup (`--cleanup`), and the exit status they add up to.
//! The binary only wires the adapters to this.

use std::pin::pin;

use futures::future::Either;
use futures::{FutureExt, Stream, StreamExt};

use crate::ports::{Clock, Network, NodeTaints, RuleManager, SyncObserver};
use crate::sidecar::model::NetEvent;
use crate::sidecar::reconciler::NodeReconciler;
use crate::sidecar::report::Trigger;
use crate::sidecar::run::{run, sync_once, Schedule};
use crate::sidecar::startup_taint::{OneShot, StartupTaint, Verdicts};

/// `--daemon` and `--cleanup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub daemon: bool,
    pub cleanup: bool,
}

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The one-shot sync (and cleanup) succeeded, or the daemon stopped on a signal and cleaned
    /// up as asked.
    Success,
    /// The one-shot sync or a cleanup failed; the log says why.
    Failure,
    /// A second signal arrived during cleanup: the process leaves before it finished.
    Interrupted,
}

/// The sidecar's reconciler, and the clock, observer and schedule its syncs run with.
#[derive(Debug)]
pub struct Sidecar<'a, A, R, C, O> {
    pub reconciler: &'a mut NodeReconciler<A, R>,
    pub clock: &'a C,
    pub observer: &'a O,
    pub schedule: Schedule,
}

impl<A, R, C, O> Sidecar<'_, A, R, C, O>
where
    A: Network,
    R: RuleManager,
    C: Clock,
    O: SyncObserver,
{
    /// Runs the sidecar as `mode` asks until it is done. `stops` yields once per stop signal
    /// (SIGTERM, SIGINT): the first ends the daemon's loop, a second one cuts its cleanup short.
    /// `taint`, when set, is removed after a sync that put everything in place; in a one-shot
    /// only credentials that cannot be loaded change the exit status (see
    /// [`StartupTaint::remove_once`]).
    pub async fn live(
        self,
        mode: Mode,
        taint: Option<StartupTaint<impl NodeTaints>>,
        events: impl Stream<Item = NetEvent>,
        stops: impl Stream<Item = ()>,
    ) -> Exit {
        if mode.daemon {
            self.daemon(mode.cleanup, taint, events, stops).await
        } else {
            self.one_shot(mode.cleanup, taint).await
        }
    }

    /// `--daemon=false`: one sync, the taint's removal after it, the cleanup if asked.
    async fn one_shot<T: NodeTaints>(
        self,
        cleans_up: bool,
        taint: Option<StartupTaint<T>>,
    ) -> Exit {
        let (verdicts, mut verdict) = Verdicts::new(self.observer);
        let synced = sync_once(self.reconciler, self.clock, &verdicts, Trigger::Start)
            .await
            .succeeded();
        let tainted = match &taint {
            Some(taint) => {
                let in_place = matches!(verdict.try_recv(), Ok(true));
                taint.remove_once(in_place).await
            }
            None => OneShot::Done,
        };
        let cleaned = !cleans_up || cleanup(self.reconciler).await;
        if synced && cleaned && tainted == OneShot::Done {
            Exit::Success
        } else {
            Exit::Failure
        }
    }

    /// The loop until the first stop signal, the taint's removal beside it, then the cleanup if
    /// asked, which a second signal cuts short.
    async fn daemon(
        self,
        cleans_up: bool,
        taint: Option<StartupTaint<impl NodeTaints>>,
        events: impl Stream<Item = NetEvent>,
        stops: impl Stream<Item = ()>,
    ) -> Exit {
        // A signal source that ends has no more signals to give, rather than giving a stop.
        let mut stops = pin!(stops.chain(futures::stream::pending()));
        let Self {
            reconciler,
            clock,
            observer,
            schedule,
        } = self;
        {
            let (verdicts, verdict) = Verdicts::new(observer);
            let syncing = pin!(run(
                reconciler,
                clock,
                &verdicts,
                schedule,
                events,
                stops.next().map(drop),
            ));
            // Beside the loop, so that a slow or unreachable API server never holds a sync up.
            // Once the taint is gone its task, and the API client with it, is dropped; the loop
            // goes on.
            let removing = pin!(match taint {
                Some(taint) => taint.remove_after(clock, verdict).left_future(),
                None => futures::future::ready(()).right_future(),
            }
            .then(|()| futures::future::pending::<()>()));
            futures::future::select(syncing, removing).await;
        }
        if !cleans_up {
            tracing::info!("stopping; --cleanup is off, so the address stays");
            return Exit::Success;
        }
        tracing::info!("stopping; cleaning up (a second signal exits at once)");
        let cleaning = pin!(cleanup(reconciler));
        match futures::future::select(cleaning, stops.next()).await {
            Either::Left((true, _)) => Exit::Success,
            Either::Left((false, _)) => Exit::Failure,
            Either::Right(_) => {
                tracing::warn!("second signal: exiting before cleanup finished");
                Exit::Interrupted
            }
        }
    }
}

/// Removes what carries our marks, saying what and why; says whether it all went.
async fn cleanup<A: Network, R: RuleManager>(reconciler: &mut NodeReconciler<A, R>) -> bool {
    let outcome = reconciler.cleanup().await;
    for cleaned in &outcome.cleaned {
        tracing::info!(kind = cleaned.owned.kind().as_str(), "cleanup: {cleaned}");
    }
    for error in &outcome.errors {
        tracing::error!("cleanup: {error}");
    }
    if outcome.errors.is_empty() {
        tracing::info!(removed = outcome.cleaned.len(), "cleanup done");
    }
    outcome.errors.is_empty()
}

#[cfg(test)]
mod tests;
