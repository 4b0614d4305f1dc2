//! The webhook's open connections, at most a cap.
//!
//! The API server needs few connections (it keeps a handful alive per webhook), but anyone who
//! reaches the port can open thousands, and each costs memory (TLS state, buffers, a task) until
//! its head deadline closes it. At the cap, a new connection pushes out the one that has waited
//! longest for a request head (from its accept or its last answer): an idle keep-alive
//! connection, or one that has sent nothing yet. A connection whose TLS handshake is under way
//! goes only when there is no such one: under a flood of connections that send nothing, a
//! newer connection arrives every few microseconds, and a good client's handshake, which takes
//! milliseconds, would otherwise be pushed out before it completes. So a flood costs the flooder
//! its own oldest connections, memory stays bounded, and a good client still gets in and is
//! answered. A connection busy with a request is never pushed out; when every one is busy, the
//! new connection is closed instead.
//!
//! The log says when the cap is reached and when the count has fallen well below it again (to
//! [`CALM`] of the cap, so that a count hovering at the cap does not log on every connection),
//! with how many connections were pushed out or refused meanwhile: never a line per connection.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domain::ports::Clock;
use tokio::sync::Notify;

use super::head_deadline::HeadDeadline;

/// The fraction of the cap the count must fall to before the cap is logged as no longer reached.
const CALM: (usize, usize) = (3, 4);

/// The open connections, and the cap on them.
#[derive(Debug)]
pub struct Connections<C> {
    /// Names the listener in the log, as the accept loop does.
    server: &'static str,
    cap: usize,
    clock: C,
    timeout: Duration,
    state: Mutex<State<C>>,
}

#[derive(Debug)]
struct State<C> {
    next_id: u64,
    open: HashMap<u64, Arc<Slot<C>>>,
    /// While the cap is reached: the connections pushed out and refused since it was.
    at_cap: Option<Pressure>,
}

#[derive(Debug, Default)]
struct Pressure {
    pushed_out: u64,
    refused: u64,
}

#[derive(Debug)]
struct Slot<C> {
    deadline: HeadDeadline<C>,
    handshaking: AtomicBool,
    pushed_out: Notify,
}

/// Why a connection's serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The connection ended by itself: the client closed it, or it failed.
    Served,
    /// No complete request head came in time.
    DeadlineMissed,
    /// A newer connection took its place at the cap.
    PushedOut,
}

/// A connection's place among the open ones, given up on drop.
#[derive(Debug)]
pub struct Admitted<C> {
    connections: Arc<Connections<C>>,
    id: u64,
    slot: Arc<Slot<C>>,
}

impl<C: Clock + Clone> Connections<C> {
    /// At most `cap` connections (at least one) to `server`, each with a head deadline of
    /// `timeout` on `clock`, which must be one clock for all so their waits compare.
    pub fn new(server: &'static str, cap: usize, clock: C, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            server,
            cap: cap.max(1),
            clock,
            timeout,
            state: Mutex::new(State {
                next_id: 0,
                // Full size now, so the map never grows during a flood: a table allocated
                // then would stay, scattered among the flood's freed memory, and keep the
                // allocator from giving that back.
                open: HashMap::with_capacity(cap),
                at_cap: None,
            }),
        })
    }

    /// A place for a connection accepted now, made by pushing out the longest-idle connection
    /// when the cap is reached; `None` when every open connection is busy with a request.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted<C>> {
        let mut state = self.lock();
        if state.open.len() >= self.cap {
            let longest_idle = state
                .open
                .iter()
                .filter_map(|(id, slot)| {
                    let handshaking = slot.handshaking.load(Ordering::Relaxed);
                    Some((handshaking, slot.deadline.idle_since()?, *id))
                })
                .min();
            let pressure = state.at_cap.get_or_insert_with(|| {
                tracing::warn!(
                    server = self.server,
                    cap = self.cap,
                    "connection cap reached: each new connection now closes the one idle the longest"
                );
                Pressure::default()
            });
            let Some((_, _, id)) = longest_idle else {
                pressure.refused += 1;
                tracing::debug!("every connection is busy with a request: closing the new one");
                return None;
            };
            pressure.pushed_out += 1;
            if let Some(slot) = state.open.remove(&id) {
                slot.pushed_out.notify_one();
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let slot = Arc::new(Slot {
            deadline: HeadDeadline::new(self.clock.clone(), self.timeout),
            handshaking: AtomicBool::new(false),
            pushed_out: Notify::new(),
        });
        state.open.insert(id, Arc::clone(&slot));
        Some(Admitted {
            connections: Arc::clone(self),
            id,
            slot,
        })
    }
}

impl<C> Connections<C> {
    /// How many connections are open.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A panic elsewhere while holding the lock leaves the map consistent: every change to it
        // is a single insert or remove.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn close(&self, id: u64) {
        let mut state = self.lock();
        state.open.remove(&id);
        let calm = self.cap * CALM.0 / CALM.1;
        if state.open.len() <= calm {
            if let Some(pressure) = state.at_cap.take() {
                tracing::info!(
                    server = self.server,
                    cap = self.cap,
                    open = state.open.len(),
                    pushed_out = pressure.pushed_out,
                    refused = pressure.refused,
                    "connections well below the cap again"
                );
            }
        }
    }
}

impl<C: Clock> Admitted<C> {
    /// The connection's head deadline, running since its accept.
    pub fn deadline(&self) -> &HeadDeadline<C> {
        &self.slot.deadline
    }

