//! The request-head deadlines of one connection:
//! - from its accept (so through the TLS handshake), a client gets the head timeout (the
//!   webhook's `READ_TIMEOUT`, the metrics port's `HEADER_TIMEOUT`) to send its first complete
//!   request head;
//! - after each answer, the connection is idle: it may wait the idle timeout for the first byte
//!   of its next request, and from that byte on gets the head timeout again for the rest of the
//!   head.
//!
//! So a stalled handshake and a slow-loris head are cut at the head timeout, while an idle
//! keep-alive connection is kept for the idle timeout: the webhook's is longer than the API
//! server's client keeps an idle connection (90 s), so this deadline never closes one first,
//! under a request the client has just sent on it (Go's client does not retry such a POST; the
//! cap and a shutdown still can: docs/webhook.md).
//!
//! hyper's own `header_read_timeout` does the head part with a timer created, registered and
//! dropped for every request: under keep-alive load that was a measurable share of the server's
//! CPU per request (`make bench`). Here a request costs two atomic stores, a read an atomic load,
//! and a connection one timer per head-timeout period.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use domain::ports::Clock;

/// `waiting_since` while a request is being answered: no head is awaited then.
const ANSWERING: u64 = u64::MAX;

#[derive(Debug)]
pub struct HeadDeadline<C> {
    clock: C,
    head_timeout: Duration,
    idle_timeout: Duration,
    /// Clock time, in nanoseconds, since which a head (or while `idle`, its first byte) is
    /// awaited; or [`ANSWERING`].
    waiting_since: AtomicU64,
    /// After an answer, until the first byte of the next request arrives.
    idle: AtomicBool,
}

impl<C: Clock> HeadDeadline<C> {
    /// Awaits the first head from now.
    pub fn new(clock: C, head_timeout: Duration, idle_timeout: Duration) -> Self {
        let now = nanos(clock.now());
        Self {
            clock,
            head_timeout,
            idle_timeout,
            waiting_since: AtomicU64::new(now),
            idle: AtomicBool::new(false),
        }
    }

    /// A complete head arrived: its body has a timeout of its own.
    pub fn head_received(&self) {
        self.waiting_since.store(ANSWERING, Ordering::Relaxed);
    }

    /// The answer is ready: the connection is idle from `now`.
    pub fn answered(&self, now: u64) {
        self.waiting_since.store(now, Ordering::Relaxed);
        self.idle.store(true, Ordering::Relaxed);
    }

    /// Bytes arrived at `now`: on an idle connection, the next head has begun, and gets the head
    /// timeout from now.
    pub fn bytes_arrived(&self, now: u64) {
        if self.idle.load(Ordering::Relaxed) {
            self.idle.store(false, Ordering::Relaxed);
            self.waiting_since.store(now, Ordering::Relaxed);
        }
    }

    /// Completes once a head, or while idle the next request's first byte, has been awaited for
    /// longer than its timeout. Sleeps until the earliest moment that can be true (while idle, at
    /// most a head timeout, so a head that begins meanwhile is still cut at its own), and looks
    /// again, so progress costs the connection nothing but the stores above.
    pub async fn missed(&self) {
        loop {
            let waiting_since = self.waiting_since.load(Ordering::Relaxed);
            let wait = if waiting_since == ANSWERING {
                self.head_timeout
            } else {
                let timeout = if self.idle.load(Ordering::Relaxed) {
                    self.idle_timeout
                } else {
                    self.head_timeout
                };
                let waited = nanos(self.clock.now()).saturating_sub(waiting_since);
                match timeout.checked_sub(Duration::from_nanos(waited)) {
                    Some(left) if !left.is_zero() => left.min(self.head_timeout),
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

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(120);

    fn deadline() -> HeadDeadline<TokioClock> {
        HeadDeadline::new(TokioClock::default(), HEAD, IDLE)
    }

    /// Now, on the deadline's own clock.
    fn now(deadline: &HeadDeadline<TokioClock>) -> u64 {
        nanos(deadline.clock.now())
    }

    async fn missed_within(deadline: &HeadDeadline<TokioClock>, time: Duration) -> bool {
        tokio::select! {
            biased;
            () = deadline.missed() => true,
            () = advance(time) => false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_no_head_misses_it_after_the_head_timeout() {
        let deadline = deadline();
        let missed = tokio::spawn(async move { deadline.missed().await });
        advance(Duration::from_millis(9_999)).await;
        assert!(!missed.is_finished());
        advance(Duration::from_millis(2)).await;
        tokio::task::yield_now().await;
        assert!(missed.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_of_a_first_head_do_not_extend_its_deadline() {
        let deadline = deadline();
        advance(Duration::from_secs(5)).await;
        deadline.bytes_arrived(now(&deadline));
        assert!(missed_within(&deadline, Duration::from_secs(6)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_kept_for_the_idle_timeout() {
        let deadline = deadline();
        for _ in 0..3 {
            deadline.head_received();
            deadline.answered(now(&deadline));
            assert!(!missed_within(&deadline, Duration::from_secs(119)).await);
            deadline.bytes_arrived(now(&deadline));
        }
        deadline.head_received();
        deadline.answered(now(&deadline));
        assert!(!missed_within(&deadline, Duration::from_secs(2)).await);
        assert!(missed_within(&deadline, Duration::from_secs(119)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_after_an_answer_gets_the_head_timeout_from_its_first_byte() {
        let deadline = deadline();
        deadline.head_received();
        deadline.answered(now(&deadline));
        advance(Duration::from_secs(60)).await;
        deadline.bytes_arrived(now(&deadline));
        advance(Duration::from_secs(5)).await;
        deadline.bytes_arrived(now(&deadline));
        assert!(!missed_within(&deadline, Duration::from_secs(4)).await);
        assert!(missed_within(&deadline, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn no_head_is_awaited_while_a_request_is_answered() {
        let deadline = deadline();
        deadline.head_received();
        assert!(!missed_within(&deadline, Duration::from_secs(600)).await);
        deadline.answered(now(&deadline));
        assert!(missed_within(&deadline, Duration::from_secs(121)).await);
    }
}
