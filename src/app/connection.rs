//! One inbound connection's time limits: a connection is closed when a request's headers
//! take longer than `server.header_read_timeout_ms` from their first byte (a slow or
//! half-sent request), or when it sits with no request and no byte moving for
//! `server.idle_timeout_ms` (a fresh connection that sends nothing, an idle keep-alive one).
//! While a request is being answered neither applies (`server.request_timeout_ms` bounds
//! the answer).
//!
//! Three pieces share one [`ConnectionClock`]: [`ClockedIo`], the socket, notes when bytes
//! move; [`ClockedService`] notes when a request reaches the service (its headers are
//! complete); the first write after that is its answer. [`Watchdog`] is a future that
//! completes when the connection has outlived its limit; [`super::accept`] races it against
//! the connection and drops the connection (closing the socket) when it wins. Everything
//! that moves the clock runs inside the connection's own poll, and the watchdog is polled
//! right after it (a biased `select!`), so it always sees the latest state and needs no
//! wake-ups of its own besides its timer. So the socket only notes *that* bytes moved, and
//! the watchdog reads the time once for all that moved in the poll before it (a request
//! read and its answer written in one poll cost one reading of the clock, not two). A poll
//! in which a request reached the door has a reading already, the one the door times the
//! request from ([`ClockedService`] takes it and hands it to both): the watchdog uses that
//! one, so a cache hit costs the door's two readings and no third.
//!
//! All of a connection's pieces run in its one task, never at once: the clock's atomics
//! are only there to be shared, and a flag is taken with a load and a store rather than a
//! locked swap.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::routes::{DoorAnswer, FrontDoor};

/// The two limits of a connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnectionLimits {
    /// From the first byte of a request to the end of its headers.
    pub header_read: Duration,
    /// With no request on the connection and no byte moving.
    pub idle: Duration,
}

/// No request head has started (in [`ConnectionClock::head_started_ms`]).
const NO_HEAD: u64 = u64::MAX;

/// A request head has started since the watchdog last looked: at the time it looks next
/// (in [`ConnectionClock::head_started_ms`]).
const HEAD_NOW: u64 = u64::MAX - 1;

/// What a connection did last, in milliseconds since it was accepted.
#[derive(Debug)]
pub(super) struct ConnectionClock {
    accepted: Instant,
    /// The last byte read or written (as of the watchdog's last look).
    last_activity_ms: AtomicU64,
    /// Bytes moved since the watchdog's last look.
    moved: AtomicBool,
    /// The first byte of the request head being read, [`NO_HEAD`] or [`HEAD_NOW`].
    head_started_ms: AtomicU64,
    /// A request is with the service and not yet answered.
    answering: AtomicBool,
    /// The time a request reached the service since the watchdog's last look, or
    /// [`NO_READING`].
    request_started_ms: AtomicU64,
}

/// No request reached the service since the watchdog's last look (in
/// [`ConnectionClock::request_started_ms`]).
const NO_READING: u64 = u64::MAX;

/// Takes `flag`: whether it was set, leaving it clear (see the module's note on atomics).
fn take(flag: &AtomicBool) -> bool {
    let set = flag.load(Ordering::Relaxed);
    if set {
        flag.store(false, Ordering::Relaxed);
    }
    set
}

