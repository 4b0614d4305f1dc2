//! The sidecar's loop: one sync at start, then on every interval, at once on a relevant network
//! event, and sooner after a failure. The reconciler never learns why it runs; the trigger only
//! goes into logs and metrics, and decides whether stale entries are collected after the sync
//! (a separate reconciler operation: see [`Trigger::collects_stale`]).

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use tracing::Instrument;

use crate::ports::{Clock, Network, RuleManager, SyncObserver};
use crate::sidecar::model::NetEvent;
use crate::sidecar::reconciler::NodeReconciler;
use crate::sidecar::report::{SyncOutcome, SyncReport, Trigger};
use crate::sidecar::stale::{MAX_YIELD_PASSES, YIELD_PASSES};

/// How long to wait before the next sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// `--sync-interval`: the safety net that catches what no event reported.
    pub interval: Duration,
    /// The first retry after a failed sync; each further failure doubles it, up to `interval`.
    pub first_retry: Duration,
}

impl Schedule {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            first_retry: Duration::from_secs(1),
        }
    }

    /// The wait after `failures` failed syncs in a row (0 after a success).
    pub fn wait_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.interval;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.first_retry.saturating_mul(factor).min(self.interval)
    }
}

/// Runs one sync, times it, and tells the observer and the log.
pub async fn sync_once<A, R, C, O>(
    reconciler: &mut NodeReconciler<A, R>,
    clock: &C,
    observer: &O,
    trigger: Trigger,
) -> SyncOutcome
where
    A: Network,
    R: RuleManager,
    C: Clock,
    O: SyncObserver,
{
    // The trigger goes into the span, once, not into every line the sync logs.
    let span = tracing::info_span!("sync", trigger = trigger.as_str());
    async {
        let started = clock.now();
        let mut outcome = reconciler.sync().await;
        if trigger.collects_stale() {
            let collected = reconciler.collect_stale().await;
            outcome.stale_removed.extend(collected.stale_removed);
            outcome.yields.extend(collected.yields);
            outcome.errors.extend(collected.errors);
        }
        let duration = clock.now().saturating_sub(started);
        for repair in &outcome.repairs {
            tracing::info!(kind = repair.kind().as_str(), "{repair}");
        }
        for owned in &outcome.stale_removed {
            tracing::info!(
                kind = owned.kind().as_str(),
                "removed stale {owned}: {}, and this instance does not want it",
                owned.mark()
            );
        }
        for owned in &outcome.yields {
            tracing::info!(
                kind = owned.kind().as_str(),
                "stale {owned} came back after it was removed: another instance owns it; leaving it alone for {YIELD_PASSES} intervals, twice as long each time it comes back again (at most {MAX_YIELD_PASSES})"
            );
        }
        for error in &outcome.errors {
            tracing::error!(kind = error.kind(), "{error}");
        }
        tracing::debug!(?duration, ok = outcome.succeeded(), "sync finished");
        observer.sync_finished(&SyncReport {
            trigger,
            outcome: &outcome,
            duration,
            addresses: reconciler.addresses_present(),
        });
        outcome
    }
    .instrument(span)
    .await
}

/// Keeps the desired state until `shutdown` completes. Never returns early: a failed sync is
/// retried, a broken event stream leaves the interval as the safety net.
pub async fn run<A, R, C, O, E, S>(
    reconciler: &mut NodeReconciler<A, R>,
    clock: &C,
    observer: &O,
    schedule: Schedule,
    events: E,
    shutdown: S,
) where
    A: Network,
    R: RuleManager,
    C: Clock,
    O: SyncObserver,
    E: Stream<Item = NetEvent>,
    S: Future<Output = ()>,
{
    // An ended stream must not end the loop nor spin it: it just never yields again.
    let mut events = pin!(events.chain(futures::stream::pending()).fuse());
    let mut shutdown = pin!(shutdown.fuse());
    let mut trigger = Trigger::Start;
    let mut failures = 0;
    // When the next interval sync is due. Only start and interval syncs move it: on a busy node
    // events come more often than the interval, and restarting the wait on each would keep the
    // interval (and stale collection with it) from ever running.
    let mut next_interval = Duration::ZERO;
    loop {
        let outcome = sync_once(reconciler, clock, observer, trigger).await;
        failures = if outcome.succeeded() { 0 } else { failures + 1 };
        if matches!(trigger, Trigger::Start | Trigger::Interval) {
            next_interval = clock.now().saturating_add(schedule.interval);
        }
        let due = match failures {
            0 => next_interval.saturating_sub(clock.now()),
            _ => schedule.wait_after(failures),
        };
        let mut wait = pin!(clock.sleep(due).fuse());
        trigger = loop {
            futures::select_biased! {
                () = shutdown => return,
                () = wait => break if failures == 0 { Trigger::Interval } else { Trigger::Retry },
                event = events.next() => match event {
                    Some(event) if reconciler.is_relevant(&event) => {
                        tracing::debug!(?event, "network change");
                        // A burst (a flush, a restore) arrives as many events: one sync covers them.
                        while let Some(Some(_)) = events.next().now_or_never() {}
                        break Trigger::Event;
                    }
                    Some(_) | None => {}
                },
            }
        };
    }
}

#[cfg(test)]
mod tests;
