//! How a connection's place among the open ones learns what it is doing, from the three things
//! hyper touches: its stream (each read that brings bytes is progress), a request's body (read to
//! its end: the request is answering), and the answer's body (dropped once written: the next
//! head is awaited). Each costs a clock read or an atomic store, never a timer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use domain::ports::Clock;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Slot;

/// A stream whose reads are its connection's progress.
#[derive(Debug)]
pub struct Tracked<S, C> {
    io: S,
    slot: Arc<Slot<C>>,
}

impl<S, C> Tracked<S, C> {
    pub(super) fn new(io: S, slot: Arc<Slot<C>>) -> Self {
        Self { io, slot }
    }
}

impl<S: AsyncRead + Unpin, C: Clock> AsyncRead for Tracked<S, C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.slot.progressed();
        }
        read
    }
}

impl<S: AsyncWrite + Unpin, C: Unpin> AsyncWrite for Tracked<S, C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Which body a [`Reported`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A request's: read to its end (at once when there is none), the request is answering.
    Request,
    /// An answer's: while hyper holds it the connection is answering; hyper drops it once it has
    /// written it, and the next head is awaited from then.
    Answer,
}

/// A request's or an answer's body, reporting to its connection's place as [`Role`] says.
#[derive(Debug)]
pub struct Reported<B, C: Clock> {
    body: B,
    slot: Arc<Slot<C>>,
    role: Role,
}

impl<B: Body, C: Clock> Reported<B, C> {
    pub(super) fn request(body: B, slot: Arc<Slot<C>>) -> Self {
        if body.is_end_stream() {
            slot.body_read();
        }
        Self {
            body,
            slot,
            role: Role::Request,
        }
    }
}

impl<B, C: Clock> Reported<B, C> {
    pub(super) fn answer(body: B, slot: Arc<Slot<C>>) -> Self {
        Self {
            body,
            slot,
            role: Role::Answer,
        }
    }
}

impl<B: Body + Unpin, C: Clock> Body for Reported<B, C> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        let ended = match &frame {
            Poll::Ready(None) => true,
            Poll::Ready(Some(_)) => this.body.is_end_stream(),
            Poll::Pending => false,
        };
        if ended && this.role == Role::Request {
            this.slot.body_read();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B, C: Clock> Drop for Reported<B, C> {
    fn drop(&mut self) {
        if self.role == Role::Answer {
            self.slot.answered();
        }
    }
}