impl ConnectionClock {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            accepted: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            moved: AtomicBool::new(false),
            head_started_ms: AtomicU64::new(NO_HEAD),
            answering: AtomicBool::new(false),
            request_started_ms: AtomicU64::new(NO_READING),
        })
    }

    /// `at` in milliseconds since the connection was accepted (never one of the markers).
    fn ms_at(&self, at: Instant) -> u64 {
        let ms = at.saturating_duration_since(self.accepted).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX).min(HEAD_NOW - 1)
    }

    fn read(&self) {
        self.moved.store(true, Ordering::Relaxed);
        // Bytes while no request is being answered belong to the next request's head (or
        // to the rest of the last one's body, which gets the same bound).
        if !self.answering.load(Ordering::Relaxed)
            && self.head_started_ms.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_started_ms.store(HEAD_NOW, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.moved.store(true, Ordering::Relaxed);
        // hyper writes only once the service has answered: the request is done.
        self.answering.store(false, Ordering::Relaxed);
    }

    /// Gives what moved since the last look its time: now (the watchdog looks right after
    /// each poll of the connection, in which it moved), or the time a request reached the
    /// service in that poll, read already.
    fn settle(&self) {
        let request_started = self.request_started_ms.load(Ordering::Relaxed);
        if request_started != NO_READING {
            self.request_started_ms.store(NO_READING, Ordering::Relaxed);
        }
        if !take(&self.moved) {
            return;
        }
        let now = if request_started == NO_READING {
            self.ms_at(Instant::now())
        } else {
            request_started
        };
        self.last_activity_ms.store(now, Ordering::Relaxed);
        if self.head_started_ms.load(Ordering::Relaxed) == HEAD_NOW {
            self.head_started_ms.store(now, Ordering::Relaxed);
        }
    }

    /// A request reached the service at `now`.
    fn request_started(&self, now: Instant) {
        self.answering.store(true, Ordering::Relaxed);
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        self.request_started_ms
            .store(self.ms_at(now), Ordering::Relaxed);
    }

    /// When the connection must close, and why; `None` while a request is being answered.
    /// What moved is settled first.
    fn deadline(&self, limits: ConnectionLimits) -> Option<(Instant, Expiry)> {
        self.settle();
        if self.answering.load(Ordering::Relaxed) {
            return None;
        }
        // One `Instant` addition (the `Duration` one is cheaper): this runs after every
        // poll of the connection.
        let at = |ms: u64, limit: Duration| self.accepted + (Duration::from_millis(ms) + limit);
        match self.head_started_ms.load(Ordering::Relaxed) {
            NO_HEAD => Some((
                at(self.last_activity_ms.load(Ordering::Relaxed), limits.idle),
                Expiry::Idle,
            )),
            started => Some((at(started, limits.header_read), Expiry::HeaderRead)),
        }
    }
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// Its request headers took too long.
    HeaderRead,
    /// It sat idle too long.
    Idle,
}

impl Expiry {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::HeaderRead => "header_read_timeout",
            Self::Idle => "idle_timeout",
        }
    }
}

/// Completes when the connection has outlived its limit.
#[derive(Debug)]
pub(super) struct Watchdog {
    clock: Arc<ConnectionClock>,
    limits: ConnectionLimits,
    timer: Pin<Box<Sleep>>,
    /// The timer has been polled since it was last set: it wakes this task when it fires.
    armed: bool,
}

impl Watchdog {
    pub(super) fn new(clock: Arc<ConnectionClock>, limits: ConnectionLimits) -> Self {
        let first = clock.accepted + limits.idle;
        Self {
            clock,
            limits,
            timer: Box::pin(tokio::time::sleep_until(first)),
            armed: false,
        }
    }
}

impl Future for Watchdog {
    type Output = Expiry;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expiry> {
        let this = self.get_mut();
        loop {
            // While a request is answered there is no deadline; the connection's own poll
            // (which ends the request) is followed by this one.
            let Some((deadline, why)) = this.clock.deadline(this.limits) else {
                return Poll::Pending;
            };
            // The timer is moved earlier at once, later only when it fires: activity
            // costs no timer update.
            if deadline < this.timer.deadline() {
                this.timer.as_mut().reset(deadline);
                this.armed = false;
            }
            // An armed timer that has not fired needs no poll: it will wake the task (whose
            // waker it keeps) no later than the deadline.
            if this.armed && !this.timer.is_elapsed() {
                return Poll::Pending;
            }
            match this.timer.as_mut().poll(cx) {
                Poll::Pending => {
                    this.armed = true;
                    return Poll::Pending;
                }
                Poll::Ready(()) if deadline <= this.timer.deadline() => return Poll::Ready(why),
                Poll::Ready(()) => {
                    this.timer.as_mut().reset(deadline);
                    this.armed = false;
                }
            }
        }
    }
}

/// A socket that tells its [`ConnectionClock`] when bytes move.
#[derive(Debug)]
pub(super) struct ClockedIo<T> {
    inner: T,
    clock: Arc<ConnectionClock>,
}

