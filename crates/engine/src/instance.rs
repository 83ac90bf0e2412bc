//! One instance: a started runtime process serving one snapshot, one invocation at a time.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::custom::{self, RuntimeApi};
use crate::launcher::{InstanceProcess, LaunchSpec, Launcher};
use crate::log::InitReport;
use crate::pipe::{Pipe, pipe};
use crate::protocol::{self, Decoder, kind};
use crate::runtimes::{Family, NODE_BOOTSTRAP, PYTHON_BOOTSTRAP};
use crate::types::{EngineConfig, EngineError, FunctionError, FunctionSpec, status};

/// How an instance talks to the engine.
enum Channel {
    /// The built-in runtimes: frames over two pipes (see [`crate::protocol`]).
    Frames {
        tx: Pipe,
        rx: Pipe,
        dec: Decoder,
        buf: Vec<u8>,
    },
    /// A custom runtime: the HTTP runtime API.
    Http(RuntimeApi),
}

/// What the channel delivered.
enum Delivery {
    /// A frame from a built-in runtime.
    Frame(u8, Vec<u8>),
    /// A custom runtime posted `init/ready`.
    Ready,
    /// A custom runtime posted a result (`Ok`) or an error (`Err`) for the current invocation.
    Posted(Result<Vec<u8>, Vec<u8>>),
    /// The runtime sent more than [`protocol::MAX_PAYLOAD`] bytes at once.
    TooLarge(Oversized),
    /// The runtime is gone.
    Closed,
}

impl Channel {
    /// Waits for the next delivery. Cancel-safe.
    async fn recv(&mut self) -> Delivery {
        match self {
            Channel::Frames { rx, dec, buf, .. } => loop {
                match dec.next_frame() {
                    Ok(Some((k, p))) => return Delivery::Frame(k, p),
                    Ok(None) => {}
                    Err(e) => {
                        let what = match e.kind {
                            kind::RESULT => Oversize::Result,
                            kind::ERROR | kind::INIT_FAILED => Oversize::Error,
                            other => Oversize::Frame(other),
                        };
                        return Delivery::TooLarge(Oversized {
                            what,
                            len: Some(e.len),
                            fatal: true,
                        });
                    }
                }
                match rx.read(buf).await {
                    Ok(0) | Err(_) => return Delivery::Closed,
                    Ok(n) => dec.push(&buf[..n]),
                }
            },
            Channel::Http(api) => match api.recv().await {
                custom::Event::Ready => Delivery::Ready,
                custom::Event::Posted(r) => Delivery::Posted(r),
                custom::Event::TooLarge { error, len } => Delivery::TooLarge(Oversized {
                    what: if error {
                        Oversize::Error
                    } else {
                        Oversize::Result
                    },
                    len,
                    fatal: false,
                }),
                custom::Event::Closed => Delivery::Closed,
            },
        }
    }
}

/// What was too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Oversize {
    Result,
    Error,
    /// A frame of another kind.
    Frame(u8),
}

/// A runtime sent more than the engine buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Oversized {
    what: Oversize,
    /// The size, when it was announced (a frame header, a `Content-Length`).
    len: Option<usize>,
    /// Whether the channel cannot go on (a frame stream out of step): the instance is stopped.
    fatal: bool,
}

impl Oversized {
    /// The invocation's error: the function's own (430), named like control's error for a result over 6 MB.
    fn error(&self) -> FunctionError {
        let size = match self.len {
            Some(n) => format!("{n} bytes"),
            None => format!("more than {} bytes", protocol::MAX_PAYLOAD),
        };
        let message = match self.what {
            Oversize::Result => format!(
                "the function returned {size}; a synchronous invocation returns at most 6 MB"
            ),
            Oversize::Error => format!(
                "the function's error is {size}; the engine accepts at most {} bytes",
                protocol::MAX_PAYLOAD
            ),
            Oversize::Frame(k) => format!(
                "the runtime sent a frame ({:?}) of {size}; the engine accepts at most {} bytes",
                char::from(k),
                protocol::MAX_PAYLOAD
            ),
        };
        FunctionError::new(status::USER_EXCEPTION, message)
    }
}

/// What ended a wait.
enum Wait {
    Delivery(Delivery),
    Deadline,
    OverMemory,
    Exited,
    /// A graceful stop was asked for, with this grace period.
    Terminate(Duration),
}

