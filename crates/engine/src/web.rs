//! Web functions (`Type=HTTP`): `scf_bootstrap` from the code root runs an HTTP server on port 9000 of the
//! instance's own network namespace, and requests are proxied to it as HTTP/1.1.
//!
//! - Start: the launcher starts the bootstrap like a custom runtime's (same environment, no runtime API). The
//!   engine connects to `127.0.0.1:9000` inside the instance every 10 ms until `InitTimeout`: the bootstrap exited
//!   first → 405, nothing listening in time → 446 (the instance is killed either way).
//! - Reaching the instance's loopback: a short-lived thread enters the instance's network namespace
//!   (`setns(CLONE_NEWNET)` on `/proc/<pid>/ns/net`, opened once when the instance is ready, so a recycled pid is
//!   never entered), connects, and hands the socket back; a socket keeps the namespace it was made in, so tokio
//!   drives it like any other. The thread ends with the connect, so no thread of the server stays in an
//!   instance's namespace. Connections are HTTP/1.1 keep-alive and pooled per instance, so the namespace hop is
//!   paid once per connection, not per request. Without a sandbox (development) the instance shares the host's
//!   network: the bootstrap binds the host's `127.0.0.1:9000`, so one web instance at a time.
//! - Per instance: at most `MaxConcurrency` requests at once (`InstanceConcurrencyConfig`, default 1); a request
//!   that finds every instance full starts another one, within the engine's per-function and per-account limits.
//! - Per request: `Timeout` bounds the whole exchange (head and body): past it that request alone ends with 433
//!   and the instance takes no more requests and is stopped once its other requests are done. Memory over the
//!   limit or an exit stops the instance and every request in it ends with 434 (or 439).
//! - Output: the bootstrap's stdout/stderr is collected per instance; each finished request takes what was
//!   written since the previous one as its log (with multi-concurrency the lines of overlapping requests mix, as
//!   on SCF).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::engine::{Engine, Slot};
use crate::instance::environment;
use crate::launcher::{InstanceProcess, LaunchSpec};
use crate::log::{InitReport, LogParts, render};
use crate::pipe::{Pipe, pipe};
use crate::types::{EngineError, FunctionError, FunctionSpec, status};

/// The port a web function's server listens on inside its instance.
pub const WEB_PORT: u16 = 9000;
/// How often readiness is tried.
pub const READY_POLL: Duration = Duration::from_millis(10);

/// SCF's statuses of a web function's failures.
pub mod web_status {
    /// The bootstrap exited before it listened (`ContainerStateExited`).
    pub const EXITED: u16 = 405;
    /// Nothing listened on 9000 within `InitTimeout` (`PortBindingFailed`).
    pub const NOT_LISTENING: u16 = 446;
}

/// One request for a web function.
pub struct WebRequest {
    pub request_id: String,
    /// Requests one instance serves at once (`InstanceConcurrencyConfig.MaxConcurrency`, 1–100).
    pub max_concurrency: u32,
    /// The request as the instance gets it (path and query below the URL, headers already set by the caller).
    pub request: Request<Body>,
}

/// What a finished web request measured, for its invocation record.
#[derive(Debug, Clone)]
pub struct WebDone {
    pub request_id: String,
    /// 200 for any response the server gave (its own status is the client's business), else the failure's.
    pub status_code: u16,
    pub error: Option<FunctionError>,
    pub duration_ms: f64,
    pub log: String,
    pub mem_usage_bytes: u64,
    pub cold_start: bool,
    pub init_ms: f64,
}

/// The reply to a web request: the server's response (its body streams as the server writes it) or why there is
/// none; `done` resolves once the exchange is over (the body read to its end, cut, or dropped).
pub struct WebReply {
    pub result: Result<Response<Body>, FunctionError>,
    pub done: oneshot::Receiver<WebDone>,
}

/// How the server reaches an instance's port 9000.
enum Net {
    /// The instance's network namespace (sandboxed).
    Namespace(Arc<File>),
    /// The host's loopback (unsandboxed).
    Host,
}

