//! `--startup-taint`: the node registers with a `NoSchedule` taint, so that the scheduler places
//! no new Pod there before the path to the API server works; the sidecar removes it once a sync
//! has put the address (and the rules, when on) in place and, unless `--wait-for-proxy=false`,
//! the proxy answers on every address (a TCP connection to `--ip-address:--port` succeeds).
//!
//! - Never before: each attempt waits until the latest sync left everything in place, then for
//!   the proxy, probed at the [`WAITING`] pace (never only at the sync interval).
//! - Once: after the taint is gone (or was never there) the Node is not read again, and the taint
//!   is never put back (a `NoSchedule` taint would not help the Pods already running).
//! - Only ours: every entry with our key, whatever its effect, in one patch that `test`s each
//!   entry first, so a concurrent change by another controller is re-read, never overwritten.
//! - Quietly: failures are retried with backoff; the log says when failing starts, when the kind
//!   of failure changes, and when it recovers, never once per try.
//! - The one-shot (an init container, which runs before the proxy can start) never waits: it
//!   removes the taint only if the proxy answers at its one probe, and never retries
//!   ([`StartupTaint::remove_once`]).

use std::pin::pin;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, Stream, StreamExt};

use crate::ports::{Clock, NodeTaints, SyncObserver};
use crate::sidecar::proxy::{Proxy, WAITING};
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
    /// The proxy that must answer first; `None` with `--wait-for-proxy=false`.
    proxy: Option<Proxy>,
}

/// How a one-shot's attempt bears on its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneShot {
    /// Removed, absent, or left for the daemon for a reason that may pass (the proxy or the API
    /// server not answering yet, RBAC not granted yet): the exit status is the sync's.
    Done,
    /// The credentials cannot be loaded: a retry with the same flags fails alike, and so would
    /// the daemon, so the one-shot fails loudly rather than leave the node tainted in silence.
    Failed,
}

impl<T: NodeTaints> StartupTaint<T> {
    /// Removal once the address is in place, without waiting for the proxy.
    pub fn new(taints: T, key: TaintKey, node: NodeName) -> Self {
        Self {
            taints,
            key,
            node,
            proxy: None,
        }
    }

    /// Waits for `proxy` to answer, too (the default, `--wait-for-proxy`).
    pub fn waiting_for(self, proxy: Proxy) -> Self {
        Self {
            proxy: Some(proxy),
            ..self
        }
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

    /// The one-shot run, after its sync: one attempt if `in_place` and the proxy answers at once.
    /// It never waits for the proxy, which starts only after this init container (waiting would
    /// deadlock), and never retries: whatever it leaves, the daemon removes once it may. Every
    /// outcome is one log line.
    pub async fn remove_once(&self, in_place: bool) -> OneShot {
        const LEFT: &str = "a one-shot does not retry: the sidecar daemon with --startup-taint removes it once it may";
        if !in_place {
            tracing::info!(
                "the address is not in place: leaving the startup taint {} on node {}; {LEFT}",
                self.key,
                self.node
            );
            return OneShot::Done;
        }
        if let Some(proxy) = &self.proxy {
            if let Err(unanswered) = proxy.answers().await {
                tracing::info!(
                    "{unanswered}: leaving the startup taint {} on node {}; a one-shot never waits for the proxy (it starts after this init container): the sidecar daemon removes the taint once the proxy answers",
                    self.key,
                    self.node
                );
                return OneShot::Done;
            }
        }
        match self.attempt().await {
            Ok(removal) => {
                self.log_done(removal);
                OneShot::Done
            }
            Err(error @ TaintError::Config { .. }) => {
                tracing::error!(
                    kind = error.kind(),
                    "cannot remove the startup taint {} from node {}: {error}; a one-shot does not retry, and a daemon with these flags would fail alike: exiting 1",
                    self.key,
                    self.node
                );
                OneShot::Failed
            }
            Err(error) => {
                tracing::warn!(
                    kind = error.kind(),
                    "cannot remove the startup taint {} from node {}: {error}; {LEFT}",
                    self.key,
                    self.node
                );
                OneShot::Done
            }
        }
    }

    /// The daemon: attempts once the latest of `verdicts` (one per sync: did it leave everything
    /// in place?) says yes and the proxy answers, retries with backoff until the taint is gone,
    /// then returns. The proxy is probed again before every attempt.
    pub async fn remove_after<C, V>(self, clock: &C, verdicts: V)
    where
        C: Clock,
        V: Stream<Item = bool>,
    {
        let mut verdicts = pin!(verdicts);
        let mut in_place = false;
        let mut failures: u32 = 0;
        let mut failing: Option<&'static str> = None;
        let mut unanswered: u32 = 0;
        let backoff = Schedule {
            interval: LONGEST_WAIT,
            first_retry: FIRST_WAIT,
        };
        loop {
            wait_in_place(&mut verdicts, &mut in_place).await;
            if let Some(proxy) = &self.proxy {
                match proxy.answers().await {
                    Ok(()) if unanswered > 0 => {
                        tracing::info!(
                            "the proxy answers on {}: removing the startup taint {}",
                            proxy.targets(),
                            self.key
                        );
                        unanswered = 0;
                    }
                    Ok(()) => {}
                    Err(why) => {
                        unanswered += 1;
                        if unanswered == 1 {
                            tracing::info!(
                                "{why}: the startup taint {} stays on node {} until it does (probing every {}s at most)",
                                self.key,
                                self.node,
                                WAITING.interval.as_secs()
                            );
                        }
                        clock.sleep(WAITING.wait_after(unanswered)).await;
                        continue;
                    }
                }
            }
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
