//! The invocation benchmarks: B3 warm latency, B4 warm throughput, B5 cold start, B7 instance footprint. Each
//! figure has its floor measured in the same run: the same client against a minimal echo server in this process
//! (B3, B4), and the bare interpreter importing the same handler (B5).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::fixture::{base64, zip_file};
use crate::http::{Client, Creds, Endpoint};
use crate::report::{Figure, Measure, Section, Target, now_ms};
use crate::server::Server;
use crate::stats::Summary;

pub(crate) const PY_ECHO: &str = "def main_handler(event, context):\n    return event\n";
const NODE_HELLO: &str = "exports.main_handler = async (event) => ({ hello: 'world' });\n";

/// A minimal HTTP/1.1 keep-alive server answering every request with a fixed SCF-shaped reply.
pub(crate) fn echo_server() -> anyhow::Result<(Endpoint, Arc<AtomicBool>)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let _ = conn.set_nodelay(true);
            std::thread::spawn(move || serve_echo(conn));
        }
    });
    Ok((Endpoint::parse(&format!("http://{addr}"))?, stop))
}

fn serve_echo(conn: std::net::TcpStream) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut out = conn;
    let body = br#"{"Response":{"Result":{"RetMsg":"{}","ErrMsg":"","Log":"","InvokeResult":0},"RequestId":"echo"}}"#;
    loop {
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; len];
        if reader.read_exact(&mut buf).is_err() {
            return;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body);
        if out.write_all(&msg).is_err() {
            return;
        }
    }
}

pub(crate) fn create(
    c: &mut Client,
    creds: &Creds,
    name: &str,
    runtime: &str,
    file: &str,
    src: &str,
) -> anyhow::Result<()> {
    let zip = zip_file(file, src.as_bytes())?;
    let r = c.call(
        creds,
        "CreateFunction",
        &json!({"FunctionName": name, "Runtime": runtime, "Handler": "index.main_handler",
                "Code": {"ZipFile": base64(&zip)}}),
    )?;
    if let Some(e) = r.get("Error") {
        bail!("CreateFunction {name}: {e}");
    }
    for _ in 0..10_000 {
        let g = c.call(creds, "GetFunction", &json!({"FunctionName": name}))?;
        match g["Status"].as_str() {
            Some("Active") => return Ok(()),
            Some("Creating") => std::thread::sleep(Duration::from_millis(2)),
            other => bail!("{name} ended {other:?}: {}", g["StatusReasons"]),
        }
    }
    bail!("{name} did not become Active")
}

pub(crate) fn invoke_body(name: &str) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(
        &json!({"FunctionName": name, "ClientContext": "{\"k\":\"v\"}"}),
    )?)
}

pub(crate) fn invoke(c: &mut Client, creds: &Creds, body: &[u8]) -> anyhow::Result<Value> {
    let r = c.call_raw(creds, "Invoke", body)?;
    if let Some(e) = r.get("Error") {
        bail!("Invoke: {e}");
    }
    let res = r["Result"].clone();
    if res["InvokeResult"].as_i64() != Some(0) {
        bail!("the function failed: {}", res["ErrMsg"]);
    }
    Ok(res)
}

pub(crate) fn sequential(
    ep: &Endpoint,
    creds: &Creds,
    body: &[u8],
    n: usize,
) -> anyhow::Result<Summary> {
    let mut c = Client::connect(ep)?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n.min(200) {
        c.call_raw(creds, "Invoke", body)?;
    }
    for _ in 0..n {
        let t = Instant::now();
        c.call_raw(creds, "Invoke", body)?;
        samples.push(t.elapsed());
    }
    Summary::of(&samples).ok_or_else(|| anyhow!("no samples"))
}

pub(crate) fn concurrent(
    ep: &Endpoint,
    creds: &Creds,
    body: &[u8],
    clients: usize,
    secs: u64,
) -> anyhow::Result<(usize, f64, Summary)> {
    timed_clients(
        ep,
        creds,
        body,
        clients,
        Duration::from_secs(secs),
        |c, creds, body| {
            let r = c.call_raw(creds, "Invoke", body)?;
            if r.get("Error").is_some() || r["Result"]["InvokeResult"].as_i64() != Some(0) {
                bail!("a concurrent call failed: {r}");
            }
            Ok(())
        },
    )
}

