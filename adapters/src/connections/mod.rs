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
//! The bytes held for request bodies are bounded across all connections too (the webhook's
//! `BODY_BUDGET`): a body's bytes are counted as they arrive, and when a new piece would take the
//! count over the budget, the connections holding body bytes that made no progress the longest
//! are pushed out until it fits. So a client that announces a large body, sends most of it and
//! falls silent, over many connections, holds at most the budget, and a review that arrives at
//! once (as the API server sends it) takes the room of the stalled ones. When the room cannot be
//! made (every other holder is answering its request), the piece is refused and its request gets
//! a 429.
//!
//! - `head_deadline`: closes a connection whose client sends no complete request head in time,
//!   or that stays idle too long.
//! - `progress`: the wrappers through which a connection's reads and answer tell its place here
//!   what it is doing.
//! - `bodies`: the request body that counts its bytes against the budget.
//!
//! Which connection gives way, at the cap and at the budget, is the domain's
//! `webhook::give_way`: this module keeps the connections and hands it a snapshot.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domain::ports::Clock;
use domain::webhook::give_way;
use tokio::sync::Notify;
use tracing::Level;

use head_deadline::{nanos, HeadDeadline};

mod bodies;
mod head_deadline;
mod progress;

pub use bodies::{BodiesFull, Charged};
pub use progress::{Reported, Tracked};

/// The fraction of the cap (and of the body budget) the count must fall to before it is logged
/// as no longer reached.
const CALM: (usize, usize) = (3, 4);

/// What a server allows its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most connections open at once (at least one).
    pub cap: usize,
    /// How long a client has for a complete request head: from its accept (so through a TLS
    /// handshake), and from the first byte of each later request.
    pub head_timeout: Duration,
    /// How long a keep-alive connection may wait, after an answer, for its next request's first
    /// byte.
    pub idle_timeout: Duration,
    /// The most bytes of request bodies held at once, over all connections.
    pub body_budget: usize,
    /// What a body under way costs beyond its bytes (its connection's buffers and state while
    /// it is read), counted against the budget with its first piece: so the budget also bounds
    /// how many bodies are under way at once, however few bytes each has sent.
    pub body_under_way: usize,
}

/// The open connections, and the cap on them.
#[derive(Debug)]
pub struct Connections<C> {
    /// Names the listener in the log, as the accept loop does.
    server: &'static str,
    limits: Limits,
    clock: C,
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
    /// Bytes of request bodies held, by every connection, pushed out ones included until they
    /// let go of theirs.
    body_bytes: usize,
    /// Of `body_bytes`, those of connections already pushed out: on their way back.
    body_bytes_leaving: usize,
    /// While the body budget is reached: the connections pushed out for room, and the pieces
    /// refused, since it was.
    bodies_full: Option<Pressure>,
}

#[derive(Debug, Default)]
struct Pressure {
    pushed_out: u64,
    refused: u64,
}

/// Why a connection was pushed out, in [`Slot::pushed_out_for`].
const NOT_PUSHED_OUT: u8 = 0;
const FOR_A_CONNECTION: u8 = 1;
const FOR_A_BODY: u8 = 2;

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
    /// Bytes of its request's body held now (changed under the state's lock).
    body_bytes: AtomicUsize,
    /// From its first complete request head on.
    had_a_request: AtomicBool,
    /// [`NOT_PUSHED_OUT`], or why it was (set under the state's lock).
    pushed_out_for: AtomicU8,
    pushed_out: Notify,
}

impl<C: Clock> Slot<C> {
    fn progressed(&self) {
        let now = nanos(self.clock.now());
        self.progress.store(now, Ordering::Relaxed);
        self.deadline.bytes_arrived(now);
    }
}

/// Why a connection's serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The connection ended by itself: the client closed it, or it failed.
    Served,
    /// No complete request head came in time, or the connection was idle too long.
    DeadlineMissed,
    /// A newer connection took its place at the cap.
    PushedOut,
    /// Another request's body needed the room its held body took.
    PushedOutForABody,
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
    connections: Arc<Connections<C>>,
    slot: Arc<Slot<C>>,
}

