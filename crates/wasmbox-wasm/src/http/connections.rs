//! The HTTP server's open connections (see `super::server`): what each one is doing, so that idle
//! and slow ones are closed and the bound on open connections holds.
//!
//! A connection is *idle* while no request is in flight on it and no byte of the next one has
//! arrived (from its accept, and from the end of each response), *in a head* from the first
//! byte of a request until its head is complete, and *busy* while requests are in flight (until
//! their responses are sent in full). Idle ones are closed after the idle timeout, ones in a
//! head after the header timeout: a client that opens connections and sends nothing, or half a
//! request, cannot hold them for good. At the bound, the accept loop first closes the
//! connection that has waited longest for a request (idle or in a head), never a busy one; when
//! every connection is busy it stops accepting until one ends (the kernel's backlog holds the
//! newcomers).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::policy::HttpConnections;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request since then, with nothing of it arrived.
    Idle(Instant),
    /// The first bytes of a request arrived then; its head is not complete.
    Head(Instant),
    /// Requests in flight.
    Busy(usize),
}

/// One open connection.
#[derive(Debug)]
pub struct Conn {
    phase: Mutex<Phase>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Conn {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bytes_arrived(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
        }
    }

    /// A request's head is complete: it is in flight until the returned value is dropped
    /// (with its response, once sent).
    pub fn request_began(self: &Arc<Self>) -> InFlight {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        InFlight(self.clone())
    }

    /// Since when it waits for a request (None while busy).
    fn waiting_since(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Idle(t) | Phase::Head(t) => Some(t),
            Phase::Busy(_) => None,
        }
    }

    fn overdue(&self, now: Instant, limits: &HttpConnections) -> bool {
        match *self.phase() {
            Phase::Idle(t) => now.duration_since(t) >= limits.idle_timeout,
            Phase::Head(t) => now.duration_since(t) >= limits.header_timeout,
            Phase::Busy(_) => false,
        }
    }

    /// Sets the task that serves it, which [`Connections`] aborts to close it.
    pub fn served_by(&self, task: tokio::task::AbortHandle) {
        *self.abort.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    fn close(&self) {
        if let Some(task) = self.abort.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            task.abort();
        }
    }
}

/// A request in flight on a connection; dropped with its response.
#[derive(Debug)]
pub struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
    }
}

/// Every open connection of one server.
#[derive(Debug)]
pub struct Connections {
    limits: HttpConnections,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    ended: tokio::sync::Notify,
}

/// A connection's place among the open ones, given back when its task ends.
pub struct Registration {
    connections: Arc<Connections>,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.open().remove(&self.key);
        self.connections.ended.notify_waiters();
    }
}

impl Connections {
    pub fn new(limits: HttpConnections) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            ended: tokio::sync::Notify::new(),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many are open.
    pub fn count(&self) -> usize {
        self.open().len()
    }

    /// Makes room for one more: at the bound, closes the connection waiting longest for a
    /// request; when all are busy, waits until one ends.
    pub async fn make_room(&self) {
        loop {
            // Made before the look: an end after it wakes the wait below.
            let ended = self.ended.notified();
            {
                let mut open = self.open();
                if open.len() < self.limits.max_connections {
                    return;
                }
                let oldest = open
                    .iter()
                    .filter_map(|(k, c)| c.waiting_since().map(|t| (t, *k)))
                    .min()
                    .map(|(_, k)| k);
                if let Some(conn) = oldest.and_then(|k| open.remove(&k)) {
                    log::debug!("{} connections open: closing the one waiting longest for a request", open.len() + 1);
                    conn.close();
                    continue;
                }
            }
            ended.await;
        }
    }

    /// A new connection, open until the returned registration is dropped.
    pub fn register(self: &Arc<Self>) -> (Arc<Conn>, Registration) {
        let conn = Arc::new(Conn {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            abort: Mutex::new(None),
        });
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.open().insert(key, conn.clone());
        (conn, Registration { connections: self.clone(), key })
    }

    /// Closes the connections past their idle or header timeout.
    pub fn sweep(&self, now: Instant) {
        let mut open = self.open();
        let overdue: Vec<u64> = open.iter().filter(|(_, c)| c.overdue(now, &self.limits)).map(|(k, _)| *k).collect();
        for key in overdue {
            if let Some(conn) = open.remove(&key) {
                conn.close();
            }
        }
    }
}

/// A connection's stream, noting when bytes of a request arrive.
pub struct Tracked<T> {
    inner: T,
    conn: Arc<Conn>,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, conn: Arc<Conn>) -> Self {
        Self { inner, conn }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The open-connection bound a process can keep: `wanted`, but leaving descriptors for
/// everything else (the handlers' files and sockets, the runtime's own) under its limit.
pub fn bound_by_descriptors(wanted: usize, handlers: usize) -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through the pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return wanted;
    }
    let others = 64 + 2 * handlers;
    wanted.min((limit.rlim_cur as usize).saturating_sub(others).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max: usize) -> HttpConnections {
        HttpConnections {
            header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            max_connections: max,
        }
    }

    #[test]
    fn phases_follow_bytes_and_requests() {
        let all = Connections::new(limits(10));
        let (c, _reg) = all.register();
        let now = Instant::now();
        assert!(!c.overdue(now, &all.limits));
        assert!(c.overdue(now + Duration::from_secs(6), &all.limits), "idle past the idle timeout");
        c.bytes_arrived();
        assert!(c.overdue(Instant::now() + Duration::from_secs(3), &all.limits), "a head past the header timeout");
        let first = c.request_began();
        let second = c.request_began();
        assert!(!c.overdue(Instant::now() + Duration::from_secs(600), &all.limits), "busy is never overdue");
        drop(first);
        assert_eq!(c.waiting_since(), None, "one request still in flight");
        drop(second);
        assert!(c.waiting_since().is_some(), "idle again once every response went");
    }

    #[tokio::test]
    async fn at_the_bound_the_longest_waiting_goes_and_busy_ones_stay() {
        let all = Connections::new(limits(2));
        let (busy, _r1) = all.register();
        let _req = busy.request_began();
        let (idle, r2) = all.register();
        let task = tokio::spawn(std::future::pending::<()>());
        idle.served_by(task.abort_handle());
        all.make_room().await;
        assert_eq!(all.count(), 1, "the idle one was closed");
        assert!(task.await.unwrap_err().is_cancelled());
        drop(r2);
        // Every connection busy: no room until one ends.
        let (busy2, r3) = all.register();
        let _req2 = busy2.request_began();
        let waiting = tokio::time::timeout(Duration::from_millis(50), all.make_room()).await;
        assert!(waiting.is_err(), "waits while every connection serves a request");
        let room = tokio::spawn({
            let all = all.clone();
            async move { all.make_room().await }
        });
        tokio::task::yield_now().await;
        drop(r3);
        tokio::time::timeout(Duration::from_secs(5), room).await.unwrap().unwrap();
    }
}