    /// The client has begun its TLS handshake (`true`) or ended it (`false`): while it is under
    /// way, the connection is pushed out only when no idle one is left.
    pub fn handshaking(&self, under_way: bool) {
        self.slot.handshaking.store(under_way, Ordering::Relaxed);
    }

    /// Completes when a newer connection has taken this one's place: close it.
    pub async fn pushed_out(&self) {
        self.slot.pushed_out.notified().await;
    }

    /// Runs `served` (the connection's HTTP, which must mark heads received and answered on
    /// [`deadline`](Self::deadline)) until it ends, its head deadline passes, or it is pushed
    /// out; the caller then drops the connection, which closes it.
    pub async fn serve(&self, served: impl Future<Output = ()>) -> Ended {
        tokio::select! {
            biased;
            () = served => Ended::Served,
            () = self.deadline().missed() => Ended::DeadlineMissed,
            () = self.pushed_out() => Ended::PushedOut,
        }
    }
}

impl<C> Drop for Admitted<C> {
    fn drop(&mut self) {
        self.connections.close(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use futures::FutureExt as _;
    use tokio::time::advance;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// Three connections, accepted one second apart.
    async fn three_open(cap: usize) -> (Arc<Connections<TokioClock>>, Vec<Admitted<TokioClock>>) {
        let connections = Connections::new("test", cap, TokioClock::default(), TIMEOUT);
        let mut admitted = Vec::new();
        for _ in 0..3 {
            admitted.push(connections.admit().expect("room"));
            advance(Duration::from_secs(1)).await;
        }
        (connections, admitted)
    }

    fn was_pushed_out(connection: &Admitted<TokioClock>) -> bool {
        connection.pushed_out().now_or_never().is_some()
    }

    #[tokio::test(start_paused = true)]
    async fn below_the_cap_nobody_is_pushed_out() {
        let (connections, open) = three_open(4).await;
        let fourth = connections.admit().expect("room");
        assert_eq!(connections.open(), 4);
        assert!(!open.iter().chain([&fourth]).any(was_pushed_out));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_a_new_connection_pushes_out_the_one_idle_the_longest() {
        let (connections, open) = three_open(3).await;
        let _fourth = connections.admit().expect("room made");
        assert_eq!(connections.open(), 3);
        let pushed: Vec<_> = open.iter().map(was_pushed_out).collect();
        assert_eq!(pushed, [true, false, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_busy_with_a_request_is_passed_over() {
        let (connections, open) = three_open(3).await;
        open[0].deadline().head_received();
        let _fourth = connections.admit().expect("room made");
        let pushed: Vec<_> = open.iter().map(was_pushed_out).collect();
        assert_eq!(pushed, [false, true, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answered_connection_is_idle_from_its_answer() {
        let (connections, open) = three_open(3).await;
        open[0].deadline().head_received();
        open[0].deadline().answered();
        let _fourth = connections.admit().expect("room made");
        let pushed: Vec<_> = open.iter().map(was_pushed_out).collect();
        assert_eq!(pushed, [false, true, false], "the oldest answered last");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handshake_under_way_goes_only_when_no_idle_connection_is_left() {
        let (connections, open) = three_open(3).await;
        open[0].handshaking(true);
        open[1].handshaking(true);
        let fourth = connections.admit().expect("room made");
        let pushed: Vec<_> = open.iter().map(was_pushed_out).collect();
        assert_eq!(pushed, [false, false, true], "the idle one, though newer");
        fourth.deadline().head_received();
        let _fifth = connections.admit().expect("room made");
        let pushed: Vec<_> = open.iter().map(was_pushed_out).collect();
        assert_eq!(pushed, [true, false, false], "then the oldest handshake");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_handshake_is_idle_again() {
        let (connections, open) = three_open(3).await;
        open[0].handshaking(true);
        open[0].handshaking(false);
        let _fourth = connections.admit().expect("room made");
        assert!(was_pushed_out(&open[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_busy_the_new_one_is_refused() {
        let (connections, open) = three_open(3).await;
        for connection in &open {
            connection.deadline().head_received();
        }
        assert!(connections.admit().is_none());
        assert_eq!(connections.open(), 3);
        assert!(!open.iter().any(was_pushed_out));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_connection_gives_its_place_back() {
        let (connections, mut open) = three_open(3).await;
        drop(open.remove(1));
        assert_eq!(connections.open(), 2);
        let _fourth = connections.admit().expect("room");
        assert!(!open.iter().any(was_pushed_out));
    }

    #[tokio::test(start_paused = true)]
    async fn serving_ends_with_the_service_the_deadline_or_a_push_out() {
        let connections = Connections::new("test", 1, TokioClock::default(), TIMEOUT);
        let first = connections.admit().expect("room");
        assert_eq!(first.serve(async {}).await, Ended::Served);
        assert_eq!(
            first.serve(std::future::pending()).await,
            Ended::DeadlineMissed,
            "the clock runs on while paused tasks wait"
        );
        first.deadline().answered();
        let second = connections.admit().expect("room made");
        assert_eq!(first.serve(std::future::pending()).await, Ended::PushedOut);
        second.deadline().head_received();
        assert!(
            second
                .serve(std::future::pending())
                .now_or_never()
                .is_none(),
            "a connection busy with a request waits for its service"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pushed_out_connection_that_closes_late_frees_no_place_twice() {
        let (connections, mut open) = three_open(3).await;
        let _fourth = connections.admit().expect("room made");
        drop(open.remove(0));
        assert_eq!(connections.open(), 3, "its place was taken already");
    }
}
