//! The open connections of a server, at most a cap: the webhook's TLS port and the metrics port
//! of both programs. Neither HTTP side owns it, so neither imports the other for it.
//!
//! The API server needs few connections (it keeps a handful alive per webhook), but anyone who
//! reaches the port can open thousands, and each costs memory (TLS state, buffers, a task) until
//! a timeout closes it. At the cap, a new connection pushes out the one that has gone longest
//! without progress, whatever it is waiting for: a TLS handshake, a request head, a body, or the
//! next request on a keep-alive connection. Progress is a read that brought bytes (counted below
//! TLS, so a handshake's records count), the accept, and each answer; a connection whose request
//! is being answered or written back is never pushed out, and when every one is, the new
//! connection is closed instead.
//!
//! So whatever a client stalls in, a stalled connection is the first to go: a flood of
//! connections that send nothing, or that send a request head and part of a body and then fall
//! silent (issue 21: such a connection never waited for a head, and the earlier rule, which
//! pushed out only connections waiting for one, passed them over, so 520 of them locked the API
//! server out), costs the flooder its own connections, and a client that is sending gets in and
//! is answered: between two of its reads a newer connection would have to make progress in every
//! other place. What the cap cannot do is in docs/webhook.md ("What the connection cap protects
//! against").
//!
//! The log says when the cap is reached and when the count has fallen well below it again (to
//! [`CALM`] of the cap, so that a count hovering at the cap does not log on every connection),
//! with how many connections were pushed out or refused meanwhile: never a line per connection
//! above debug.
//!
//! - `head_deadline`: closes a connection whose client sends no complete request head in time.
//! - `progress`: the wrappers through which a connection's reads, request body and answer tell
//!   its place here what it is doing.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domain::ports::Clock;
use tokio::sync::Notify;
use tracing::Level;

use head_deadline::{nanos, HeadDeadline};

mod head_deadline;
mod progress;

pub use progress::{Reported, Tracked};

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
    /// The level a missed head deadline is logged at.
    missed_level: Level,
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

/// What the cap knows of one connection.
#[derive(Debug)]
struct Slot<C> {
    clock: C,
    deadline: HeadDeadline<C>,
    /// Clock time, in nanoseconds, of the connection's last progress.
    progress: AtomicU64,
    /// From a complete request (or the handler's answer, whichever comes first) until the answer
    /// has been written: not to be pushed out.
    answering: AtomicBool,
    pushed_out: Notify,
}

