//! Link and address change notifications, like `ip monitor link address`.

use std::time::Duration;

use domain::sidecar::model::NetEvent;
use futures::{Stream, StreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;

use super::address::ip_of;
use super::link::link_of;

/// How long to wait before subscribing again after the subscription broke, so a kernel that keeps
/// refusing does not spin the process.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(200);

/// Events buffered between the socket and the sync loop; past that, the oldest news is stale anyway
/// and a single `EventsLost` says "resync".
const BUFFER: usize = 1024;

/// Maps one notification to a domain event; `None` for what the domain never cares about.
fn event_of(message: NetlinkMessage<RouteNetlinkMessage>) -> Option<NetEvent> {
    match message.payload {
        NetlinkPayload::InnerMessage(inner) => match inner {
            RouteNetlinkMessage::NewAddress(m) => Some(NetEvent::AddressAdded {
                index: m.header.index,
                address: ip_of(&m)?,
            }),
            RouteNetlinkMessage::DelAddress(m) => Some(NetEvent::AddressRemoved {
                index: m.header.index,
                address: ip_of(&m)?,
            }),
            RouteNetlinkMessage::NewLink(m) => {
                let link = link_of(&m);
                Some(NetEvent::LinkChanged {
                    index: link.index,
                    name: link.name,
                    up: link.up,
                })
            }
            RouteNetlinkMessage::DelLink(m) => {
                let link = link_of(&m);
                Some(NetEvent::LinkRemoved {
                    index: link.index,
                    name: link.name,
                })
            }
            _ => None,
        },
        // The socket's receive buffer overflowed: notifications were dropped.
        NetlinkPayload::Overrun(_) => Some(NetEvent::EventsLost),
        _ => None,
    }
}

type Subscription = futures::channel::mpsc::UnboundedReceiver<(
    NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

fn subscribe() -> std::io::Result<Subscription> {
    let groups = [
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ];
    let (connection, _handle, messages) = rtnetlink::new_multicast_connection(&groups)?;
    tokio::spawn(connection);
    Ok(messages)
}

/// Subscribes to link and address notifications of this network namespace. The first
/// subscription happens now, so a refusal is reported at start; later breaks are repaired by
/// subscribing again, announced as [`NetEvent::EventsLost`] so the loop resyncs.
pub fn network_events() -> std::io::Result<impl Stream<Item = NetEvent>> {
    let mut messages = subscribe()?;
    let (sender, mut receiver) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        loop {
            while let Some((message, _)) = messages.next().await {
                let Some(event) = event_of(message) else {
                    continue;
                };
                if let Err(mpsc::error::TrySendError::Full(_)) = sender.try_send(event) {
                    // The loop is behind; it will resync once it catches up.
                    let _ = sender.send(NetEvent::EventsLost).await;
                }
                if sender.is_closed() {
                    return;
                }
            }
            tracing::warn!("netlink event subscription ended; subscribing again");
            loop {
                // Outside the sync loop and its Clock: a plain pause between attempts.
                #[allow(clippy::disallowed_methods)]
                tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                match subscribe() {
                    Ok(again) => break messages = again,
                    Err(error) => {
                        tracing::warn!(cause = %error, "cannot subscribe to netlink events")
                    }
                }
            }
            if sender.send(NetEvent::EventsLost).await.is_err() {
                return;
            }
        }
    });
    Ok(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}
