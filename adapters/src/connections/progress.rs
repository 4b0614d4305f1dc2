//! How a connection's place among the open ones learns what it is doing, from two of the three
//! things hyper touches: its stream (each read that brings bytes is progress) and the answer's
//! body (dropped once written: the connection is idle); the third, a request's body, is
//! `bodies`. Each costs a clock read or an atomic store, never a timer.

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

/// An answer's body: while hyper holds it the connection is answering; hyper drops it once it
/// has written it, and the connection is idle from then.
#[derive(Debug)]
pub struct Reported<B, C: Clock> {
    body: B,
    slot: Arc<Slot<C>>,
}

impl<B, C: Clock> Reported<B, C> {
    pub(super) fn new(body: B, slot: Arc<Slot<C>>) -> Self {
        Self { body, slot }
    }
}

impl<B: Body + Unpin, C: Clock> Body for Reported<B, C> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
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
        self.slot.answered();
    }
}