struct WebState {
    /// Why the instance stopped (434, 439), if it did.
    dead: Option<u16>,
    /// Takes no more requests (a request timed out, or the snapshot was retired); stopped when the last ends.
    retiring: bool,
    last_used: Instant,
    idle_conns: Vec<SendRequest<Body>>,
    log: Vec<u8>,
    log_dropped: usize,
}

pub(crate) struct WebInstance {
    process: Mutex<Box<dyn InstanceProcess>>,
    /// The bootstrap's stdout/stderr.
    output: Arc<Pipe>,
    max_log: usize,
    net: Net,
    inflight: AtomicU32,
    max: u32,
    state: Mutex<WebState>,
}

impl WebInstance {
    fn lock(&self) -> std::sync::MutexGuard<'_, WebState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kill(&self) {
        if let Ok(mut p) = self.process.lock() {
            p.kill();
        }
        self.lock().idle_conns.clear();
    }

    fn memory(&self) -> u64 {
        self.process
            .lock()
            .ok()
            .and_then(|p| p.memory_usage())
            .unwrap_or(0)
    }

    /// Checks memory and liveness; returns why the instance is dead, if it is.
    fn check(&self) -> Option<u16> {
        if let Some(d) = self.lock().dead {
            return Some(d);
        }
        let verdict = {
            let mut p = self.process.lock().ok()?;
            if p.over_memory_limit() {
                Some(status::MEMORY_LIMIT)
            } else {
                p.exit_status().map(|_| status::PROCESS_EXITED)
            }
        };
        if let Some(d) = verdict {
            self.lock().dead = Some(d);
            self.kill();
        }
        verdict
    }

    /// Moves what the output pipe holds into the log buffer; returns whether the pipe is at its end.
    fn drain_output(&self, st: &mut WebState) -> bool {
        let before = st.log.len();
        match self.output.drain_now(&mut st.log, self.max_log) {
            Ok((seen, eof)) => {
                st.log_dropped += seen - (st.log.len() - before);
                eof
            }
            Err(_) => true,
        }
    }

    fn take_log(&self) -> (Vec<u8>, usize) {
        let mut st = self.lock();
        self.drain_output(&mut st);
        let dropped = std::mem::take(&mut st.log_dropped);
        (std::mem::take(&mut st.log), dropped)
    }

    async fn connect(&self) -> io::Result<SendRequest<Body>> {
        let stream = match &self.net {
            Net::Host => {
                tokio::net::TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, WEB_PORT))
                    .await?
            }
            Net::Namespace(ns) => connect_in(ns.clone()).await?,
        };
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// A kept-alive connection ready for a request, or a new one.
    async fn sender(&self) -> io::Result<SendRequest<Body>> {
        loop {
            let idle = self.lock().idle_conns.pop();
            match idle {
                Some(mut s) => {
                    if !s.is_closed() && s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => return self.connect().await,
            }
        }
    }
}

/// Connects to `127.0.0.1:9000` inside the network namespace `ns` from a thread that enters it and ends.
async fn connect_in(ns: Arc<File>) -> io::Result<tokio::net::TcpStream> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("web-connect".into())
        .spawn(move || {
            let r = (|| {
                // SAFETY: setns on a namespace descriptor we hold; it changes only this thread's namespace, and the
                // thread ends right after the connect.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                let s = std::net::TcpStream::connect_timeout(
                    &SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, WEB_PORT)),
                    Duration::from_secs(5),
                )?;
                s.set_nonblocking(true)?;
                Ok(s)
            })();
            let _ = tx.send(r);
        })?;
    let s = rx
        .await
        .map_err(|_| io::Error::other("the connecting thread ended"))??;
    tokio::net::TcpStream::from_std(s)
}

/// The web instances of every snapshot.
#[derive(Default)]
pub(crate) struct WebPools {
    pools: Mutex<HashMap<String, Vec<Arc<WebInstance>>>>,
}

