//! The request-head deadline of one connection: from its accept (so through the TLS handshake),
//! and from each answer, a client gets the server's timeout (the webhook's `READ_TIMEOUT`, the
//! metrics port's `HEADER_TIMEOUT`) to send a complete request head, or its connection is
//! closed. This bounds a stalled handshake, a slow-loris head and an idle keep-alive connection.
//!
//! hyper's own `header_read_timeout` does the same with a timer created, registered and dropped
//! for every request: under keep-alive load that was a measurable share of the server's CPU per
//! request (`make bench`). Here a request costs two atomic stores, and a connection one timer
//! per timeout period.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use domain::ports::Clock;

/// `waiting_since` while a request is being answered: no head is awaited then.
const ANSWERING: u64 = u64::MAX;

#[derive(Debug)]
pub struct HeadDeadline<C> {
    clock: C,
    timeout: Duration,
    /// Clock time, in nanoseconds, since which a head is awaited; or [`ANSWERING`].
    waiting_since: AtomicU64,
}

impl<C: Clock> HeadDeadline<C> {
    /// Awaits the first head from now.
    pub fn new(clock: C, timeout: Duration) -> Self {
        let now = nanos(clock.now());
        Self {
            clock,
            timeout,
            waiting_since: AtomicU64::new(now),
        }
    }

    /// A complete head arrived: its body has a timeout of its own.
    pub fn head_received(&self) {
        self.waiting_since.store(ANSWERING, Ordering::Relaxed);
    }

    /// The answer is ready: the next head is awaited from now.
    pub fn answered(&self) {
        let now = nanos(self.clock.now());
        self.waiting_since.store(now, Ordering::Relaxed);
    }

    /// Completes once a head has been awaited for longer than the timeout. Sleeps until the
    /// earliest moment that can be true, and looks again, so progress costs the connection
    /// nothing but the stores above.
    pub async fn missed(&self) {
        loop {
            let waiting_since = self.waiting_since.load(Ordering::Relaxed);
            let wait = if waiting_since == ANSWERING {
                self.timeout
            } else {
                let waited = nanos(self.clock.now()).saturating_sub(waiting_since);
                match self.timeout.checked_sub(Duration::from_nanos(waited)) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            self.clock.sleep(wait).await;
        }
    }
}

/// Nanoseconds fit a `u64` for 584 years of uptime.
pub(super) fn nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(ANSWERING - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use tokio::time::advance;

    const TIMEOUT: Duration = Duration::from_secs(10);

    async fn missed_within(deadline: &HeadDeadline<TokioClock>, time: Duration) -> bool {
        tokio::select! {
            biased;
            () = deadline.missed() => true,
            () = advance(time) => false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_no_head_misses_it_after_the_timeout() {
        let deadline = HeadDeadline::new(TokioClock::default(), TIMEOUT);
        let missed = tokio::spawn(async move { deadline.missed().await });
        advance(Duration::from_millis(9_999)).await;
        assert!(!missed.is_finished());
        advance(Duration::from_millis(2)).await;
        tokio::task::yield_now().await;
        assert!(missed.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn each_answer_restarts_the_wait_for_the_next_head() {
        let deadline = HeadDeadline::new(TokioClock::default(), TIMEOUT);
        for _ in 0..5 {
            advance(Duration::from_secs(8)).await;
            deadline.head_received();
            deadline.answered();
        }
        assert!(!missed_within(&deadline, Duration::from_secs(9)).await);
        assert!(missed_within(&deadline, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn no_head_is_awaited_while_a_request_is_answered() {
        let deadline = HeadDeadline::new(TokioClock::default(), TIMEOUT);
        deadline.head_received();
        assert!(!missed_within(&deadline, Duration::from_secs(60)).await);
        deadline.answered();
        assert!(missed_within(&deadline, Duration::from_secs(11)).await);
    }
}