impl<C: Clock> Slot<C> {
    fn progressed(&self) {
        self.progress
            .store(nanos(self.clock.now()), Ordering::Relaxed);
    }
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

/// What a connection's HTTP tells its place among the open ones: cheap to clone into hyper's
/// service.
#[derive(Debug)]
pub struct Activity<C> {
    slot: Arc<Slot<C>>,
}

impl<C> Clone for Activity<C> {
    fn clone(&self) -> Self {
        Self {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<C: Clock + Clone> Connections<C> {
    /// At most `cap` connections (at least one) to `server`, each with a head deadline of
    /// `timeout` on `clock`, which must be one clock for all so their progress compares; a
    /// missed deadline is logged at `missed_level`.
    pub fn new(
        server: &'static str,
        cap: usize,
        clock: C,
        timeout: Duration,
        missed_level: Level,
    ) -> Arc<Self> {
        Arc::new(Self {
            server,
            cap: cap.max(1),
            clock,
            timeout,
            missed_level,
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

    /// A place for a connection accepted now, made by pushing out the connection that has gone
    /// longest without progress when the cap is reached; `None` when every open connection is
    /// answering a request.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted<C>> {
        let mut state = self.lock();
        if state.open.len() >= self.cap {
            // The id breaks ties: of two stamped at the same instant, the older goes.
            let stalled_longest = state
                .open
                .iter()
                .filter(|(_, slot)| !slot.answering.load(Ordering::Relaxed))
                .map(|(id, slot)| (slot.progress.load(Ordering::Relaxed), *id))
                .min();
            let pressure = state.at_cap.get_or_insert_with(|| {
                tracing::warn!(
                    server = self.server,
                    cap = self.cap,
                    "connection cap reached: each new connection now closes the one that made no progress the longest"
                );
                Pressure::default()
            });
            let Some((_, id)) = stalled_longest else {
                pressure.refused += 1;
                tracing::debug!("every connection is answering a request: closing the new one");
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
            clock: self.clock.clone(),
            deadline: HeadDeadline::new(self.clock.clone(), self.timeout),
            progress: AtomicU64::new(nanos(self.clock.now())),
            answering: AtomicBool::new(false),
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

impl<C: Clock + Clone + 'static> Connections<C> {
    /// Admits a connection from `peer` accepted now and serves it on a task of its own: the
    /// future `serve` makes of the connection's [`Activity`] is its HTTP, run until it ends, its
    /// head deadline passes, or it is pushed out; then the connection is closed, why is logged,
    /// and its place is given back. Refused at the cap, the connection is dropped, which closes
    /// it.
    pub fn spawn<F>(self: &Arc<Self>, peer: SocketAddr, serve: impl FnOnce(Activity<C>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
        C: Send + Sync,
    {
        let Some(admitted) = self.admit() else {
            return;
        };
        let served = serve(admitted.activity());
        tokio::spawn(async move {
            let ended = admitted.serve(served).await;
            let connections = &admitted.connections;
            let server = connections.server;
            match ended {
                Ended::Served => {}
                Ended::DeadlineMissed if connections.missed_level == Level::DEBUG => {
                    tracing::debug!(server, %peer, timeout = ?connections.timeout, "no complete request head in time: closing the connection");
                }
                Ended::DeadlineMissed => {
                    tracing::info!(server, %peer, timeout = ?connections.timeout, "no complete request head in time: closing the connection");
                }
                Ended::PushedOut => {
                    tracing::debug!(server, %peer, "pushed out by a newer connection at the cap: closing the one that made no progress the longest");
                }
            }
        });
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
    /// What the connection's HTTP reports through.
    pub fn activity(&self) -> Activity<C> {
        Activity {
            slot: Arc::clone(&self.slot),
        }
    }

    /// Completes when a newer connection has taken this one's place: close it.
    pub async fn pushed_out(&self) {
        self.slot.pushed_out.notified().await;
    }

    /// Runs `served` (the connection's HTTP, which must report through
    /// [`activity`](Self::activity)) until it ends, its head deadline passes, or it is pushed
    /// out; the caller then drops the connection, which closes it.
    pub async fn serve(&self, served: impl Future<Output = ()>) -> Ended {
        tokio::select! {
            biased;
            () = served => Ended::Served,
            () = self.slot.deadline.missed() => Ended::DeadlineMissed,
            () = self.pushed_out() => Ended::PushedOut,
        }
    }
}

impl<C> Drop for Admitted<C> {
    fn drop(&mut self) {
        self.connections.close(self.id);
    }
}

impl<C: Clock> Activity<C> {
    /// Reads through the returned stream are the connection's progress; put it under TLS, so
    /// that a handshake's records count.
    pub fn track<S>(&self, io: S) -> Tracked<S, C> {
        Tracked::new(io, Arc::clone(&self.slot))
    }

    /// A complete request head arrived: no head is awaited until it is answered (its body has a
    /// timeout of its own), and once its body has been read it is answering: call on each
    /// request, and read the body through the returned one.
    pub fn request<B: hyper::body::Body>(
        &self,
        request: hyper::Request<B>,
    ) -> hyper::Request<Reported<B, C>> {
        self.slot.deadline.head_received();
        request.map(|body| Reported::request(body, Arc::clone(&self.slot)))
    }

    /// The handler's answer: the connection is answering until the answer's body has been
    /// written (dropped by hyper), then awaits its next head from then.
    pub fn response<B>(&self, response: hyper::Response<B>) -> hyper::Response<Reported<B, C>> {
        self.slot.answering.store(true, Ordering::Relaxed);
        response.map(|body| Reported::answer(body, Arc::clone(&self.slot)))
    }
}

impl<C: Clock> Slot<C> {
    /// The request's body has been read: it is being answered.
    fn body_read(&self) {
        self.answering.store(true, Ordering::Relaxed);
    }

    /// The answer has been written: the next head is awaited from now.
    fn answered(&self) {
        self.progressed();
        self.deadline.answered();
        self.answering.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use bytes::Bytes;
    use futures::FutureExt as _;
    use http_body_util::{BodyExt as _, Empty, Full};
    use hyper::{Request, Response};
    use tokio::io::AsyncReadExt as _;
    use tokio::time::advance;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn cap(cap: usize) -> Arc<Connections<TokioClock>> {
        Connections::new("test", cap, TokioClock::default(), TIMEOUT, Level::INFO)
    }

    /// Three connections, accepted one second apart.
    async fn three_open(cap: usize) -> (Arc<Connections<TokioClock>>, Vec<Admitted<TokioClock>>) {
        let connections = self::cap(cap);
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

    /// Which were pushed out since last looked at.
    fn pushed(open: &[Admitted<TokioClock>]) -> Vec<bool> {
        open.iter().map(was_pushed_out).collect()
    }

    /// A read of a few bytes through the connection's tracked stream.
    async fn reads(connection: &Admitted<TokioClock>, bytes: &'static [u8]) {
        let mut stream = connection.activity().track(bytes);
        let mut buffer = [0u8; 16];
        let read = stream.read(&mut buffer).await.expect("a read");
        assert_eq!(read, bytes.len());
    }

    /// A request whose head came and whose body is still on its way.
    fn mid_body(connection: &Admitted<TokioClock>) -> Request<Reported<Full<Bytes>, TokioClock>> {
        let request = Request::new(Full::new(Bytes::from_static(b"{}")));
        connection.activity().request(request)
    }

    #[tokio::test(start_paused = true)]
    async fn below_the_cap_nobody_is_pushed_out() {
        let (connections, open) = three_open(4).await;
        let fourth = connections.admit().expect("room");
        assert_eq!(connections.open(), 4);
        assert!(!open.iter().chain([&fourth]).any(was_pushed_out));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_a_new_connection_pushes_out_the_one_without_progress_the_longest() {
        let (connections, open) = three_open(3).await;
        let _fourth = connections.admit().expect("room made");
        assert_eq!(connections.open(), 3);
        assert_eq!(pushed(&open), [true, false, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_brings_bytes_is_progress() {
        let (connections, open) = three_open(3).await;
        reads(&open[0], b"\x16\x03\x01").await;
        let _fourth = connections.admit().expect("room made");
        assert_eq!(pushed(&open), [false, true, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_brings_nothing_is_not() {
        let (connections, open) = three_open(3).await;
        reads(&open[0], b"").await;
        let _fourth = connections.admit().expect("room made");
        assert_eq!(pushed(&open), [true, false, false]);
    }

    /// Issue 21: a head, part of a body, then silence; such a connection was never pushed out.
    #[tokio::test(start_paused = true)]
    async fn a_connection_stalled_mid_body_is_pushed_out_whatever_its_phase() {
        let (connections, open) = three_open(3).await;
        for (connection, bytes) in [
            (1, &b"POST / HTTP/1.1"[..]),
            (2, b"\x16\x03\x01"),
            (0, b"POST"),
        ] {
            reads(&open[connection], bytes).await;
            advance(Duration::from_millis(100)).await;
        }
        let _stalled = mid_body(&open[0]);
        advance(Duration::from_secs(1)).await;
        let _fourth = connections.admit().expect("room made");
        assert_eq!(
            pushed(&open),
            [false, true, false],
            "the head read longest ago"
        );
        let _fifth = connections.admit().expect("room made");
        assert_eq!(
            pushed(&open),
            [false, false, true],
            "the handshake read longest ago"
        );
        let _sixth = connections.admit().expect("room made");
        assert_eq!(pushed(&open), [true, false, false], "the stalled body");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_read_to_its_end_is_answering_and_passed_over() {
        let (connections, open) = three_open(3).await;
        let read = mid_body(&open[0]).into_body().collect().await;
        assert!(read.is_ok());
        let _fourth = connections.admit().expect("room made");
        assert_eq!(pushed(&open), [false, true, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_a_body_is_answering_at_once() {
        let (connections, open) = three_open(3).await;
        let _request = open[0]
            .activity()
            .request(Request::new(Empty::<Bytes>::new()));
        let _fourth = connections.admit().expect("room made");
        assert_eq!(pushed(&open), [false, true, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_answering_until_written_then_progress() {
        let (connections, open) = three_open(3).await;
        let _request = mid_body(&open[0]);
        let answer = open[0]
            .activity()
            .response(Response::new(Empty::<Bytes>::new()));
        let _fourth = connections.admit().expect("room made");
        assert_eq!(
            pushed(&open),
            [false, true, false],
            "refused before its body was read, answering"
        );
        drop(answer);
        let _fifth = connections.admit().expect("room made");
        assert_eq!(
            pushed(&open),
            [false, false, true],
            "written: progress from now"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_answering_the_new_one_is_refused() {
        let (connections, open) = three_open(3).await;
        let _answers: Vec<_> = open
            .iter()
            .map(|connection| {
                connection
                    .activity()
                    .response(Response::new(Empty::<Bytes>::new()))
            })
            .collect();
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
        let connections = cap(1);
        let first = connections.admit().expect("room");
        assert_eq!(first.serve(async {}).await, Ended::Served);
        assert_eq!(
            first.serve(std::future::pending()).await,
            Ended::DeadlineMissed,
            "the clock runs on while paused tasks wait"
        );
        drop(
            first
                .activity()
                .response(Response::new(Empty::<Bytes>::new())),
        );
        let second = connections.admit().expect("room made");
        assert_eq!(first.serve(std::future::pending()).await, Ended::PushedOut);
        let _request = mid_body(&second);
        assert!(
            second
                .serve(std::future::pending())
                .now_or_never()
                .is_none(),
            "a connection with a request under way has no head deadline"
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
