//! The HTTP/1.1 server loop: a global connection limit, keep-alive idle and request-head timeouts, TCP_NODELAY,
//! and a graceful shutdown that lets requests in flight finish.
//!
//! Three timers bound what a client can hold without sending a complete request:
//! - a connection with no request in flight and no bytes moving is closed after `idle_timeout` (the keep-alive
//!   idle time, and the time a fresh connection may stay silent);
//! - once the first byte of a request head arrives, the whole head must follow within `header_timeout`;
//! - the body must arrive within `body_timeout` of the head (the API handler enforces that one, as it reads the
//!   body).
//!
//! The first two are kept per connection from what its socket reads and writes, and from whether a request is in
//! flight (until its reply is ready, or longer while the request's extensions are kept), so a slow reader of a
//! large reply is not cut while bytes still move. A connection is a slot of the global limit from its accept to its close;
//! beyond the limit, new connections wait in the listen backlog.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::ApiConfig;

/// In every request's extensions: changes when the server begins its graceful shutdown, so that a response that
/// never ends by itself (the status stream) ends then.
#[derive(Debug, Clone)]
pub(crate) struct Stopping(pub watch::Receiver<()>);

/// hyper's read buffer (and so the largest request head) per connection; bodies stream through it in chunks.
const MAX_BUF: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets every request in flight
/// finish (idle connections are closed at once) and returns when the last connection has ended.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cfg: &ApiConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limit = cfg
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(limit));
    let timers = Timers {
        header: cfg.header_timeout,
        idle: cfg.idle_timeout,
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // The head timeout is ours (it starts at the head's first byte, not when the connection goes idle).
    http.header_read_timeout(None)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let http = Arc::new(http);
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, say: wait for connections to close rather than spin.
                    tracing::error!(error = %e, "accept failed");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        tokio::spawn(connection(
            tcp,
            peer,
            router.clone(),
            http.clone(),
            timers,
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(());
    // Each connection holds its slot until it ends: all slots back means every connection has finished.
    let _ = slots.acquire_many(limit as u32).await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[derive(Debug, Clone, Copy)]
struct Timers {
    header: Duration,
    idle: Duration,
}

async fn connection(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    timers: Timers,
    mut stop: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        io: tcp,
        activity: activity.clone(),
    });
    let marks = activity.clone();
    let stopping = Stopping(stop.clone());
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(stopping.clone());
        // In flight until the reply is ready, and while whatever keeps the request's extensions lives.
        let busy = InFlight::start(&marks);
        req.extensions_mut().insert(busy.clone());
        // The client's address, for handlers that show it (a function URL's `sourceIp`).
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let reply = tower_service::Service::call(&mut router.clone(), req);
        async move {
            let _busy = busy;
            reply.await
        }
    });
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let check = tokio::time::sleep(timers.idle.min(timers.header));
    tokio::pin!(check);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = check.as_mut() => {
                let now = Instant::now();
                match activity.deadline(&timers, now) {
                    Some(at) => check.as_mut().reset(at),
                    None => {
                        tracing::debug!("closing a connection: idle, or its request head is too slow");
                        return;
                    }
                }
            }
        }
    }
}

const NONE: u64 = u64::MAX;

/// What one connection's socket and requests are doing, in milliseconds since it was accepted.
#[derive(Debug)]
struct Activity {
    epoch: Instant,
    /// Requests whose head has been read and whose request object still lives.
    in_flight: AtomicU32,
    /// The last time bytes moved either way, or a request ended.
    last: AtomicU64,
    /// When the first byte of a request head arrived while no request was in flight (`NONE`: no head started).
    head: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicU32::new(0),
            last: AtomicU64::new(0),
            head: AtomicU64::new(NONE),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn read(&self) {
        let now = self.now_ms();
        self.last.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 && self.head.load(Ordering::Relaxed) == NONE
        {
            self.head.store(now, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// When to look again, or `None` when the connection has overstayed.
    fn deadline(&self, t: &Timers, now: Instant) -> Option<Instant> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
        let at = if self.in_flight.load(Ordering::Relaxed) > 0 {
            // A request is being handled (its body has a deadline of its own): look again later.
            return Some(now + t.idle.min(t.header));
        } else {
            match self.head.load(Ordering::Relaxed) {
                NONE => self.last.load(Ordering::Relaxed).saturating_add(ms(t.idle)),
                started => started.saturating_add(ms(t.header)),
            }
        };
        let at = self.epoch + Duration::from_millis(at);
        (at > now).then_some(at)
    }
}

/// Marks a request in flight on its connection while it lives: one is held until the reply is ready, a clone
/// travels in the request's extensions (so a handler that keeps reading the body after replying keeps the
/// connection busy by keeping them).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(a: &Arc<Activity>) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        a.head.store(NONE, Ordering::Relaxed);
        InFlight(a.clone())
    }
}