impl<T> ClockedIo<T> {
    pub(super) fn new(inner: T, clock: Arc<ConnectionClock>) -> Self {
        Self { inner, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClockedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.read();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClockedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.wrote();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The proxy's front door as hyper calls it on one connection: notes each request's start
/// on the clock and hands the request on unchanged (as `axum::serve` does) to the door's
/// [`FrontDoor::answer_at`], at once. That is, not through a lazy `Oneshot` (as hyper-util's
/// tower adapter does), which would keep the request, and with it slices of hyper's read
/// buffer, until hyper has reserved room for the next read: hyper then allocates a new
/// buffer for every request. Called at once, an answer given in the call has dropped the
/// request by then. It also saves a clone of the door per request. The one reading of the
/// clock at the request's start serves the door (its latency's start) and the clock.
#[derive(Debug, Clone)]
pub(super) struct ClockedService {
    door: FrontDoor,
    clock: Arc<ConnectionClock>,
}

impl ClockedService {
    pub(super) fn new(door: FrontDoor, clock: Arc<ConnectionClock>) -> Self {
        Self { door, clock }
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for ClockedService {
    type Response = Response;
    type Error = Infallible;
    type Future = DoorAnswer;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let now = Instant::now();
        self.clock.request_started(now);
        self.door.answer_at(request.map(Body::new), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read: Duration::from_secs(5),
        idle: Duration::from_secs(60),
    };

    /// The time since `accepted`, checked to be `expected` (to the timer's millisecond).
    fn assert_at(accepted: Instant, expected: Duration) {
        let at = accepted.elapsed();
        assert!(
            at >= expected && at <= expected + Duration::from_millis(1),
            "{at:?}, not {expected:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_fires_at_the_deadline_the_latest_activity_sets() {
        let clock = ConnectionClock::new();
        let accepted = clock.accepted;
        let mut watchdog = std::pin::pin!(Watchdog::new(clock.clone(), LIMITS));
        // Idle for 30 s, then a request answered at once: idle until 90 s, past the first
        // timer (60 s), which is set again when it fires.
        let waited = tokio::time::timeout(Duration::from_secs(30), &mut watchdog).await;
        assert!(waited.is_err(), "not yet");
        clock.read();
        clock.request_started(Instant::now());
        clock.wrote();
        assert_eq!(watchdog.as_mut().await, Expiry::Idle);
        assert_at(accepted, Duration::from_secs(90));
        // A head started at 10 s: its limit (5 s) comes before the idle one.
        let clock = ConnectionClock::new();
        let accepted = clock.accepted;
        let mut watchdog = std::pin::pin!(Watchdog::new(clock.clone(), LIMITS));
        let waited = tokio::time::timeout(Duration::from_secs(10), &mut watchdog).await;
        assert!(waited.is_err(), "not yet");
        clock.read();
        assert_eq!(watchdog.as_mut().await, Expiry::HeaderRead);
        assert_at(accepted, Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn what_moved_in_a_poll_is_timed_when_the_watchdog_looks() {
        let clock = ConnectionClock::new();
        let accepted = clock.accepted;
        let after = |ms| accepted + Duration::from_millis(ms);
        assert_eq!(clock.deadline(LIMITS), Some((after(60_000), Expiry::Idle)));
        // A request's first bytes: its head is timed from the look after them.
        tokio::time::advance(Duration::from_millis(100)).await;
        clock.read();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            clock.deadline(LIMITS),
            Some((after(5_101), Expiry::HeaderRead))
        );
        // More of the head: still timed from its first bytes.
        tokio::time::advance(Duration::from_millis(200)).await;
        clock.read();
        assert_eq!(
            clock.deadline(LIMITS),
            Some((after(5_101), Expiry::HeaderRead))
        );
        // Being answered: no limit, however long.
        clock.request_started(Instant::now());
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(clock.deadline(LIMITS), None);
        // The answer: idle from then on.
        clock.wrote();
        assert_eq!(
            clock.deadline(LIMITS),
            Some((after(600_301 + 60_000), Expiry::Idle))
        );
        // A request read, answered and written in one poll: idle from the look after it.
        tokio::time::advance(Duration::from_millis(20)).await;
        clock.read();
        clock.request_started(Instant::now());
        clock.wrote();
        assert_eq!(
            clock.deadline(LIMITS),
            Some((after(600_321 + 60_000), Expiry::Idle))
        );
        // Nothing moved: the deadline stays.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            clock.deadline(LIMITS),
            Some((after(600_321 + 60_000), Expiry::Idle))
        );
        // A request that reached the service in the poll: the poll is timed by the reading
        // taken then (the answer took 3 ms of the poll), not by another.
        tokio::time::advance(Duration::from_millis(10)).await;
        clock.read();
        clock.request_started(Instant::now());
        tokio::time::advance(Duration::from_millis(3)).await;
        clock.wrote();
        assert_eq!(
            clock.deadline(LIMITS),
            Some((after(630_331 + 60_000), Expiry::Idle))
        );
    }
}
