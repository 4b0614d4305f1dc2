//! A request's body, whose bytes count against the budget of body bytes held over all
//! connections from the moment they arrive until the body is dropped: the handler holds it until
//! it has answered, so what it copied out of it is counted as long as it lives.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use domain::ports::Clock;
use hyper::body::{Body, Buf as _, Frame, SizeHint};

use super::{Connections, Slot};

/// A body's piece did not fit the budget of body bytes, and no other connection's held body
/// could make room for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the bodies of other requests already hold the {budget} bytes the webhook holds for bodies"
)]
pub struct BodiesFull {
    pub budget: usize,
}

/// A request's body, charged to the budget as its bytes arrive; read to its end, the request is
/// answering.
#[derive(Debug)]
pub struct Charged<B, C: Clock> {
    body: B,
    connections: Arc<Connections<C>>,
    slot: Arc<Slot<C>>,
}

impl<B: Body, C: Clock> Charged<B, C> {
    pub(super) fn new(body: B, connections: Arc<Connections<C>>, slot: Arc<Slot<C>>) -> Self {
        if body.is_end_stream() {
            slot.body_read();
        }
        Self {
            body,
            connections,
            slot,
        }
    }
}

impl<B, C> Body for Charged<B, C>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    C: Clock,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                this.slot.body_read();
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(cause))) => return Poll::Ready(Some(Err(cause.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let first = this.slot.body_bytes.load(Ordering::Relaxed) == 0;
            let under_way = this.connections.limits.body_under_way;
            let bytes = data.remaining() + if first { under_way } else { 0 };
            if let Err(full) = this.connections.hold_body_bytes(&this.slot, bytes) {
                return Poll::Ready(Some(Err(Box::new(full))));
            }
        }
        if this.body.is_end_stream() {
            this.slot.body_read();
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B, C: Clock> Drop for Charged<B, C> {
    fn drop(&mut self) {
        self.connections.release_body(&self.slot);
    }
}
