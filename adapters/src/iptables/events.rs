//! When the rules may have changed: nf_tables announces every ruleset change on netlink; the
//! legacy backend announces nothing, so a timer stands in for it.

use std::io;
use std::time::Duration;

use domain::sidecar::model::NetEvent;
use futures::stream::{self, Stream, StreamExt};
use rtnetlink::sys::protocols::NETLINK_NETFILTER;
use rtnetlink::sys::{AsyncSocket, AsyncSocketExt, TokioSocket};
use tokio::time::{Instant, MissedTickBehavior};

use super::backend::Backend;

/// `NFNLGRP_NFTABLES` (linux/netfilter/nfnetlink.h): one message per nf_tables object added or
/// deleted, plus one per committed transaction.
const NFNLGRP_NFTABLES: u32 = 7;

/// How often the legacy backend's rules are looked at. Each look is one sync: two
/// `iptables-legacy-save` processes (raw and filter) when nothing changed, so 24 per idle
/// minute, and a flushed rule is back within this period plus one sync.
pub const LEGACY_POLL: Duration = Duration::from_secs(5);

/// The first pause before resubscribing after a socket error; it doubles up to
/// [`RESUBSCRIBE_MAX`] while subscribing keeps failing.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(30);

/// The messages themselves are not read, only their arrival: a page holds any one of them, and a
/// longer one is simply truncated.
const RECEIVE_BUFFER: usize = 4096;

/// [`NetEvent::RulesChanged`] whenever the rules of `backend` may have changed: on every
/// nf_tables event for [`Backend::Nft`], every [`LEGACY_POLL`] for [`Backend::Legacy`] (and for
/// nft when the netlink subscription is refused, which is logged). Never ends. Must be called
/// within a tokio runtime.
///
/// Our own changes are announced too; the sync loop folds a burst into one sync, and a sync that
/// changes nothing announces nothing, so this converges instead of looping.
pub fn rule_events(backend: Backend) -> impl Stream<Item = NetEvent> {
    match backend {
        Backend::Nft => match subscribe() {
            Ok(socket) => nft_events(socket).left_stream(),
            Err(error) => {
                tracing::warn!(cause = %error, period = ?LEGACY_POLL, "cannot listen for nf_tables changes; looking at the rules periodically instead");
                polled(LEGACY_POLL).right_stream()
            }
        },
        Backend::Legacy => polled(LEGACY_POLL).right_stream(),
    }
}

/// A NETLINK_NETFILTER socket in the nf_tables group. Joining needs CAP_NET_ADMIN.
fn subscribe() -> io::Result<TokioSocket> {
    let mut socket = TokioSocket::new(NETLINK_NETFILTER)?;
    socket.socket_mut().bind_auto()?;
    socket.socket_ref().add_membership(NFNLGRP_NFTABLES)?;
    Ok(socket)
}

/// One [`NetEvent::RulesChanged`] per datagram. An overrun (the kernel dropped messages because
/// we read too slowly) or any other socket error yields [`NetEvent::EventsLost`]; after an error
/// other than an overrun, the socket is replaced by a fresh subscription first.
fn nft_events(socket: TokioSocket) -> impl Stream<Item = NetEvent> {
    let buffer = Vec::with_capacity(RECEIVE_BUFFER);
    stream::unfold((socket, buffer), |(mut socket, mut buffer)| async move {
        buffer.clear();
        let event = match socket.recv(&mut buffer).await {
            Ok(()) => NetEvent::RulesChanged,
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                tracing::warn!("nf_tables events overran the socket; some were lost");
                NetEvent::EventsLost
            }
            Err(error) => {
                tracing::warn!(cause = %error, "the nf_tables event socket failed; resubscribing");
                socket = resubscribe().await;
                NetEvent::EventsLost
            }
        };
        Some((event, (socket, buffer)))
    })
}

/// Subscribes again, pausing first so that a socket that fails at once cannot spin the loop.
async fn resubscribe() -> TokioSocket {
    let mut pause = RESUBSCRIBE_FIRST;
    loop {
        // Outside the sync loop and its Clock: a plain pause between attempts.
        #[allow(clippy::disallowed_methods)]
        tokio::time::sleep(pause).await;
        match subscribe() {
            Ok(socket) => return socket,
            Err(error) => {
                pause = (pause * 2).min(RESUBSCRIBE_MAX);
                tracing::warn!(cause = %error, retry_in = ?pause, "cannot resubscribe to nf_tables events");
            }
        }
    }
}

/// [`NetEvent::RulesChanged`] every `period`, the first one `period` from now (the sync at start
/// has just looked).
///
/// On tokio's timer, not the domain's `Clock` port: the port exists so the domain, which has no
/// runtime, is tested without time passing. This stream runs in tokio anyway, and its test pauses
/// tokio's time (`start_paused`), which gives the same control without a clock parameter.
fn polled(period: Duration) -> impl Stream<Item = NetEvent> {
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    // After a stall, one look is enough; a burst of catch-up ticks would only repeat it.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    stream::unfold(ticks, |mut ticks| async move {
        ticks.tick().await;
        Some((NetEvent::RulesChanged, ticks))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;

    #[tokio::test(start_paused = true)]
    async fn legacy_polling_says_rules_may_have_changed_once_per_period() {
        let start = Instant::now();
        let mut events = pin!(rule_events(Backend::Legacy));
        assert_eq!(events.next().await, Some(NetEvent::RulesChanged));
        assert_eq!(start.elapsed(), LEGACY_POLL);
        assert_eq!(events.next().await, Some(NetEvent::RulesChanged));
        assert_eq!(start.elapsed(), LEGACY_POLL * 2);
    }
}