/// SCF's log lines of a graceful stop (TerminateAsyncEvent with `GraceShutdown`).
pub(crate) const SIGNAL_RECEIVED: &str = "[PLATFORM] Signal received successfully.\n";
pub(crate) const SIGNAL_FAILED: &str = "[PLATFORM] Signal reception failed.\n";

/// A graceful stop to watch for, if any.
type Terminate = Option<tokio::sync::watch::Receiver<Option<Duration>>>;

/// The user's output collected for one invocation (or a cold start).
#[derive(Default)]
pub(crate) struct Output {
    pub bytes: Vec<u8>,
    pub dropped: usize,
}

/// Why an instance could not start.
pub(crate) enum StartError {
    Engine(EngineError),
    /// The function's own fault (handler missing, the module raised, init timeout, exited): reported as the
    /// invocation's result.
    Function {
        error: FunctionError,
        output: Output,
        init: InitReport,
    },
}

/// The result of one invocation on an instance.
pub(crate) struct Ran {
    pub result: Result<String, FunctionError>,
    pub output: Output,
    pub duration: Duration,
    pub mem_usage_bytes: u64,
}

pub(crate) struct Instance {
    process: Box<dyn InstanceProcess>,
    channel: Channel,
    log: Pipe,
    log_eof: bool,
    log_buf: Vec<u8>,
    /// Output written outside an invocation (during init), given to the next one.
    pending: Output,
    /// Set until the first invocation reports the cold start.
    pub init: Option<InitReport>,
    /// False once the instance must not serve again.
    pub healthy: bool,
    pub generation: u64,
    pub last_used: Instant,
    memory_mb: u32,
    timeout: Duration,
    max_log: usize,
    watch: Duration,
}

/// The environment of an instance, as runtime.md lists it.
pub(crate) fn environment(
    spec: &FunctionSpec,
    layout: &crate::launcher::InstanceLayout,
) -> Vec<(String, String)> {
    let root = layout.code_root.display().to_string();
    let root_slash = if root.ends_with('/') {
        root.clone()
    } else {
        format!("{root}/")
    };
    let mut python_path = vec![root.clone()];
    let mut node_path = vec![root.clone(), format!("{root}/node_modules")];
    for l in &layout.layer_roots {
        let l = l.display().to_string();
        python_path.push(l.clone());
        python_path.push(format!("{l}/python"));
        node_path.push(l.clone());
        node_path.push(format!("{l}/node_modules"));
    }
    let system: Vec<(&str, String)> = vec![
        ("SCF_FUNCTIONNAME", spec.function_name.clone()),
        ("SCF_FUNCTIONVERSION", spec.version.clone()),
        ("SCF_NAMESPACE", spec.namespace.clone()),
        ("SCF_RUNTIME", spec.runtime.clone()),
        ("TENCENTCLOUD_REGION", spec.region.clone()),
        ("TENCENTCLOUD_APPID", spec.app_id.clone()),
        ("TENCENTCLOUD_UIN", spec.uin.clone()),
        ("TENCENTCLOUD_RUNENV", "SCF".into()),
        ("USER_CODE_ROOT", root_slash),
        ("_HANDLER", spec.handler.clone()),
        ("PYTHONPATH", python_path.join(":")),
        ("NODE_PATH", node_path.join(":")),
    ];
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .filter(|(k, _)| !system.iter().any(|(s, _)| s == k))
        .cloned()
        .collect();
    for (k, v) in [
        ("TZ", "UTC"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "C.UTF-8"),
    ] {
        if !env.iter().any(|(ek, _)| ek == k) {
            env.push((k.into(), v.into()));
        }
    }
    env.extend(system.into_iter().map(|(k, v)| (k.to_string(), v)));
    env
}

/// The `environment` string of the context: the user's variables and the function's identity.
fn context_environment(spec: &FunctionSpec, env: &[(String, String)]) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in env {
        let user = spec.env.iter().any(|(uk, _)| uk == k);
        if user || k.starts_with("SCF_") || k.starts_with("TENCENTCLOUD_") {
            map.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
    }
    serde_json::Value::Object(map).to_string()
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn parse_error(payload: &[u8], fallback_status: u16) -> FunctionError {
    serde_json::from_slice::<FunctionError>(payload).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(payload).into_owned();
        FunctionError::new(fallback_status, text)
    })
}

