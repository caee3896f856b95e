//! What one connection is doing, so it can be cut when a client stalls.
//!
//! A new connection is *reading a head* from the moment it is accepted until
//! its first request's headers are complete; then it is *busy* while a
//! request is being answered, *idle* between requests, and reading a head
//! again from the first byte of the next one. Head and idle phases have
//! deadlines (the header and idle timeouts), so a connection that never
//! sends a byte is cut at the header timeout; a busy connection is bounded
//! by the body timeout, which [`DeadlineBody`] enforces on the request body.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::BoxError;

#[derive(Clone, Copy)]
enum Phase {
    Idle { since: Instant },
    ReadingHead { since: Instant },
    Busy { requests: usize },
}

/// Shared between the socket, the service and the connection's watchdog.
pub struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Set once the connection was asked to close to free its slot.
    shed: AtomicBool,
    shed_requested: Notify,
    /// Told whenever this connection finishes a request and goes idle.
    became_idle: Arc<Notify>,
}

impl Activity {
    pub fn new(
        header_timeout: Duration,
        idle_timeout: Duration,
        became_idle: Arc<Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            // The first request's head is due within the header timeout of
            // the accept, not of its first byte: a silent connection would
            // otherwise hold its slot for the whole idle timeout.
            phase: Mutex::new(Phase::ReadingHead {
                since: Instant::now(),
            }),
            changed: Notify::new(),
            header_timeout,
            idle_timeout,
            shed: AtomicBool::new(false),
            shed_requested: Notify::new(),
            became_idle,
        })
    }

    /// Since when the connection has waited between requests, unless it is
    /// doing something or was already asked to close.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.is_shed() {
            return None;
        }
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Idle { since } => Some(since),
            _ => None,
        }
    }

    pub fn is_shed(&self) -> bool {
        self.shed.load(Ordering::Relaxed)
    }

    /// Asks the connection to close once nothing is in flight.
    pub fn shed(&self) {
        self.shed.store(true, Ordering::Relaxed);
        self.shed_requested.notify_one();
    }

    /// Returns once the connection was asked to give up its slot.
    pub async fn shed_requested(&self) {
        self.shed_requested.notified().await;
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = change(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection starts reading a request head.
    fn bytes_read(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::ReadingHead {
                since: Instant::now(),
            };
            drop(phase);
            // The watchdog sleeps toward the idle deadline; the head's is sooner.
            self.changed.notify_one();
        }
    }

    /// A request's head is complete; it is being answered until the guard drops.
    pub fn request_started(self: &Arc<Self>) -> BusyGuard {
        self.update(|phase| match phase {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            _ => Phase::Busy { requests: 1 },
        });
        BusyGuard {
            activity: Arc::clone(self),
        }
    }

    /// When the connection must be cut unless something happens first.
    fn deadline(&self) -> Option<Instant> {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Idle { since } => Some(since + self.idle_timeout),
            Phase::ReadingHead { since } => Some(since + self.header_timeout),
            Phase::Busy { .. } => None,
        }
    }

    /// Returns once the connection has been idle or reading a head for too long.
    pub async fn stalled(&self) {
        loop {
            let changed = self.changed.notified();
            match self.deadline() {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// Marks a request as answered when the response is done (or dropped).
pub struct BusyGuard {
    activity: Arc<Activity>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.activity.update(|phase| match phase {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            _ => Phase::Idle {
                since: Instant::now(),
            },
        });
        self.activity.became_idle.notify_one();
    }
}

/// The socket, reporting every read to the connection's [`Activity`].
pub struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> WatchedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body was not sent in time")]
pub struct BodyTimedOut;

/// A request body that fails once its deadline passes.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as busy until it is sent.
pub struct GuardedBody<B> {
    inner: B,
    _busy: BusyGuard,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, busy: BusyGuard) -> Self {
        Self { inner, _busy: busy }
    }
}

impl<B: Body + Unpin> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