impl WebPools {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<WebInstance>>>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An instance of `key` with room for one more request (counted), if there is one. (The event pools'
    /// generations do not apply: a retired snapshot's web instances leave the map at once.)
    fn take(&self, key: &str) -> Option<Arc<WebInstance>> {
        let mut pools = self.lock();
        let list = pools.get_mut(key)?;
        list.retain(|i| {
            let st = i.lock();
            st.dead.is_none() && !(st.retiring && i.inflight.load(Ordering::Acquire) == 0)
        });
        for i in list.iter() {
            if i.lock().retiring {
                continue;
            }
            let n = i.inflight.load(Ordering::Acquire);
            if n < i.max
                && i.inflight
                    .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return Some(i.clone());
            }
        }
        None
    }

    fn add(&self, key: &str, i: Arc<WebInstance>) {
        self.lock().entry(key.to_string()).or_default().push(i);
    }

    /// Stops the instances of `key` (busy ones once their requests end).
    pub(crate) fn retire(&self, key: &str) -> usize {
        let list = self.lock().remove(key).unwrap_or_default();
        let n = list.len();
        for i in list {
            i.lock().retiring = true;
            if i.inflight.load(Ordering::Acquire) == 0 {
                i.kill();
            }
        }
        n
    }

    /// Stops every instance.
    pub(crate) fn shutdown(&self) {
        let all: Vec<_> = self.lock().drain().flat_map(|(_, l)| l).collect();
        for i in all {
            i.kill();
        }
    }

    /// Stops instances idle longer than `ttl`.
    pub(crate) fn reap(&self, ttl: Duration) -> usize {
        let now = Instant::now();
        let mut stale = Vec::new();
        let mut pools = self.lock();
        for list in pools.values_mut() {
            list.retain(|i| {
                let idle = i.inflight.load(Ordering::Acquire) == 0
                    && now.duration_since(i.lock().last_used) >= ttl;
                if idle {
                    stale.push(i.clone());
                }
                !idle
            });
        }
        pools.retain(|_, l| !l.is_empty());
        drop(pools);
        let n = stale.len();
        for i in stale {
            i.kill();
        }
        n
    }
}

/// Gives back an instance's request slot when the exchange ends, and reports it.
struct Lease {
    instance: Arc<WebInstance>,
    /// The engine's per-function and per-account count, held until the response has been streamed.
    slot: Option<Slot>,
    sender: Option<SendRequest<Body>>,
    /// The exchange completed cleanly: the connection may serve the next request.
    reusable: bool,
    done: Option<oneshot::Sender<WebDone>>,
    report: WebDone,
    started: Instant,
    memory_mb: u32,
    max_log: usize,
    max_retmsg: usize,
    init: Option<InitReport>,
}

impl Lease {
    fn fail(&mut self, error: FunctionError) {
        self.report.status_code = error.status_code;
        self.report.error = Some(error);
        self.reusable = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let i = &self.instance;
        let left = i.inflight.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        {
            let mut st = i.lock();
            st.last_used = Instant::now();
            if self.reusable
                && st.dead.is_none()
                && let Some(s) = self.sender.take()
            {
                st.idle_conns.push(s);
            }
            if st.retiring && left == 0 {
                drop(st);
                i.kill();
            }
        }
        let duration = self.started.elapsed();
        let (output, mut dropped) = i.take_log();
        let mut output = output;
        if output.len() > self.max_log {
            dropped += output.len() - self.max_log;
            output.truncate(self.max_log);
        }
        let mem = i.memory();
        let mut report = self.report.clone();
        report.duration_ms = duration.as_secs_f64() * 1000.0;
        report.mem_usage_bytes = mem;
        let result = match &report.error {
            Some(e) => Err(e.clone()),
            None => Ok(String::new()),
        };
        report.log = render(&LogParts {
            request_id: &report.request_id,
            init: self.init,
            output: &output,
            output_dropped: dropped,
            result: &result,
            max_retmsg: self.max_retmsg,
            duration_ms: report.duration_ms,
            memory_mb: self.memory_mb,
            mem_usage_bytes: mem,
        });
        self.slot = None;
        if let Some(tx) = self.done.take() {
            let _ = tx.send(report);
        }
    }
}

