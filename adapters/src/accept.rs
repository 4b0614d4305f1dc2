//! The accept loop every server here shares: the webhook's TLS port and the metrics port of both
//! programs.
//!
//! An accept error is either a condition that lasts (out of file descriptors, out of socket
//! memory: retrying at once fails again, and spins) or the loss of one connection (a client that
//! reset before it was accepted: the next accept may well succeed). Neither stops the server, and
//! neither may make it spin or fill the log: the loop pauses [`PAUSE`] between attempts while a
//! lasting condition holds, and logs each condition twice, when it starts and when it ends (with
//! how many accepts failed meanwhile), never once per failed accept.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use domain::ports::Clock;
use tokio::net::{TcpListener, TcpStream};

/// How long the loop waits before the next accept while a lasting condition holds: long enough
/// not to spin, short enough that a freed descriptor is used at once (Go's net/http backs off
/// from 5 ms to 1 s; one step keeps the log and the test simple).
pub const PAUSE: Duration = Duration::from_millis(100);

/// What the loop accepts from: a seam, so that tests script the errors without real descriptors.
pub trait Listener {
    type Stream: Send + 'static;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// Why accepts fail, as far as the loop cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `EMFILE`, `ENFILE`: no descriptor for a new connection until one closes.
    OutOfDescriptors,
    /// `ENOBUFS`, `ENOMEM`: the kernel has no memory for the socket.
    OutOfMemory,
    /// `ECONNABORTED`, `EPERM` (a firewall), `EINTR`, and the network errors accept(2) passes on
    /// from a pending connection: one connection was lost before it was accepted; the next one is
    /// unaffected.
    ConnectionLost,
    /// Anything else: paused and retried as a lasting condition, as it may well be one.
    Other,
}

impl Condition {
    pub fn of(error: &io::Error) -> Self {
        match error.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => Self::OutOfDescriptors,
            Some(libc::ENOBUFS | libc::ENOMEM) => Self::OutOfMemory,
            Some(
                libc::ECONNABORTED
                | libc::EPERM
                | libc::EINTR
                // accept(2), "Error handling": treat these as EAGAIN, and retry.
                | libc::ENETDOWN
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH,
            ) => Self::ConnectionLost,
            _ => Self::Other,
        }
    }

    /// Whether the loop waits before the next accept.
    fn pauses(self) -> bool {
        self != Self::ConnectionLost
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::OutOfDescriptors => "out of file descriptors",
            Self::OutOfMemory => "out of socket memory",
            Self::ConnectionLost => "connections lost before they were accepted",
            Self::Other => "accept failing",
        }
    }
}

/// A condition that holds now: since when (clock time), and how many accepts it failed.
#[derive(Debug)]
struct Episode {
    condition: Condition,
    since: Duration,
    failed: u64,
}

/// Turns a stream of accept results into log lines at the edges of each condition.
#[derive(Debug, Default)]
struct Episodes {
    current: Option<Episode>,
}

impl Episodes {
    fn failed(&mut self, server: &str, condition: Condition, cause: &io::Error, now: Duration) {
        match &mut self.current {
            Some(episode) if episode.condition == condition => {
                episode.failed += 1;
                return;
            }
            _ => self.end(server, now),
        }
        let name = condition.as_str();
        match condition {
            Condition::ConnectionLost => {
                tracing::debug!(server, condition = name, %cause, "accept failed: retrying")
            }
            _ => tracing::warn!(
                server,
                condition = name,
                %cause,
                pause = ?PAUSE,
                "cannot accept connections: retrying after each pause until this clears"
            ),
        }
        self.current = Some(Episode {
            condition,
            since: now,
            failed: 1,
        });
    }

    /// An accept succeeded: the condition, if any, has ended.
    fn end(&mut self, server: &str, now: Duration) {
        let Some(episode) = self.current.take() else {
            return;
        };
        let name = episode.condition.as_str();
        let lasted = now.saturating_sub(episode.since);
        let failed = episode.failed;
        match episode.condition {
            Condition::ConnectionLost => {
                tracing::debug!(server, condition = name, failed, ?lasted, "accepting again")
            }
            _ => tracing::info!(
                server,
                condition = name,
                failed,
                ?lasted,
                "accepting connections again"
            ),
        }
    }
}

/// Accepts from `listener` until `shutdown` completes, handing each connection to `serve`.
/// `server` names the listener in the log.
pub async fn accept_until<L, C>(
    listener: &L,
    clock: &C,
    server: &str,
    shutdown: impl Future<Output = ()>,
    mut serve: impl FnMut(L::Stream, SocketAddr),
) where
    L: Listener,
    C: Clock,
{
    let mut episodes = Episodes::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                episodes.end(server, clock.now());
                serve(stream, peer);
            }
            Err(cause) => {
                let condition = Condition::of(&cause);
                episodes.failed(server, condition, &cause, clock.now());
                if condition.pauses() {
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = clock.sleep(PAUSE) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
