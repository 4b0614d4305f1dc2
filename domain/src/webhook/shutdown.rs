//! How the webhook leaves: the phases from the first stop signal to the end, and what each stop,
//! the shutdown delay's end and the grace's end do. The adapter (`adapters/src/http/server.rs`)
//! keeps only the I/O: it accepts until [`Shutdown::until_listener_closes`] completes, closes the
//! listener, tells the connections to finish, and waits through
//! [`Shutdown::until_connections_finish`].
//!
//! Why a delay at all (the API server learns late that this endpoint is leaving) is in
//! docs/webhook.md#shutdown. The waits are on the [`Clock`] port, so the sequence is tested
//! without time passing.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use futures::future::{select, Either};
use futures::{Stream, StreamExt};

use crate::duration::format_go_duration;
use crate::ports::Clock;

/// Where the webhook is on its way out: one value, read by readiness, by each answer (whether it
/// closes its connection) and by the metrics, so that they never disagree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Before the first stop: ready, connections kept alive.
    #[default]
    Serving,
    /// The shutdown delay: still accepting and answering, but not ready, and every answer closes
    /// its connection, so the API server opens its next one to an endpoint it still knows.
    Draining,
    /// The listener is closed: the requests in flight finish, for at most the grace.
    Closing,
    /// Every connection has ended, or the grace ran out.
    Stopped,
}

impl Phase {
    /// In the order they come, indexed by their discriminants.
    const ALL: [Self; 4] = [Self::Serving, Self::Draining, Self::Closing, Self::Stopped];

    /// Whether the webhook is on its way out: not ready, and every answer closes its connection.
    pub fn is_leaving(self) -> bool {
        self != Self::Serving
    }
}

/// The phase, shared between the sequence that moves it and everything that reads it: one
/// atomic, as every answer reads it.
#[derive(Debug, Default)]
pub struct SharedPhase(AtomicU8);

impl SharedPhase {
    pub fn get(&self) -> Phase {
        Phase::ALL[usize::from(self.0.load(Ordering::Relaxed))]
    }

    /// Moves to `phase`. Only [`Shutdown`] does this outside tests.
    pub fn enter(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }
}

/// How long the requests in flight get once the listener is closed.
pub const GRACE: Duration = Duration::from_secs(10);

/// The longest shutdown delay: the delay and the [`GRACE`] must fit the Pod's
/// `terminationGracePeriodSeconds`, or the kubelet kills the process before it has finished.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Kubernetes' default `terminationGracePeriodSeconds`: a delay that does not fit it with the
/// grace needs the Pod's raised.
pub const DEFAULT_TERMINATION_GRACE: Duration = Duration::from_secs(30);

/// A shutdown delay longer than [`MAX_DELAY`]: the kubelet would kill the process mid-drain
/// unless the Pod's grace period were raised past any sensible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected a Go duration of at most {}: the delay and the {} given to requests in flight after it must fit the Pod's terminationGracePeriodSeconds",
    format_go_duration(MAX_DELAY),
    format_go_duration(GRACE)
)]
pub struct DelayTooLong;

/// `delay` as a shutdown delay: at most [`MAX_DELAY`].
pub fn check_delay(delay: Duration) -> Result<Duration, DelayTooLong> {
    if delay > MAX_DELAY {
        return Err(DelayTooLong);
    }
    Ok(delay)
}

/// The two waits of a shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `--shutdown-delay-duration`: how long the webhook still serves after the first stop; `0s`
    /// closes the listener at the first stop, as the Go original does.
    pub delay: Duration,
    /// How long the requests in flight get once the listener is closed.
    pub grace: Duration,
}

impl Timing {
    /// `delay`, then the [`GRACE`].
    pub fn with_delay(delay: Duration) -> Self {
        Self {
            delay,
            grace: GRACE,
        }
    }

    /// The longest a stop takes (the delay and the grace), when that is more than
    /// [`DEFAULT_TERMINATION_GRACE`]: the Pod's must then be raised, or the kubelet kills the
    /// webhook before it has finished.
    pub fn outlasting_default_termination_grace(&self) -> Option<Duration> {
        let longest = self.delay + self.grace;
        (longest > DEFAULT_TERMINATION_GRACE).then_some(longest)
    }
}

/// How the requests in flight ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every connection ended within the grace.
    Finished,
    /// The grace ran out first: the connections still open are closed under their requests.
    GraceRanOut,
}

/// The shutdown sequence of one server.
#[derive(Debug)]
pub struct Shutdown<'a, C> {
    clock: &'a C,
    timing: Timing,
    phase: &'a SharedPhase,
}

impl<'a, C: Clock> Shutdown<'a, C> {
    pub fn new(clock: &'a C, timing: Timing, phase: &'a SharedPhase) -> Self {
        Self {
            clock,
            timing,
            phase,
        }
    }

    /// Completes when the listener should close, in [`Phase::Closing`]: at the first of `stops`
    /// when there is no delay; else the first stop starts [`Phase::Draining`], which lasts the
    /// delay or until a second stop. A `stops` that ends has no more stops to give.
    pub async fn until_listener_closes(&self, stops: impl Stream<Item = ()>) {
        let mut stops = pin!(stops.chain(futures::stream::pending()));
        stops.next().await;
        if !self.timing.delay.is_zero() {
            self.phase.enter(Phase::Draining);
            tracing::info!(
                delay = %format_go_duration(self.timing.delay),
                "shutdown delay: still serving until the API server drops this endpoint; every \
                 answer closes its connection, /readyz fails (a second signal ends the delay)"
            );
            let delay = pin!(self.clock.sleep(self.timing.delay));
            if let Either::Right(_) = select(delay, stops.next()).await {
                tracing::info!("a second signal: the shutdown delay ends now");
            }
        }
        self.phase.enter(Phase::Closing);
    }

    /// Once the listener is closed and the connections are told to finish: waits until
    /// `finished` (every connection has ended), for at most the grace, and enters
    /// [`Phase::Stopped`]. Stops that come now change nothing: the grace is short already.
    pub async fn until_connections_finish(&self, finished: impl Future<Output = ()>) -> Ending {
        let grace = pin!(self.clock.sleep(self.timing.grace));
        let ending = match select(pin!(finished), grace).await {
            Either::Left(_) => Ending::Finished,
            Either::Right(_) => {
                tracing::warn!(
                    grace = ?self.timing.grace,
                    "requests still in flight after the grace period: closing their connections"
                );
                Ending::GraceRanOut
            }
        };
        self.phase.enter(Phase::Stopped);
        ending
    }
}

#[cfg(test)]
mod tests;