impl Instance {
    /// Starts an instance and waits until it is ready (or failed) within the init timeout.
    pub(crate) async fn start(
        spec: &FunctionSpec,
        family: Family,
        interpreter: &Path,
        cfg: &EngineConfig,
        launcher: &dyn Launcher,
        generation: u64,
    ) -> Result<Instance, StartError> {
        let t0 = Instant::now();
        let launch_err = |source| {
            StartError::Engine(EngineError::Launch {
                key: spec.key.clone(),
                source,
            })
        };
        let layout = launcher.layout(&spec.code_dir, &spec.layer_dirs);
        let env = environment(spec, &layout);
        let (log_r, log_w) = pipe().map_err(launch_err)?;
        let mut fds = Vec::new();
        let mut frames = None;
        let (program, args) = match family {
            Family::Python | Family::Node => {
                let (to_rt_r, to_rt_w) = pipe().map_err(launch_err)?;
                let (from_rt_r, from_rt_w) = pipe().map_err(launch_err)?;
                fds.push((3, to_rt_r));
                fds.push((4, from_rt_w));
                frames = Some((to_rt_w, from_rt_r));
                let (flags, flag, source) = if family == Family::Python {
                    (&cfg.python_flags, "-c", PYTHON_BOOTSTRAP)
                } else {
                    (&cfg.node_flags, "-e", NODE_BOOTSTRAP)
                };
                let mut args: Vec<std::ffi::OsString> = flags.iter().map(Into::into).collect();
                args.push(flag.into());
                args.push(source.into());
                (interpreter.to_path_buf(), args)
            }
            Family::Custom => {
                let root = &layout.code_root;
                let host_bootstrap = ["scf_bootstrap", "bootstrap"]
                    .into_iter()
                    .find(|b| spec.code_dir.join(b).is_file())
                    .unwrap_or("scf_bootstrap");
                (root.join(host_bootstrap), Vec::new())
            }
        };
        let context_env = context_environment(spec, &env);
        let launched = launcher
            .launch(LaunchSpec {
                program,
                args,
                env,
                cwd: layout.code_root.clone(),
                output: log_w,
                fds,
                code_dir: spec.code_dir.clone(),
                layer_dirs: spec.layer_dirs.clone(),
                memory_limit_bytes: u64::from(spec.memory_mb) * 1024 * 1024,
                runtime_api: family == Family::Custom,
                public_net: spec.public_net,
            })
            .map_err(launch_err)?;
        let channel = match frames {
            Some((tx, rx)) => Channel::Frames {
                tx: Pipe::new(tx).map_err(launch_err)?,
                rx: Pipe::new(rx).map_err(launch_err)?,
                dec: Decoder::default(),
                buf: vec![0; 64 * 1024],
            },
            None => {
                let listener = launched.runtime_api.ok_or_else(|| {
                    launch_err(std::io::Error::other(
                        "the launcher gave no runtime API listener",
                    ))
                })?;
                let limits = custom::Limits::for_function(
                    Duration::from_secs(u64::from(spec.timeout_s.max(1))),
                    Duration::from_secs(u64::from(spec.init_timeout_s.max(1))),
                    cfg.runtime_api_timeout,
                );
                Channel::Http(RuntimeApi::serve(listener, limits).map_err(launch_err)?)
            }
        };
        let mut inst = Instance {
            process: launched.process,
            channel,
            log: Pipe::new(log_r).map_err(launch_err)?,
            log_eof: false,
            log_buf: vec![0; 16 * 1024],
            pending: Output::default(),
            init: None,
            healthy: true,
            generation,
            last_used: Instant::now(),
            memory_mb: spec.memory_mb,
            timeout: Duration::from_secs(u64::from(spec.timeout_s.max(1))),
            max_log: cfg.max_log_bytes,
            watch: cfg.watch_interval,
        };
        if let Channel::Frames { tx, .. } = &inst.channel {
            let config = serde_json::json!({
                "function_name": spec.function_name,
                "function_version": spec.version,
                "namespace": spec.namespace,
                "memory_limit_in_mb": spec.memory_mb,
                "time_limit_in_ms": u64::from(spec.timeout_s) * 1000,
                "tencentcloud_region": spec.region,
                "tencentcloud_appid": spec.app_id,
                "tencentcloud_uin": spec.uin,
                "environment": context_env,
            });
            let frame = protocol::encode(kind::CONFIG, config.to_string().as_bytes());
            if tx.write_all(&frame).await.is_err() {
                // The process died before reading: the wait below reports it.
            }
        }
        let init_timeout = Duration::from_secs(u64::from(spec.init_timeout_s.max(1)));
        let deadline = t0 + init_timeout;
        let mut output = Output::default();
        let failure = |inst: &mut Instance, error: FunctionError, output: Output| {
            inst.healthy = false;
            let mem = inst.process.memory_usage().unwrap_or(0);
            inst.process.kill();
            StartError::Function {
                error,
                output,
                init: InitReport {
                    coldstart_ms: ms(t0.elapsed()),
                    init_function_ms: 0.0,
                    mem_usage_bytes: mem,
                },
            }
        };
        loop {
            match inst.wait(deadline, &mut output, &mut None).await {
                Wait::Delivery(Delivery::Frame(kind::READY, payload)) => {
                    let init_function_ms = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .unwrap_or(0.0);
                    inst.finish_ready(t0, init_function_ms, output);
                    return Ok(inst);
                }
                Wait::Delivery(Delivery::Ready) => {
                    inst.finish_ready(t0, 0.0, output);
                    return Ok(inst);
                }
                Wait::Delivery(Delivery::Frame(kind::INIT_FAILED, payload)) => {
                    inst.drain_log(&mut output);
                    let error = parse_error(&payload, status::HANDLER_NOT_FOUND);
                    return Err(failure(&mut inst, error, output));
                }
                Wait::Delivery(Delivery::TooLarge(t)) => {
                    inst.drain_log(&mut output);
                    return Err(failure(&mut inst, t.error(), output));
                }
                Wait::Delivery(Delivery::Frame(..))
                | Wait::Delivery(Delivery::Posted(_))
                | Wait::Terminate(_) => {
                    // Nothing else is expected before ready: ignore.
                }
                Wait::Deadline => {
                    inst.drain_log(&mut output);
                    let error = FunctionError::new(
                        status::TIMEOUT,
                        format!(
                            "Initialization timed out after {} seconds",
                            init_timeout.as_secs()
                        ),
                    );
                    return Err(failure(&mut inst, error, output));
                }
                Wait::OverMemory => {
                    inst.drain_log(&mut output);
                    let error = inst.memory_error();
                    return Err(failure(&mut inst, error, output));
                }
                Wait::Delivery(Delivery::Closed) | Wait::Exited => {
                    let error = inst.exit_error("during initialization").await;
                    inst.drain_log(&mut output);
                    return Err(failure(&mut inst, error, output));
                }
            }
        }
    }