impl<C> Clone for Activity<C> {
    fn clone(&self) -> Self {
        Self {
            connections: Arc::clone(&self.connections),
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<C: Clock + Clone> Connections<C> {
    /// Connections to `server` within `limits`, on `clock`, which must be one clock for all so
    /// their progress compares; a missed deadline is logged at `missed_level`.
    pub fn new(server: &'static str, limits: Limits, clock: C, missed_level: Level) -> Arc<Self> {
        let limits = Limits {
            cap: limits.cap.max(1),
            ..limits
        };
        Arc::new(Self {
            server,
            limits,
            clock,
            missed_level,
            state: Mutex::new(State {
                next_id: 0,
                // Full size now, so the map never grows during a flood: a table allocated
                // then would stay, scattered among the flood's freed memory, and keep the
                // allocator from giving that back.
                open: HashMap::with_capacity(limits.cap),
                at_cap: None,
                body_bytes: 0,
                body_bytes_leaving: 0,
                bodies_full: None,
            }),
        })
    }

    /// A place for a connection accepted now, made by pushing out the connection that has gone
    /// longest without progress when the cap is reached; `None` when every open connection is
    /// answering a request.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted<C>> {
        let mut state = self.lock();
        if state.open.len() >= self.limits.cap {
            let stalled_longest = give_way::for_a_connection(snapshot(&state.open, None));
            let pressure = state.at_cap.get_or_insert_with(|| {
                tracing::warn!(
                    server = self.server,
                    cap = self.limits.cap,
                    "connection cap reached: each new connection now closes the one that made no progress the longest"
                );
                Pressure::default()
            });
            let Some(id) = stalled_longest else {
                pressure.refused += 1;
                tracing::debug!("every connection is answering a request: closing the new one");
                return None;
            };
            pressure.pushed_out += 1;
            push_out(&mut state, id, FOR_A_CONNECTION);
        }
        let id = state.next_id;
        state.next_id += 1;
        let slot = Arc::new(Slot {
            clock: self.clock.clone(),
            deadline: HeadDeadline::new(
                self.clock.clone(),
                self.limits.head_timeout,
                self.limits.idle_timeout,
            ),
            progress: AtomicU64::new(nanos(self.clock.now())),
            answering: AtomicBool::new(false),
            body_bytes: AtomicUsize::new(0),
            had_a_request: AtomicBool::new(false),
            pushed_out_for: AtomicU8::new(NOT_PUSHED_OUT),
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

/// What the domain's choice of who gives way knows of the open connections, `but` one.
fn snapshot<'a, C>(
    open: &'a HashMap<u64, Arc<Slot<C>>>,
    but: Option<&'a Arc<Slot<C>>>,
) -> impl Iterator<Item = give_way::Open> + 'a {
    open.iter()
        .filter(move |(_, slot)| but.is_none_or(|but| !Arc::ptr_eq(slot, but)))
        .map(|(id, slot)| give_way::Open {
            id: *id,
            progress: slot.progress.load(Ordering::Relaxed),
            answering: slot.answering.load(Ordering::Relaxed),
            body_bytes: slot.body_bytes.load(Ordering::Relaxed),
        })
}

/// Takes connection `id` out of the open ones and tells it to close; the body bytes it holds are
/// on their way back from now.
fn push_out<C>(state: &mut State<C>, id: u64, why: u8) {
    if let Some(slot) = state.open.remove(&id) {
        slot.pushed_out_for.store(why, Ordering::Relaxed);
        state.body_bytes_leaving += slot.body_bytes.load(Ordering::Relaxed);
        slot.pushed_out.notify_one();
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
            let timeout = connections.limits.head_timeout;
            match ended {
                Ended::Served => {}
                Ended::DeadlineMissed if connections.missed_level == Level::DEBUG => {
                    tracing::debug!(server, %peer, ?timeout, "no complete request head in time, or idle too long: closing the connection");
                }
                Ended::DeadlineMissed => {
                    tracing::info!(server, %peer, ?timeout, "no complete request head in time, or idle too long: closing the connection");
                }
                Ended::PushedOut => {
                    tracing::debug!(server, %peer, "pushed out by a newer connection at the cap: closing the one that made no progress the longest");
                }
                Ended::PushedOutForABody => {
                    tracing::debug!(server, %peer, "pushed out for another request's body: closing the one whose held body made no progress the longest");
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

    /// Bytes of request bodies held now.
    #[cfg(test)]
    fn body_bytes(&self) -> usize {
        self.lock().body_bytes
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A panic elsewhere while holding the lock leaves the state consistent: every change to
        // it is made whole before the lock is given back, and none can panic half-way.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn close(&self, id: u64) {
        let mut state = self.lock();
        state.open.remove(&id);
        let calm = self.limits.cap * CALM.0 / CALM.1;
        if state.open.len() <= calm {
            if let Some(pressure) = state.at_cap.take() {
                tracing::info!(
                    server = self.server,
                    cap = self.limits.cap,
                    open = state.open.len(),
                    pushed_out = pressure.pushed_out,
                    refused = pressure.refused,
                    "connections well below the cap again"
                );
            }
        }
    }

    /// Counts `bytes` more of the body held by `slot`'s request, pushing out the connections
    /// whose held bodies made no progress the longest when the budget would be exceeded; or
    /// refuses them, pushing out nobody, when not enough room can be made.
    fn hold_body_bytes(&self, slot: &Arc<Slot<C>>, bytes: usize) -> Result<(), BodiesFull> {
        let mut state = self.lock();
        let budget = self.limits.body_budget;
        let held = state.body_bytes - state.body_bytes_leaving;
        if held + bytes > budget {
            let room = budget.saturating_sub(held);
            let going = give_way::for_a_body(snapshot(&state.open, Some(slot)), room, bytes);
            let pressure = state.bodies_full.get_or_insert_with(|| {
                tracing::warn!(
                    server = self.server,
                    budget,
                    "body budget reached: each new piece of a body now closes the connections whose held bodies made no progress the longest"
                );
                Pressure::default()
            });
            let Some(going) = going else {
                pressure.refused += 1;
                tracing::debug!(bytes, "no room for a body's bytes: refusing its request");
                return Err(BodiesFull { budget });
            };
            pressure.pushed_out += going.len() as u64;
            for id in going {
                push_out(&mut state, id, FOR_A_BODY);
            }
        }
        state.body_bytes += bytes;
        if slot.pushed_out_for.load(Ordering::Relaxed) != NOT_PUSHED_OUT {
            // Pushed out and not yet closed: these bytes are on their way back with the rest.
            state.body_bytes_leaving += bytes;
        }
        slot.body_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// `slot`'s request no longer holds its body.
    fn release_body(&self, slot: &Slot<C>) {
        let mut state = self.lock();
        let bytes = slot.body_bytes.swap(0, Ordering::Relaxed);
        state.body_bytes -= bytes;
        if slot.pushed_out_for.load(Ordering::Relaxed) != NOT_PUSHED_OUT {
            state.body_bytes_leaving -= bytes;
        }
        let calm = self.limits.body_budget / CALM.1 * CALM.0;
        if state.body_bytes <= calm {
            if let Some(pressure) = state.bodies_full.take() {
                tracing::info!(
                    server = self.server,
                    budget = self.limits.body_budget,
                    held = state.body_bytes,
                    pushed_out = pressure.pushed_out,
                    refused = pressure.refused,
                    "bodies held well below the budget again"
                );
            }
        }
    }
}

impl<C: Clock> Admitted<C> {
    /// What the connection's HTTP reports through.
    pub fn activity(&self) -> Activity<C> {
        Activity {
            connections: Arc::clone(&self.connections),
            slot: Arc::clone(&self.slot),
        }
    }

    /// Completes when another connection has taken this one's place: close it.
    pub async fn pushed_out(&self) -> Ended {
        self.slot.pushed_out.notified().await;
        match self.slot.pushed_out_for.load(Ordering::Relaxed) {
            FOR_A_BODY => Ended::PushedOutForABody,
            _ => Ended::PushedOut,
        }
    }

    /// Runs `served` (the connection's HTTP, which must report through
    /// [`activity`](Self::activity)) until it ends, its head deadline passes, or it is pushed
    /// out; the caller then drops the connection, which closes it.
    pub async fn serve(&self, served: impl Future<Output = ()>) -> Ended {
        tokio::select! {
            biased;
            () = served => Ended::Served,
            () = self.slot.deadline.missed() => Ended::DeadlineMissed,
            ended = self.pushed_out() => ended,
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
    /// timeout of its own), its body's bytes count against the budget while the returned body
    /// is held, and once its body has been read it is answering: call on each request, and read
    /// the body through the returned one.
    pub fn request<B: hyper::body::Body>(
        &self,
        request: hyper::Request<B>,
    ) -> hyper::Request<Charged<B, C>> {
        self.slot.deadline.head_received();
        self.slot.had_a_request.store(true, Ordering::Relaxed);
        request
            .map(|body| Charged::new(body, Arc::clone(&self.connections), Arc::clone(&self.slot)))
    }

    /// The handler's answer: the connection is answering until the answer's body has been
    /// written (dropped by hyper), then idle from then.
    pub fn response<B>(&self, response: hyper::Response<B>) -> hyper::Response<Reported<B, C>> {
        self.slot.answering.store(true, Ordering::Relaxed);
        response.map(|body| Reported::new(body, Arc::clone(&self.slot)))
    }

    /// Whether the connection has begun a request (its head complete) or answered one: a
    /// shutdown may close it once it is idle. One that has not is left its first request.
    pub fn has_had_a_request(&self) -> bool {
        self.slot.had_a_request.load(Ordering::Relaxed)
    }
}

impl<C: Clock> Slot<C> {
    /// The request's body has been read: it is being answered.
    fn body_read(&self) {
        self.answering.store(true, Ordering::Relaxed);
    }

    /// The answer has been written: the connection is idle from now.
    fn answered(&self) {
        let now = nanos(self.clock.now());
        self.progress.store(now, Ordering::Relaxed);
        self.deadline.answered(now);
        self.answering.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use bytes::Bytes;
    use futures::{FutureExt as _, StreamExt as _};
    use http_body_util::combinators::UnsyncBoxBody;
    use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
    use hyper::body::Frame;
    use hyper::{Request, Response};
    use std::convert::Infallible;
    use tokio::io::AsyncReadExt as _;
    use tokio::time::advance;

    const TIMEOUT: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(120);
    const BUDGET: usize = 100;

    fn cap(cap: usize) -> Arc<Connections<TokioClock>> {
        let limits = Limits {
            cap,
            head_timeout: TIMEOUT,
            idle_timeout: IDLE,
            body_budget: BUDGET,
            body_under_way: 0,
        };
        Connections::new("test", limits, TokioClock::default(), Level::INFO)
    }

    /// Three connections, accepted one second apart, with room for more.
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

    type Held = Charged<UnsyncBoxBody<Bytes, Infallible>, TokioClock>;

    /// A request on `connection` whose body's first `bytes` have arrived, and no more yet; or
    /// why they were refused.
    async fn holding(
        connection: &Admitted<TokioClock>,
        bytes: usize,
    ) -> Result<Held, Box<dyn std::error::Error + Send + Sync>> {
        let first = futures::stream::iter([Ok(Frame::data(Bytes::from(vec![b'x'; bytes])))]);
        let trickle = StreamBody::new(first.chain(futures::stream::pending())).boxed_unsync();
        let mut body = connection
            .activity()
            .request(Request::new(trickle))
            .into_body();
        body.frame().await.expect("a piece")?;
        Ok(body)
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
    fn mid_body(connection: &Admitted<TokioClock>) -> Request<Charged<Full<Bytes>, TokioClock>> {
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

    #[tokio::test(start_paused = true)]
    async fn past_the_body_budget_the_held_body_without_progress_the_longest_is_pushed_out() {
        let (connections, open) = three_open(8).await;
        let _first = holding(&open[0], 40).await.expect("room");
        let second = holding(&open[1], 40).await.expect("room");
        reads(&open[0], b"{").await;
        let _third = holding(&open[2], 30).await.expect("room made");
        assert_eq!(pushed(&open), [false, true, false]);
        assert_eq!(
            connections.body_bytes(),
            110,
            "until the pushed out one lets go"
        );
        drop(second);
        assert_eq!(connections.body_bytes(), 70);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_without_a_body_are_not_pushed_out_for_one() {
        let (connections, open) = three_open(8).await;
        let _first = holding(&open[1], 60).await.expect("room");
        let _second = holding(&open[2], 60).await.expect("room made");
        assert_eq!(pushed(&open), [false, true, false]);
        assert_eq!(connections.open(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_on_their_way_back_make_room_once_only() {
        let (connections, mut open) = three_open(8).await;
        open.push(connections.admit().expect("room"));
        let _first = holding(&open[0], 60).await.expect("room");
        let _second = holding(&open[1], 30).await.expect("room");
        let _third = holding(&open[2], 50).await.expect("room made");
        let _fourth = holding(&open[3], 20).await.expect("room left");
        assert_eq!(pushed(&open), [true, false, false, false]);
        assert_eq!(connections.body_bytes(), 160);
    }

    #[tokio::test(start_paused = true)]
    async fn a_piece_no_held_body_can_make_room_for_is_refused_and_nobody_pushed_out() {
        let (connections, open) = three_open(8).await;
        let mut answering = Vec::new();
        for (connection, bytes) in [(&open[0], 40), (&open[1], 30)] {
            let held = holding(connection, bytes).await.expect("room");
            let answer = connection
                .activity()
                .response(Response::new(Empty::<Bytes>::new()));
            answering.push((held, answer));
        }
        let refused = holding(&open[2], 60).await.expect_err("no room");
        assert!(refused.is::<BodiesFull>(), "{refused}");
        assert_eq!(pushed(&open), [false, false, false]);
        assert_eq!(connections.body_bytes(), 70);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_grows_after_its_connection_was_pushed_out_is_all_given_back() {
        let (connections, open) = three_open(3).await;
        let first = holding(&open[0], 10).await.expect("room");
        let _fourth = connections.admit().expect("room made");
        assert_eq!(pushed(&open), [true, false, false]);
        connections
            .hold_body_bytes(&open[0].slot, 20)
            .expect("still counted");
        drop(first);
        assert_eq!(connections.body_bytes(), 0);
        let _room = holding(&open[1], BUDGET).await.expect("all of the budget");
    }
}