/// `clients` threads, each on its own keep-alive connection, making `call` until `duration` has passed: how many
/// calls were made, in how many seconds, and their latency.
pub(crate) fn timed_clients(
    ep: &Endpoint,
    creds: &Creds,
    body: &[u8],
    clients: usize,
    duration: Duration,
    call: fn(&mut Client, &Creds, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<(usize, f64, Summary)> {
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (ep, creds, body) = (ep.clone(), creds.clone(), body.to_vec());
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut c = Client::connect(&ep)?;
                let mut s = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    call(&mut c, &creds, &body)?;
                    s.push(t.elapsed());
                }
                Ok(s)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow!("a client thread panicked"))??,
        );
    }
    let secs = start.elapsed().as_secs_f64();
    let n = all.len();
    Ok((
        n,
        secs,
        Summary::of(&all).ok_or_else(|| anyhow!("no samples"))?,
    ))
}

/// The bare interpreter importing the same handler file, `n` times.
fn interpreter_floor(
    program: &str,
    args: &[&str],
    dir: &Path,
    n: usize,
) -> anyhow::Result<Summary> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let st = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .status()?;
        if !st.success() {
            bail!("{program} {args:?} failed: {st}");
        }
        samples.push(t.elapsed());
    }
    Summary::of(&samples).ok_or_else(|| anyhow!("no samples"))
}

/// Every process below `root` (found through the parent pids in `/proc/*/stat`).
fn descendants(root: u32) -> std::collections::HashSet<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`: the command may hold spaces and parentheses, so split after the last `)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = std::collections::HashSet::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in children.get(&p).into_iter().flatten() {
            if out.insert(*c) {
                todo.push(*c);
            }
        }
    }
    out
}

/// RSS and PSS of a set of processes, summed, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TasksMemory {
    rss: u64,
    pss: u64,
}

impl TasksMemory {
    fn max(self, o: TasksMemory) -> TasksMemory {
        TasksMemory {
            rss: self.rss.max(o.rss),
            pss: self.pss.max(o.pss),
        }
    }
}

/// `Rss:` and `Pss:` (kB) of `/proc/PID/smaps_rollup`.
fn parse_smaps_rollup(text: &str) -> Option<TasksMemory> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
    };
    Some(TasksMemory {
        rss: field("Rss:")? * 1024,
        pss: field("Pss:")? * 1024,
    })
}

fn tasks_memory(pids: &[u32]) -> Option<TasksMemory> {
    let mut sum = TasksMemory { rss: 0, pss: 0 };
    let mut any = false;
    for pid in pids {
        let Some(m) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .ok()
            .and_then(|t| parse_smaps_rollup(&t))
        else {
            continue;
        };
        sum.rss += m.rss;
        sum.pss += m.pss;
        any = true;
    }
    any.then_some(sum)
}

fn real_python() -> anyhow::Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// `Coldstart:12ms` in an invocation's log.
fn coldstart_ms(log: &str) -> Option<f64> {
    let i = log.find("Coldstart:")? + "Coldstart:".len();
    let rest = &log[i..];
    let end = rest.find("ms")?;
    rest[..end].trim().parse().ok()
}