/// The server's response body, passed through frame by frame within the request's deadline; the lease ends with
/// it.
struct Streamed {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout_s: u32,
    lease: Option<Lease>,
}

impl HttpBody for Streamed {
    type Data = axum::body::Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.lease.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.lease = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(f))) => {
                // The last frame: the exchange is over before the client can see it end, so its next request
                // finds the instance free again.
                if this.inner.is_end_stream() {
                    this.lease = None;
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(mut l) = this.lease.take() {
                    let why = l.instance.check().unwrap_or(status::PROCESS_EXITED);
                    l.fail(failure(why, this.timeout_s));
                }
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    if let Some(mut l) = this.lease.take() {
                        l.fail(failure(status::TIMEOUT, this.timeout_s));
                        l.instance.lock().retiring = true;
                    }
                    return Poll::Ready(Some(Err(io::Error::other(
                        "the function's time limit ended the response",
                    ))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.lease.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        // A client that went away before the end: the connection is in an unknown state.
        if let Some(l) = self.lease.as_mut()
            && !self.inner.is_end_stream()
        {
            l.reusable = false;
        }
    }
}

fn failure(code: u16, timeout_s: u32) -> FunctionError {
    let msg = match code {
        status::TIMEOUT => format!("Invoking task timed out after {timeout_s} seconds"),
        status::MEMORY_LIMIT => "Memory limit exceeded: the instance was stopped".to_string(),
        web_status::EXITED => {
            "the web function's scf_bootstrap exited before it listened on port 9000".to_string()
        }
        web_status::NOT_LISTENING => format!(
            "the web function did not listen on port {WEB_PORT} within its InitTimeout: make scf_bootstrap's \
             server listen on 0.0.0.0:{WEB_PORT}"
        ),
        _ => "the web function's process exited while serving the request".to_string(),
    };
    FunctionError::new(code, msg)
}

/// A start that failed: the status and the bootstrap's output.
struct StartFailure {
    error: FunctionError,
    output: Vec<u8>,
    init: InitReport,
}

impl Engine {
    /// Serves one request of a web function on an instance of its snapshot with room, or on a new one.
    pub async fn web_request(
        &self,
        spec: &FunctionSpec,
        req: WebRequest,
    ) -> Result<WebReply, EngineError> {
        let inner = self.inner();
        let (slot, _warm, _generation, evicted) = self.admit(spec)?;
        drop(evicted);
        let (done_tx, done_rx) = oneshot::channel();
        let started = Instant::now();
        let max = req.max_concurrency.clamp(1, 100);
        let mut init = None;
        let instance = match inner.web.take(&spec.key) {
            Some(i) => i,
            None => match self.start_web(spec, max).await {
                Ok((i, report)) => {
                    init = Some(report);
                    inner.web.add(&spec.key, i.clone());
                    i
                }
                Err(f) => {
                    let result = Err(f.error.clone());
                    let log = render(&LogParts {
                        request_id: &req.request_id,
                        init: Some(f.init),
                        output: &f.output,
                        output_dropped: 0,
                        result: &result,
                        max_retmsg: inner.cfg.max_log_retmsg_bytes,
                        duration_ms: 0.0,
                        memory_mb: spec.memory_mb,
                        mem_usage_bytes: 0,
                    });
                    let _ = done_tx.send(WebDone {
                        request_id: req.request_id,
                        status_code: f.error.status_code,
                        error: Some(f.error.clone()),
                        duration_ms: 0.0,
                        log,
                        mem_usage_bytes: 0,
                        cold_start: true,
                        init_ms: f.init.coldstart_ms,
                    });
                    return Ok(WebReply {
                        result: Err(f.error),
                        done: done_rx,
                    });
                }
            },
        };
        let timeout_s = spec.timeout_s.max(1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(timeout_s));
        let mut lease = Lease {
            instance: instance.clone(),
            slot: None,
            sender: None,
            reusable: false,
            done: Some(done_tx),
            report: WebDone {
                request_id: req.request_id.clone(),
                status_code: status::OK,
                error: None,
                duration_ms: 0.0,
                log: String::new(),
                mem_usage_bytes: 0,
                cold_start: init.is_some(),
                init_ms: init.map(|r| r.coldstart_ms).unwrap_or(0.0),
            },
            started,
            memory_mb: spec.memory_mb,
            max_log: inner.cfg.max_log_bytes,
            max_retmsg: inner.cfg.max_log_retmsg_bytes,
            init,
        };
        let watch = inner.cfg.watch_interval;
        let exchange = async {
            let mut sender = instance.sender().await?;
            let resp = sender
                .send_request(req.request)
                .await
                .map_err(io::Error::other);
            Ok::<_, io::Error>((sender, resp))
        };
        tokio::pin!(exchange);
        let mut tick = tokio::time::interval(watch);
        let outcome = loop {
            tokio::select! {
                r = &mut exchange => break Ok(r),
                _ = tokio::time::sleep_until(deadline) => break Err(status::TIMEOUT),
                _ = tick.tick() => {
                    if let Some(d) = instance.check() {
                        break Err(d);
                    }
                }
            }
        };
        let result = match outcome {
            Ok(Ok((sender, Ok(resp)))) => {
                lease.sender = Some(sender);
                lease.reusable = true;
                let (parts, body) = resp.into_parts();
                lease.slot = Some(slot);
                // A response without a body ends with its head.
                let lease = (!body.is_end_stream()).then_some(lease);
                let streamed = Streamed {
                    inner: body,
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                    timeout_s,
                    lease,
                };
                return Ok(WebReply {
                    result: Ok(Response::from_parts(parts, Body::new(streamed))),
                    done: done_rx,
                });
            }
            Ok(Ok((_, Err(_)))) | Ok(Err(_)) => {
                // The connection failed: the instance died, or its server dropped the connection.
                tokio::time::sleep(watch).await;
                instance.check().unwrap_or(status::PROCESS_EXITED)
            }
            Err(code) => code,
        };
        if result == status::TIMEOUT {
            instance.lock().retiring = true;
        }
        let error = failure(result, timeout_s);
        lease.fail(error.clone());
        drop(lease);
        drop(slot);
        Ok(WebReply {
            result: Err(error),
            done: done_rx,
        })
    }

    /// Starts a web instance and waits until its server accepts a connection on port 9000.
    async fn start_web(
        &self,
        spec: &FunctionSpec,
        max: u32,
    ) -> Result<(Arc<WebInstance>, InitReport), StartFailure> {
        let inner = self.inner();
        let t0 = Instant::now();
        let start_err = |e: io::Error| StartFailure {
            error: FunctionError::new(
                web_status::EXITED,
                format!("the web function's instance could not start: {e}"),
            ),
            output: Vec::new(),
            init: InitReport {
                coldstart_ms: 0.0,
                init_function_ms: 0.0,
                mem_usage_bytes: 0,
            },
        };
        let launcher = inner.launcher.as_ref();
        let layout = launcher.layout(&spec.code_dir, &spec.layer_dirs);
        let env = environment(spec, &layout);
        let (log_r, log_w) = pipe().map_err(start_err)?;
        let bootstrap = ["scf_bootstrap", "bootstrap"]
            .into_iter()
            .find(|b| spec.code_dir.join(b).is_file())
            .unwrap_or("scf_bootstrap");
        let launched = launcher
            .launch(LaunchSpec {
                program: layout.code_root.join(bootstrap),
                args: Vec::new(),
                env,
                cwd: layout.code_root.clone(),
                output: log_w,
                fds: Vec::new(),
                code_dir: spec.code_dir.clone(),
                layer_dirs: spec.layer_dirs.clone(),
                memory_limit_bytes: u64::from(spec.memory_mb) * 1024 * 1024,
                runtime_api: false,
                public_net: spec.public_net,
            })
            .map_err(start_err)?;
        let log = Arc::new(Pipe::new(log_r).map_err(start_err)?);
        let pid = launched.process.pid();
        let net = match launched.process.network_namespace() {
            true => match File::open(format!("/proc/{pid}/ns/net")) {
                Ok(f) => Net::Namespace(Arc::new(f)),
                Err(e) => return Err(start_err(e)),
            },
            false => Net::Host,
        };
        let instance = Arc::new(WebInstance {
            process: Mutex::new(launched.process),
            output: log.clone(),
            max_log: inner.cfg.max_log_bytes,
            net,
            inflight: AtomicU32::new(1),
            max,
            state: Mutex::new(WebState {
                dead: None,
                retiring: false,
                last_used: Instant::now(),
                idle_conns: Vec::new(),
                log: Vec::new(),
                log_dropped: 0,
            }),
        });
        tokio::spawn(collect_output(Arc::downgrade(&instance), log));
        let deadline = t0 + Duration::from_secs(u64::from(spec.init_timeout_s.max(1)));
        let fail = |code: u16, instance: &WebInstance| {
            instance.kill();
            let (output, _) = instance.take_log();
            StartFailure {
                error: failure(code, spec.timeout_s),
                output,
                init: InitReport {
                    coldstart_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    init_function_ms: 0.0,
                    mem_usage_bytes: 0,
                },
            }
        };
        loop {
            match instance.connect().await {
                Ok(s) => {
                    instance.lock().idle_conns.push(s);
                    break;
                }
                Err(_) => {
                    let exited = instance
                        .process
                        .lock()
                        .ok()
                        .and_then(|mut p| p.exit_status())
                        .is_some();
                    if exited {
                        // Let the output reader take what the bootstrap wrote before it exited.
                        tokio::time::sleep(READY_POLL).await;
                        return Err(fail(web_status::EXITED, &instance));
                    }
                    if Instant::now() >= deadline {
                        return Err(fail(web_status::NOT_LISTENING, &instance));
                    }
                    tokio::time::sleep(READY_POLL).await;
                }
            }
        }
        tokio::spawn(watch(Arc::downgrade(&instance), inner.cfg.watch_interval));
        let report = InitReport {
            coldstart_ms: t0.elapsed().as_secs_f64() * 1000.0,
            init_function_ms: 0.0,
            mem_usage_bytes: instance.memory(),
        };
        tracing::debug!(key = %spec.key, coldstart_ms = report.coldstart_ms, "web instance ready");
        Ok((instance, report))
    }
}

async fn collect_output(instance: std::sync::Weak<WebInstance>, log: Arc<Pipe>) {
    loop {
        if log.readable().await.is_err() {
            return;
        }
        let Some(i) = instance.upgrade() else {
            return;
        };
        let mut st = i.lock();
        if i.drain_output(&mut st) {
            return;
        }
    }
}

/// Watches memory and liveness of an instance between requests too, so an instance that died is never offered.
async fn watch(instance: std::sync::Weak<WebInstance>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(i) = instance.upgrade() else {
            return;
        };
        if i.check().is_some() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_what_happened() {
        assert_eq!(failure(status::TIMEOUT, 3).status_code, 433);
        assert!(
            failure(status::TIMEOUT, 3)
                .error_message
                .contains("after 3 seconds")
        );
        assert!(
            failure(web_status::NOT_LISTENING, 3)
                .error_message
                .contains("9000")
        );
        assert_eq!(failure(web_status::EXITED, 3).status_code, 405);
        assert_eq!(failure(status::MEMORY_LIMIT, 3).status_code, 434);
    }
}