    fn finish_ready(&mut self, t0: Instant, init_function_ms: f64, mut output: Output) {
        self.drain_log(&mut output);
        self.init = Some(InitReport {
            coldstart_ms: ms(t0.elapsed()),
            init_function_ms,
            mem_usage_bytes: self.process.memory_usage().unwrap_or(0),
        });
        self.pending = output;
    }

    /// Appends bytes to an output, up to the limit.
    fn keep(max: usize, out: &mut Output, bytes: &[u8]) {
        let room = max.saturating_sub(out.bytes.len());
        let n = bytes.len().min(room);
        out.bytes.extend_from_slice(&bytes[..n]);
        out.dropped += bytes.len() - n;
    }

    /// Collects everything the log pipe holds right now.
    fn drain_log(&mut self, out: &mut Output) {
        if self.log_eof {
            return;
        }
        let before = out.bytes.len();
        match self.log.drain_now(&mut out.bytes, self.max_log) {
            Ok((seen, eof)) => {
                out.dropped += seen - (out.bytes.len() - before);
                self.log_eof |= eof;
            }
            Err(_) => self.log_eof = true,
        }
    }

    /// Waits for a delivery, collecting output, until the deadline; watches memory and liveness, and `terminate`.
    async fn wait(
        &mut self,
        deadline: Instant,
        out: &mut Output,
        terminate: &mut Terminate,
    ) -> Wait {
        let Instance {
            channel,
            log,
            log_eof,
            log_buf,
            process,
            max_log,
            watch,
            ..
        } = self;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Wait::Deadline;
            }
            let tick = deadline.min(now + *watch);
            let watching = terminate.is_some();
            let asked = async {
                match terminate.as_mut() {
                    Some(rx) => match rx.changed().await {
                        Ok(()) => *rx.borrow_and_update(),
                        // Nobody can ask any more.
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                d = channel.recv() => return Wait::Delivery(d),
                asked = asked, if watching => {
                    if let Some(grace) = asked {
                        return Wait::Terminate(grace);
                    }
                },
                r = log.read(log_buf), if !*log_eof => match r {
                    Ok(0) | Err(_) => *log_eof = true,
                    Ok(n) => Self::keep(*max_log, out, &log_buf[..n]),
                },
                _ = tokio::time::sleep_until(tick.into()) => {
                    if process.over_memory_limit() {
                        return Wait::OverMemory;
                    }
                    if process.exit_status().is_some() {
                        return Wait::Exited;
                    }
                }
            }
        }
    }