pub fn run(
    server: &Server,
    calls: usize,
    clients: usize,
    secs: u64,
    colds: usize,
) -> anyhow::Result<Vec<Section>> {
    let creds = &server.creds;
    let mut c = Client::connect(&server.endpoint)?;
    let tag = now_ms() % 1_000_000_000;
    let echo = format!("b3-echo-{tag}");
    create(&mut c, creds, &echo, "Python3.9", "index.py", PY_ECHO)?;
    let body = invoke_body(&echo)?;
    invoke(&mut c, creds, &body)?;
    let (floor_ep, stop) = echo_server()?;
    let floor_creds = creds.clone();

    eprintln!("B3: {calls} sequential warm invokes…");
    let floor = sequential(&floor_ep, &floor_creds, &body, calls)?;
    let warm = sequential(&server.endpoint, creds, &body, calls)?;
    let mut b3 = Section {
        bench: "B3",
        title: format!(
            "warm invoke latency: Invoke (RequestResponse) of a Python echo handler, one keep-alive client, {calls} calls"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    b3.push(
        Figure::new("B3", "Invoke, warm Python echo", Measure::Latency(warm))
            .floor(
                "the same client against a minimal echo server",
                Measure::Latency(floor),
            )
            .target(Target::Latency {
                median_ms: Some(0.2),
                p99_ms: Some(1.0),
            }),
    );

    eprintln!("B4: {clients} clients for {secs} s…");
    let (fn_count, fsecs, fsum) = concurrent(&floor_ep, &floor_creds, &body, clients, secs)?;
    let (n, s, sum) = concurrent(&server.endpoint, creds, &body, clients, secs)?;
    stop.store(true, Ordering::Relaxed);
    let mut b4 = Section {
        bench: "B4",
        title: format!(
            "warm invoke throughput: {clients} concurrent keep-alive clients for {secs} s"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    b4.push(
        Figure::new(
            "B4",
            "Invoke throughput",
            Measure::Rate {
                count: n,
                secs: s,
                unit: "req/s",
            },
        )
        .floor(
            "the same clients against the echo server",
            Measure::Rate {
                count: fn_count,
                secs: fsecs,
                unit: "req/s",
            },
        )
        .target(Target::RateAtLeast(6600.0)),
    );
    b4.push(
        Figure::new("B4", "Invoke latency under load", Measure::Latency(sum))
            .floor("echo server under the same load", Measure::Latency(fsum))
            .target(Target::Latency {
                median_ms: None,
                p99_ms: Some(5.0),
            }),
    );

    eprintln!("B5: {colds} cold starts each of Python and Node.js…");
    let mut b5 = Section {
        bench: "B5",
        title: format!(
            "cold start: the first Invoke of a fresh instance, {colds} functions per runtime (Coldstart from the log, and the whole call)"
        ),
        server: server.describe.clone(),
        ..Section::default()
    };
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.py"), PY_ECHO)?;
    std::fs::write(dir.path().join("index.js"), NODE_HELLO)?;
    let python = real_python()?;
    let py_floor = interpreter_floor(
        &python,
        &[
            "-I",
            "-S",
            "-c",
            "import sys; sys.path.insert(0, '.'); import index",
        ],
        dir.path(),
        colds,
    )?;
    let node_floor = interpreter_floor("node", &["-e", "require('./index')"], dir.path(), colds)?;
    let mut footprint = Vec::new();
    for (runtime, file, src, floor, target, fname) in [
        (
            "Python3.9",
            "index.py",
            PY_ECHO,
            py_floor,
            25.0,
            "python3 -I -S -c 'import index' (as the engine starts it)",
        ),
        (
            "Nodejs18.15",
            "index.js",
            NODE_HELLO,
            node_floor,
            60.0,
            "node -e \"require('./index')\"",
        ),
    ] {
        let mut cold = Vec::new();
        let mut call = Vec::new();
        let mut mem = 0u64;
        let mut tasks_mem = None;
        for i in 0..colds {
            let name = format!("b5-{}-{tag}-{i}", &runtime[..2].to_ascii_lowercase());
            create(&mut c, creds, &name, runtime, file, src)?;
            let before = server.pid.map(descendants).unwrap_or_default();
            let body = serde_json::to_vec(&json!({"FunctionName": name, "LogType": "Tail"}))?;
            let t = Instant::now();
            let r = invoke(&mut c, creds, &body)?;
            call.push(t.elapsed());
            let log = r["Log"].as_str().unwrap_or("");
            cold.push(coldstart_ms(log).ok_or_else(|| anyhow!("no Coldstart in the log: {log}"))?);
            // A warm call on the same instance reports its settled memory.
            let warm = invoke(&mut c, creds, &body)?;
            mem = mem.max(warm["MemUsage"].as_u64().unwrap_or(0));
            // The processes this instance added under the server: its tasks, whose RSS and PSS B7 reports.
            if let Some(pid) = server.pid {
                let new: Vec<u32> = descendants(pid).difference(&before).copied().collect();
                if let Some(m) = tasks_memory(&new) {
                    tasks_mem = Some(tasks_mem.map_or(m, |t: TasksMemory| t.max(m)));
                }
            }
        }
        let cold = Summary::of_ms(&cold).ok_or_else(|| anyhow!("no samples"))?;
        b5.push(
            Figure::new("B5", format!("{runtime} Coldstart"), Measure::Latency(cold))
                .floor(fname, Measure::Latency(floor))
                .target(Target::Latency {
                    median_ms: Some(target),
                    p99_ms: None,
                }),
        );
        b5.push(
            Figure::new(
                "B5",
                format!("{runtime} first Invoke, whole call"),
                Measure::Latency(Summary::of(&call).ok_or_else(|| anyhow!("no samples"))?),
            )
            .floor(fname, Measure::Latency(floor)),
        );
        footprint.push((runtime, mem, tasks_mem));
    }
    let mut b7 = Section {
        bench: "B7",
        title: "instance footprint: one warm idle instance, as the cgroup charges it (MemUsage) and as RSS and PSS \
                summed over its tasks (/proc/PID/smaps_rollup)"
            .into(),
        server: server.describe.clone(),
        ..Section::default()
    };
    for (runtime, mem, tasks) in footprint {
        let target = runtime
            .starts_with("Python")
            .then_some(Target::BytesAtMost(12 * 1024 * 1024));
        let with_target = |f: Figure| match target {
            Some(t) => f.target(t),
            None => f,
        };
        b7.push(Figure::new(
            "B7",
            format!("{runtime} warm instance, cgroup usage"),
            Measure::Bytes(mem),
        ));
        match tasks {
            Some(t) => {
                b7.push(Figure::new(
                    "B7",
                    format!("{runtime} warm instance, RSS of its tasks"),
                    Measure::Bytes(t.rss),
                ));
                b7.push(with_target(Figure::new(
                    "B7",
                    format!("{runtime} warm instance, PSS of its tasks"),
                    Measure::Bytes(t.pss),
                )));
            }
            None => eprintln!(
                "B7: the {runtime} instance's tasks were not found (a server not started by the bench has no pid here)"
            ),
        }
    }
    Ok(vec![b3, b4, b5, b7])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_is_read_in_bytes() {
        let text = "55d0c0a00000-7ffd3a1ff000 ---p 00000000 00:00 0                          [rollup]\n\
                    Rss:                3904 kB\nPss:                1210 kB\nPss_Anon:            640 kB\n";
        assert_eq!(
            parse_smaps_rollup(text),
            Some(TasksMemory {
                rss: 3904 * 1024,
                pss: 1210 * 1024
            })
        );
        assert_eq!(parse_smaps_rollup("Rss: 1 kB\n"), None);
    }

    #[test]
    fn descendants_include_grandchildren() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .expect("sh");
        let mut found = std::collections::HashSet::new();
        for _ in 0..100 {
            found = descendants(std::process::id());
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let sh = child.id();
        // End the shell's sleep (ours too) by its pid, then the shell.
        for p in found.iter().filter(|p| **p != sh) {
            if descendants(sh).contains(p) {
                // SAFETY: kill(2) on a pid of a process this test started (a child of its own shell).
                unsafe { libc::kill(*p as libc::pid_t, libc::SIGKILL) };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&sh), "{found:?}");
        assert!(
            found.len() >= 2,
            "the shell's sleep is found too: {found:?}"
        );
        assert!(tasks_memory(&[std::process::id()]).is_some_and(|m| m.rss > 0 && m.pss > 0));
    }
}
