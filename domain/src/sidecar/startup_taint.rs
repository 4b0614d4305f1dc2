//! `--startup-taint`: the node registers with a `NoSchedule` taint, so that the scheduler places
//! no new Pod there before the proxy address exists; the sidecar removes it once a sync has put
//! the address (and the rules, when on) in place.
//!
//! - Never before: each attempt waits until the latest sync left everything in place.
//! - Once: after the taint is gone (or was never there) the Node is not read again, and the taint
//!   is never put back (a `NoSchedule` taint would not help the Pods already running).
//! - Only ours: every entry with our key, whatever its effect, in one patch that `test`s each
//!   entry first, so a concurrent change by another controller is re-read, never overwritten.
//! - Quietly: failures are retried with backoff; the log says when failing starts, when the kind
//!   of failure changes, and when it recovers, never once per try.

use std::pin::pin;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, Stream, StreamExt};

use crate::ports::{Clock, NodeTaints, SyncObserver};
use crate::sidecar::report::SyncReport;
use crate::sidecar::run::Schedule;
use crate::sidecar::taint::{NodeName, Taint, TaintError, TaintKey};

/// The wait before the first retry; it doubles with each failure, up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// Long enough to spare an API server that is down, short enough that a node waits little longer
/// than the outage.
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// What an attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// This many entries with our key were removed.
    Removed(usize),
    /// The Node has no taint with our key: nothing to do.
    Absent,
}

/// The startup taint of one node, and the port that reaches its Node.
#[derive(Debug)]
pub struct StartupTaint<T> {
    taints: T,
    key: TaintKey,
    node: NodeName,
}

impl<T: NodeTaints> StartupTaint<T> {
    pub fn new(taints: T, key: TaintKey, node: NodeName) -> Self {
        Self { taints, key, node }
    }

    /// One attempt: read the taints, remove every entry with our key in one guarded patch.
    pub async fn attempt(&self) -> Result<Removal, TaintError> {
        let ours: Vec<(usize, Taint)> = self
            .taints
            .taints()
            .await?
            .into_iter()
            .enumerate()
            .filter(|(_, taint)| taint.key == self.key.as_str())
            // From the highest index down, so that each removal leaves the next index valid.
            .rev()
            .collect();
        if ours.is_empty() {
            return Ok(Removal::Absent);
        }
        self.taints.remove(&ours).await?;
        Ok(Removal::Removed(ours.len()))
    }

    /// The one-shot run, after its sync: one attempt if `in_place`. A failure is logged and left
    /// to the daemon: an init container that failed on it would keep Envoy, and with it the
    /// in-cluster path to the API server, from ever starting.
    pub async fn remove_once(&self, in_place: bool) {
        if !in_place {
            tracing::info!(
                "the address is not in place: leaving the startup taint {} on node {}",
                self.key,
                self.node
            );
            return;
        }
        match self.attempt().await {
            Ok(removal) => self.log_done(removal),
            Err(error) => tracing::warn!(
                kind = error.kind(),
                "cannot remove the startup taint {} from node {}: {error}; the daemon retries",
                self.key,
                self.node
            ),
        }
    }

    /// The daemon: attempts once the latest of `verdicts` (one per sync: did it leave everything
    /// in place?) says yes, retries with backoff until the taint is gone, then returns.
    pub async fn remove_after<C, V>(self, clock: &C, verdicts: V)
    where
        C: Clock,
        V: Stream<Item = bool>,
    {
        let mut verdicts = pin!(verdicts);
        let mut in_place = false;
        let mut failures: u32 = 0;
        let mut failing: Option<&'static str> = None;
        let backoff = Schedule {
            interval: LONGEST_WAIT,
            first_retry: FIRST_WAIT,
        };
        loop {
            wait_in_place(&mut verdicts, &mut in_place).await;
            match self.attempt().await {
                Ok(removal) => {
                    if failures > 0 {
                        let plural = if failures == 1 { "" } else { "s" };
                        tracing::info!(
                            failures,
                            "the API server answers again after {failures} failed attempt{plural}"
                        );
                    }
                    self.log_done(removal);
                    return;
                }
                Err(error) => {
                    failures += 1;
                    if failing != Some(error.kind()) {
                        let already = if failing.is_some() { "still " } else { "" };
                        tracing::warn!(
                            kind = error.kind(),
                            "{already}cannot remove the startup taint {} from node {}: {error}; retrying with backoff (logged again only when the failure changes or ends)",
                            self.key,
                            self.node
                        );
                        failing = Some(error.kind());
                    }
                    clock.sleep(backoff.wait_after(failures)).await;
                }
            }
        }
    }

    fn log_done(&self, removal: Removal) {
        match removal {
            Removal::Removed(_) => tracing::info!(
                "removed the startup taint {} from node {}: new Pods may be scheduled here",
                self.key,
                self.node
            ),
            Removal::Absent => tracing::info!(
                "node {} has no startup taint {}: nothing to remove",
                self.node,
                self.key
            ),
        }
    }
}

/// Returns once the newest verdict says everything is in place. Verdicts that queued up while
/// an attempt or a backoff ran are read first: only the latest sync counts.
async fn wait_in_place<V: Stream<Item = bool> + Unpin>(verdicts: &mut V, in_place: &mut bool) {
    while let Some(Some(verdict)) = verdicts.next().now_or_never() {
        *in_place = verdict;
    }
    while !*in_place {
        match verdicts.next().await {
            Some(verdict) => *in_place = verdict,
            // No sync will ever report again: the daemon is stopping.
            None => futures::future::pending().await,
        }
    }
}

/// Whether a sync left everything in place: it succeeded (address and rules) and every address
/// is on its interface.
pub fn in_place(report: &SyncReport<'_>) -> bool {
    report.outcome.succeeded() && report.addresses.iter().all(|(_, present)| *present)
}

/// Passes every sync report on, and its verdict to the taint's task.
#[derive(Debug)]
pub struct Verdicts<'a, O> {
    inner: &'a O,
    sender: mpsc::UnboundedSender<bool>,
}

impl<'a, O: SyncObserver> Verdicts<'a, O> {
    /// The observer, and the stream of verdicts for [`StartupTaint::remove_after`].
    pub fn new(inner: &'a O) -> (Self, mpsc::UnboundedReceiver<bool>) {
        let (sender, receiver) = mpsc::unbounded();
        (Self { inner, sender }, receiver)
    }
}

impl<O: SyncObserver> SyncObserver for Verdicts<'_, O> {
    fn sync_finished(&self, report: &SyncReport<'_>) {
        self.inner.sync_finished(report);
        // Refused once the taint is gone and its task has ended: nobody needs verdicts then.
        let _ = self.sender.unbounded_send(in_place(report));
    }
}

#[cfg(test)]
mod tests;
