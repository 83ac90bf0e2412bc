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

const PY_ECHO: &str = "def main_handler(event, context):\n    return event\n";
const NODE_HELLO: &str = "exports.main_handler = async (event) => ({ hello: 'world' });\n";

/// A minimal HTTP/1.1 keep-alive server answering every request with a fixed SCF-shaped reply.
fn echo_server() -> anyhow::Result<(Endpoint, Arc<AtomicBool>)> {
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

fn create(
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

fn invoke_body(name: &str) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(
        &json!({"FunctionName": name, "ClientContext": "{\"k\":\"v\"}"}),
    )?)
}

fn invoke(c: &mut Client, creds: &Creds, body: &[u8]) -> anyhow::Result<Value> {
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

fn sequential(ep: &Endpoint, creds: &Creds, body: &[u8], n: usize) -> anyhow::Result<Summary> {
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

fn concurrent(
    ep: &Endpoint,
    creds: &Creds,
    body: &[u8],
    clients: usize,
    secs: u64,
) -> anyhow::Result<(usize, f64, Summary)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (ep, creds, body) = (ep.clone(), creds.clone(), body.to_vec());
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut c = Client::connect(&ep)?;
                let mut s = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = c.call_raw(&creds, "Invoke", &body)?;
                    if r.get("Error").is_some() || r["Result"]["InvokeResult"].as_i64() != Some(0) {
                        bail!("a concurrent call failed: {r}");
                    }
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
            "python3 -I -c 'import index'",
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
        for i in 0..colds {
            let name = format!("b5-{}-{tag}-{i}", &runtime[..2].to_ascii_lowercase());
            create(&mut c, creds, &name, runtime, file, src)?;
            let body = serde_json::to_vec(&json!({"FunctionName": name, "LogType": "Tail"}))?;
            let t = Instant::now();
            let r = invoke(&mut c, creds, &body)?;
            call.push(t.elapsed());
            let log = r["Log"].as_str().unwrap_or("");
            cold.push(coldstart_ms(log).ok_or_else(|| anyhow!("no Coldstart in the log: {log}"))?);
            // A warm call on the same instance reports its settled memory.
            let warm = invoke(&mut c, creds, &body)?;
            mem = mem.max(warm["MemUsage"].as_u64().unwrap_or(0));
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
        footprint.push((runtime, mem));
    }
    let mut b7 = Section {
        bench: "B7",
        title: "instance footprint: memory of one warm idle instance (the cgroup's usage, as MemUsage reports it)".into(),
        server: server.describe.clone(),
        ..Section::default()
    };
    for (runtime, mem) in footprint {
        let f = Figure::new(
            "B7",
            format!("{runtime} warm instance"),
            Measure::Bytes(mem),
        );
        b7.push(if runtime.starts_with("Python") {
            f.target(Target::BytesAtMost(12 * 1024 * 1024))
        } else {
            f
        });
    }
    Ok(vec![b3, b4, b5, b7])
}