    fn memory_error(&self) -> FunctionError {
        FunctionError::new(
            status::MEMORY_LIMIT,
            format!(
                "Memory limit exceeded: the function used more than its {} MB",
                self.memory_mb
            ),
        )
    }

    /// The error for a runtime that went away: 434 if it was over its memory limit, else 439.
    async fn exit_error(&mut self, when: &str) -> FunctionError {
        let mut status = None;
        for _ in 0..40 {
            status = self.process.exit_status();
            if status.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.process.over_memory_limit() {
            return self.memory_error();
        }
        let how = status.unwrap_or_else(|| "closed its runtime channel".into());
        FunctionError::new(
            status::PROCESS_EXITED,
            format!("The function's process exited {when} ({how})"),
        )
    }

    /// Kills the instance; it will not serve again.
    pub(crate) fn kill(&mut self) {
        self.healthy = false;
        self.process.kill();
    }

    /// Whether the process is still there (cheap: one `waitpid`).
    pub(crate) fn alive(&mut self) -> bool {
        self.healthy && self.process.exit_status().is_none()
    }

    /// Runs one invocation; `terminate` may ask for a graceful stop while it runs.
    pub(crate) async fn invoke(
        &mut self,
        request_id: &str,
        event: &[u8],
        mut terminate: Terminate,
    ) -> Ran {
        let mut output = std::mem::take(&mut self.pending);
        self.drain_log(&mut output);
        let started = Instant::now();
        let mut deadline = started + self.timeout;
        // Set once SIGTERM was sent and the grace period ends before the timeout: the instance is then killed.
        let mut grace_end: Option<Duration> = None;
        // Asked before the invocation reached the instance (a cold start): signalled as soon as it runs.
        let early = terminate
            .as_mut()
            .and_then(|rx| rx.borrow_and_update().as_ref().copied());
        let deadline_ms = unix_ms(SystemTime::now() + self.timeout);
        let sent = match &mut self.channel {
            Channel::Frames { tx, .. } => tx
                .write_all(&protocol::invoke_frame(request_id, deadline_ms, event))
                .await
                .is_ok(),
            Channel::Http(api) => api.offer(custom::Invocation {
                request_id: request_id.to_string(),
                event: event.to_vec(),
                memory_mb: self.memory_mb,
                timeout_ms: self.timeout.as_millis() as u64,
                deadline_ms,
            }),
        };
        let result = if !sent {
            let e = self.exit_error("before the invocation").await;
            self.kill();
            Err(e)
        } else {
            let mut early = early;
            loop {
                let next = match early.take() {
                    Some(grace) => Wait::Terminate(grace),
                    None => self.wait(deadline, &mut output, &mut terminate).await,
                };
                match next {
                    Wait::Terminate(grace) => {
                        let line = if self.process.terminate() {
                            SIGNAL_RECEIVED
                        } else {
                            SIGNAL_FAILED
                        };
                        Self::keep(self.max_log, &mut output, line.as_bytes());
                        let end = Instant::now() + grace;
                        if end < deadline {
                            deadline = end;
                            grace_end = Some(grace);
                        }
                        terminate = None;
                    }
                    Wait::Deadline if grace_end.is_some() => {
                        self.kill();
                        let grace = grace_end.unwrap_or_default();
                        break Err(FunctionError::new(
                            status::PROCESS_EXITED,
                            format!(
                                "User process exit when running: killed {} s after SIGTERM (TerminateAsyncEvent with GraceShutdown)",
                                grace.as_secs_f64()
                            ),
                        ));
                    }
                    Wait::Delivery(Delivery::Frame(kind::RESULT, payload))
                    | Wait::Delivery(Delivery::Posted(Ok(payload))) => {
                        break Ok(String::from_utf8(payload).unwrap_or_else(|e| {
                            String::from_utf8_lossy(e.as_bytes()).into_owned()
                        }));
                    }
                    Wait::Delivery(Delivery::Frame(kind::ERROR, payload)) => {
                        break Err(parse_error(&payload, status::USER_EXCEPTION));
                    }
                    Wait::Delivery(Delivery::Posted(Err(payload))) => {
                        break Err(custom::error_from_body(&payload));
                    }
                    Wait::Delivery(Delivery::TooLarge(t)) => {
                        if t.fatal {
                            self.kill();
                        }
                        break Err(t.error());
                    }
                    Wait::Delivery(Delivery::Frame(..)) | Wait::Delivery(Delivery::Ready) => {}
                    Wait::Deadline => {
                        self.kill();
                        break Err(FunctionError::new(
                            status::TIMEOUT,
                            format!(
                                "Invoking task timed out after {} seconds",
                                self.timeout.as_secs()
                            ),
                        ));
                    }
                    Wait::OverMemory => {
                        self.kill();
                        break Err(self.memory_error());
                    }
                    Wait::Delivery(Delivery::Closed) | Wait::Exited => {
                        let e = self.exit_error("during the invocation").await;
                        self.kill();
                        break Err(e);
                    }
                }
            }
        };
        let duration = started.elapsed();
        self.drain_log(&mut output);
        if let Channel::Http(api) = &self.channel {
            api.finish();
        }
        if !self.healthy {
            self.process.kill();
        }
        self.last_used = Instant::now();
        Ran {
            result,
            output,
            duration,
            mem_usage_bytes: self.process.memory_usage().unwrap_or(0),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.process.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::InstanceLayout;

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn sandboxed_layout_gives_scf_paths() {
        let spec = FunctionSpec {
            function_name: "f".into(),
            version: "2".into(),
            namespace: "ns".into(),
            runtime: "Python3.9".into(),
            handler: "index.main".into(),
            env: vec![
                ("TZ".into(), "Asia/Shanghai".into()),
                ("_HANDLER".into(), "user cannot override".into()),
                ("K".into(), "v".into()),
            ],
            ..Default::default()
        };
        let layout = InstanceLayout {
            code_root: "/var/user".into(),
            layer_roots: vec!["/opt".into()],
        };
        let env = environment(&spec, &layout);
        assert_eq!(get(&env, "USER_CODE_ROOT"), Some("/var/user/"));
        assert_eq!(get(&env, "PYTHONPATH"), Some("/var/user:/opt:/opt/python"));
        assert_eq!(
            get(&env, "NODE_PATH"),
            Some("/var/user:/var/user/node_modules:/opt:/opt/node_modules")
        );
        assert_eq!(get(&env, "TZ"), Some("Asia/Shanghai"));
        assert_eq!(get(&env, "_HANDLER"), Some("index.main"));
        assert_eq!(env.iter().filter(|(k, _)| k == "_HANDLER").count(), 1);
        assert_eq!(get(&env, "K"), Some("v"));
        assert_eq!(get(&env, "SCF_FUNCTIONVERSION"), Some("2"));
        assert_eq!(get(&env, "TENCENTCLOUD_RUNENV"), Some("SCF"));
        let ctx: serde_json::Value =
            serde_json::from_str(&context_environment(&spec, &env)).expect("json");
        assert_eq!(ctx["K"], "v");
        assert_eq!(ctx["SCF_NAMESPACE"], "ns");
        assert!(ctx.get("PATH").is_none());
    }

    #[test]
    fn unsandboxed_layout_puts_later_layers_first() {
        let l = crate::UnsandboxedLauncher;
        let layout = crate::Launcher::layout(&l, Path::new("/c"), &["/l1".into(), "/l2".into()]);
        let env = environment(&FunctionSpec::default(), &layout);
        assert_eq!(
            get(&env, "PYTHONPATH"),
            Some("/c:/l2:/l2/python:/l1:/l1/python")
        );
    }
}