impl Clone for InFlight {
    fn clone(&self) -> Self {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.0.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting when bytes move.
struct Tracked {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        r
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn cfg(max_connections: usize, header_ms: u64, idle_ms: u64) -> ApiConfig {
        ApiConfig {
            max_connections,
            header_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            ..ApiConfig::default()
        }
    }

    /// Serves a small router; returns its address, the trigger of its shutdown and the server task.
    async fn start(
        cfg: ApiConfig,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let router = Router::new().route("/", get(|| async { "ok" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "slow"
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, router, &cfg, async {
                let _ = rx.await;
            })
            .await
        });
        (addr, tx, task)
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const SLOW: &[u8] = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";

    /// Reads one whole reply (`Content-Length` framing); `None` on EOF or after `wait`.
    async fn reply(c: &mut TcpStream, wait: Duration) -> Option<String> {
        let mut got = Vec::new();
        let read = async {
            let mut buf = [0u8; 4096];
            loop {
                let n = c.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|n| n.trim().parse::<usize>().ok())?;
                    if body.len() >= len {
                        return Some(body.to_string());
                    }
                }
            }
        };
        tokio::time::timeout(wait, read).await.ok().flatten()
    }

    /// Whether the server closes `c` within `wait` (EOF or reset), reading anything it sends meanwhile.
    async fn closed_within(c: &mut TcpStream, wait: Duration) -> bool {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(wait, async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    #[test]
    fn deadlines_follow_activity() {
        let t = Timers {
            header: Duration::from_millis(500),
            idle: Duration::from_secs(2),
        };
        let a = Arc::new(Activity::new());
        let at = |ms| a.epoch + Duration::from_millis(ms);
        // Silent since the accept: closed after `idle`.
        assert_eq!(a.deadline(&t, at(1_000)), Some(at(2_000)));
        assert_eq!(a.deadline(&t, at(2_000)), None);
        // The first byte of a head starts the head clock.
        a.head.store(1_500, Ordering::Relaxed);
        a.last.store(1_900, Ordering::Relaxed);
        assert_eq!(a.deadline(&t, at(1_900)), Some(at(2_000)));
        assert_eq!(a.deadline(&t, at(2_001)), None);
        // A request in flight is never cut by these timers, and clears the head clock.
        let busy = InFlight::start(&a);
        let kept = busy.clone();
        assert_eq!(a.head.load(Ordering::Relaxed), NONE);
        assert!(a.deadline(&t, at(60_000)).is_some());
        drop(busy);
        assert!(
            a.deadline(&t, at(60_000)).is_some(),
            "a clone still holds it"
        );
        drop(kept);
        assert_eq!(a.in_flight.load(Ordering::Relaxed), 0);
        let last = a.last.load(Ordering::Relaxed);
        assert_eq!(a.deadline(&t, at(last)), Some(at(last + 2_000)));
    }

    #[tokio::test]
    async fn idle_connections_are_closed_and_busy_ones_are_not() {
        let (addr, _stop, _task) = start(cfg(16, 300, 300)).await;
        // Never sends a byte.
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        // Sends one request, then idles on the kept-alive connection.
        let mut used = TcpStream::connect(addr).await.expect("connect");
        used.write_all(GET).await.expect("write");
        assert_eq!(
            reply(&mut used, Duration::from_secs(5)).await.as_deref(),
            Some("ok")
        );
        // A request that takes longer than both timers is answered.
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(SLOW).await.expect("write");
        assert_eq!(
            reply(&mut slow, Duration::from_secs(5)).await.as_deref(),
            Some("slow")
        );
        assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
        assert!(closed_within(&mut used, Duration::from_secs(3)).await);
        assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    }

    #[tokio::test]
    async fn a_head_sent_a_byte_at_a_time_is_cut_by_the_header_timeout() {
        // The idle timer is long: only the head clock can close this connection.
        let (addr, _stop, _task) = start(cfg(16, 500, 30_000)).await;
        let mut c = TcpStream::connect(addr).await.expect("connect");
        let started = std::time::Instant::now();
        let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut cut = false;
        for b in head.iter() {
            if c.write_all(&[*b]).await.is_err() {
                cut = true;
                break;
            }
            if closed_within(&mut c, Duration::from_millis(100)).await {
                cut = true;
                break;
            }
        }
        assert!(cut, "the slow head was served");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // Meanwhile and after, a normal client is served.
        let mut ok = TcpStream::connect(addr).await.expect("connect");
        ok.write_all(GET).await.expect("write");
        assert_eq!(
            reply(&mut ok, Duration::from_secs(5)).await.as_deref(),
            Some("ok")
        );
    }

    #[tokio::test]
    async fn the_connection_limit_holds() {
        let (addr, _stop, _task) = start(cfg(2, 30_000, 30_000)).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            c.write_all(GET).await.expect("write");
            assert_eq!(
                reply(&mut c, Duration::from_secs(5)).await.as_deref(),
                Some("ok")
            );
            held.push(c);
        }
        // The third waits in the backlog while both slots are held...
        let mut third = TcpStream::connect(addr).await.expect("connect (backlog)");
        third.write_all(GET).await.expect("write");
        assert_eq!(reply(&mut third, Duration::from_millis(500)).await, None);
        // ... and is served as soon as one closes.
        drop(held.pop());
        assert_eq!(
            reply(&mut third, Duration::from_secs(5)).await.as_deref(),
            Some("ok")
        );
    }

    #[tokio::test]
    async fn shutdown_lets_requests_in_flight_finish() {
        let (addr, stop, task) = start(cfg(16, 30_000, 30_000)).await;
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        idle.write_all(GET).await.expect("write");
        assert_eq!(
            reply(&mut idle, Duration::from_secs(5)).await.as_deref(),
            Some("ok")
        );
        let mut busy = TcpStream::connect(addr).await.expect("connect");
        busy.write_all(SLOW).await.expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = stop.send(());
        // The idle connection is closed at once; the slow request still gets its reply.
        assert!(closed_within(&mut idle, Duration::from_millis(500)).await);
        assert_eq!(
            reply(&mut busy, Duration::from_secs(5)).await.as_deref(),
            Some("slow")
        );
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returns once the last connection ends")
            .expect("serve task");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }
}
