"""Web functions (`CreateFunction Type=HTTP`) behind their function URL: a Python (`http.server`) and a Node.js
(`http`) server started by `scf_bootstrap` on port 9000 of the instance, reached through a plain HTTP client
(http.client and a raw socket): every method, path, query, header and body kept, SCF's `X-Scf-*` and
`X-Forwarded-*` headers, a streamed response whose first event arrives before the server has finished,
`InstanceConcurrencyConfig.MaxConcurrency` under 50 parallel requests, and SCF's statuses: 405 (the bootstrap
exited), 446 (nothing listening within InitTimeout), 433 (Timeout), 434 (memory). Invoke of a web function is
refused."""
from __future__ import annotations

import http.client
import json
import socket
import stat
import threading
import time
import urllib.parse

import pytest

from harness.zips import Entry, build

PY_SERVER = r'''
import http.server, json, os, sys, threading, time, urllib.parse, uuid
INSTANCE = uuid.uuid4().hex
lock = threading.Lock()
state = {"active": 0, "peak": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        print("served", self.command, self.path, flush=True)
        if u.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                data = f"data: {i} {time.time()}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(0.5)
            self.wfile.write(b"0\r\n\r\n")
            return
        if u.path == "/sleep":
            time.sleep(float(q["s"]))
        if u.path == "/eat":
            hog = bytearray(int(q["mb"]) << 20)
            for i in range(0, len(hog), 4096):
                hog[i] = 1
        peak = 0
        if u.path == "/conc":
            with lock:
                state["active"] += 1
                state["peak"] = max(state["peak"], state["active"])
            time.sleep(0.3)
            with lock:
                peak = state["peak"]
                state["active"] -= 1
        out = json.dumps({"method": self.command, "path": u.path, "query": u.query,
                          "headers": [[k.lower(), v] for k, v in self.headers.items()],
                          "body": body.decode("latin-1"), "instance": INSTANCE, "peak": peak}).encode()
        self.send_response(201 if u.path == "/created" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Server", "python")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = any
http.server.ThreadingHTTPServer(("0.0.0.0", 9000), H).serve_forever()
'''

NODE_SERVER = r'''
const http = require("http");
http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const u = new URL(req.url, "http://x");
    if (u.pathname === "/sse") {
      res.writeHead(200, { "content-type": "text/event-stream" });
      let i = 0;
      const send = () => res.write(`data: ${i++} ${Date.now() / 1000}\n\n`);
      send();
      const t = setInterval(() => {
        send();
        if (i === 3) { clearInterval(t); res.end(); }
      }, 500);
      return;
    }
    const headers = [];
    for (let j = 0; j < req.rawHeaders.length; j += 2) headers.push([req.rawHeaders[j].toLowerCase(), req.rawHeaders[j + 1]]);
    res.writeHead(200, { "content-type": "application/json", "x-server": "node" });
    res.end(JSON.stringify({ method: req.method, path: u.pathname, query: u.search.slice(1), headers,
                             body: Buffer.concat(chunks).toString("latin1") }));
  });
}).listen(9000, "0.0.0.0");
'''


def pkg(files: dict[str, str], executable: tuple[str, ...] = ("scf_bootstrap",)) -> bytes:
    return build([Entry(n, d.encode(), mode=stat.S_IFREG | (0o755 if n in executable else 0o644))
                  for n, d in files.items()])


def python_web() -> bytes:
    return pkg({"scf_bootstrap": "#!/bin/sh\nexec /usr/bin/python3 -u server.py\n", "server.py": PY_SERVER})


def node_web() -> bytes:
    return pkg({"scf_bootstrap": "#!/bin/sh\nexec /usr/bin/node server.js\n", "server.js": NODE_SERVER})


def web_function(scf, zip_bytes: bytes, **params) -> tuple[str, str]:
    fn = scf.create_function(zip_bytes=zip_bytes, runtime="CustomRuntime", handler=None, Type="HTTP", **params)
    t = scf.call("CreateTrigger", {"FunctionName": fn, "TriggerName": "url", "Type": "http",
                                   "TriggerDesc": json.dumps({"AuthType": "NONE"})})["TriggerInfo"]
    net = json.loads(t["TriggerDesc"])["NetConfig"]
    return fn, net["ExtranetUrl"] or net["IntranetUrl"]


def request(url: str, method: str = "GET", path: str = "/", body: bytes | None = None,
            headers: list[tuple[str, str]] = (), timeout: float = 60):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.putrequest(method, u.path.rstrip("/") + path)
        for k, v in headers:
            c.putheader(k, v)
        c.putheader("Content-Length", str(len(body or b"")))
        c.endheaders()
        if body:
            c.send(body)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


@pytest.mark.parametrize("make", [python_web, node_web], ids=["python", "node"])
def test_every_method_path_query_header_and_body_reach_the_server(scf, make):
    fn, url = web_function(scf, make())
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]:
        body = f"body of {method}".encode() if method != "GET" else None
        status, h, raw = request(url, method, "/some/path?a=1&a=2&b=%20x", body,
                                 headers=[("X-Custom", "v"), ("X-Scf-Request-Id", "forged"),
                                          ("X-Forwarded-For", "203.0.113.9")])
        assert status == 200, (method, raw)
        seen = json.loads(raw)
        got = {}
        for k, v in seen["headers"]:
            got.setdefault(k, []).append(v)
        assert seen["method"] == method and seen["path"] == "/some/path", seen
        assert seen["query"] == "a=1&a=2&b=%20x", seen
        assert seen["body"] == (body or b"").decode(), seen
        assert got["x-custom"] == ["v"], got
        assert got["x-scf-request-id"] == [h["x-scf-request-id"]], (got, h)
        assert got["x-scf-name"] == [fn] and got["x-scf-namespace"] == ["default"], got
        assert got["x-scf-memory"] and got["x-scf-timeout"] and got["x-scf-appid"] and got["x-scf-uin"], got
        assert got["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"], got
        assert got["x-forwarded-proto"] == ["http"], got
        assert "host" in got, got
        assert h["x-server"] in ("python", "node"), h


def test_the_request_is_recorded_with_the_servers_output(scf):
    fn, url = web_function(scf, python_web())
    status, h, _ = request(url, "GET", "/logged?x=1")
    assert status == 200
    rid = h["x-scf-request-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = scf.call("GetFunctionLogs", {"FunctionName": fn, "FunctionRequestId": rid})["Data"]
        if logs:
            break
        time.sleep(0.2)
    assert logs and logs[0]["RequestId"] == rid, logs
    assert "served GET /logged?x=1" in logs[0]["Log"], logs[0]["Log"]


@pytest.mark.parametrize("make", [python_web, node_web], ids=["python", "node"])
def test_server_sent_events_arrive_as_they_are_written(scf, make):
    _, url = web_function(scf, make())
    request(url, "GET", "/warm")
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    try:
        t0 = time.monotonic()
        s.sendall(f"GET {u.path.rstrip('/')}/sse HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode())
        buf = b""
        while b"data: 0" not in buf:
            chunk = s.recv(4096)
            assert chunk, buf
            buf += chunk
        first = time.monotonic() - t0
        while b"data: 2" not in buf:
            chunk = s.recv(4096)
            assert chunk, buf
            buf += chunk
        total = time.monotonic() - t0
    finally:
        s.close()
    assert b"text/event-stream" in buf, buf
    # The server writes an event every 0.5 s: the first one must not wait for the last.
    assert first < 0.4 and total >= 0.9, (first, total)


def test_max_concurrency_is_never_exceeded(scf):
    _, url = web_function(scf, python_web(), InstanceConcurrencyConfig={"MaxConcurrency": 2})
    results = []

    def one():
        try:
            results.append(request(url, "GET", "/conc"))
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results.append((0, {}, repr(e).encode()))

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 50
    ok = [json.loads(b) for s, _, b in results if s == 200]
    # Beyond the engine's per-function limit a request is throttled (429), never queued past MaxConcurrency.
    assert all(s in (200, 429) for s, _, _ in results), [(s, b[:200]) for s, _, b in results if s not in (200, 429)]
    assert len(ok) >= 10, len(ok)
    assert max(o["peak"] for o in ok) <= 2, [o["peak"] for o in ok]
    assert max(o["peak"] for o in ok) == 2, "two requests shared an instance at least once"
    assert len({o["instance"] for o in ok}) >= 2, "more instances were started for the burst"


def test_a_bootstrap_that_exits_is_405(scf):
    _, url = web_function(scf, pkg({"scf_bootstrap": "#!/bin/sh\necho starting; exit 3\n"}))
    status, h, raw = request(url)
    e = json.loads(raw)
    assert status == 502 and e["statusCode"] == 405 and h["x-scf-request-id"], (status, e)


def test_a_server_not_listening_within_init_timeout_is_446(scf):
    _, url = web_function(scf, pkg({"scf_bootstrap": "#!/bin/sh\nexec sleep 30\n"}), InitTimeout=1)
    t0 = time.monotonic()
    status, _, raw = request(url)
    e = json.loads(raw)
    assert status == 502 and e["statusCode"] == 446 and "9000" in e["errorMessage"], (status, e)
    assert time.monotonic() - t0 < 5


def test_a_request_over_its_timeout_is_433_and_the_next_is_served(scf):
    _, url = web_function(scf, python_web(), Timeout=1)
    status, _, raw = request(url, "GET", "/sleep?s=3")
    e = json.loads(raw)
    assert status == 504 and e["statusCode"] == 433, (status, e)
    status, _, _ = request(url, "GET", "/after")
    assert status == 200


def test_memory_over_the_limit_is_434(scf):
    _, url = web_function(scf, python_web(), MemorySize=64)
    status, _, raw = request(url, "GET", "/eat?mb=200")
    e = json.loads(raw)
    assert status == 502 and e["statusCode"] == 434, (status, e)
    status, _, _ = request(url, "GET", "/after")
    assert status == 200, "a new instance serves the next request"


def test_invoke_of_a_web_function_is_refused(scf):
    fn, _ = web_function(scf, python_web())
    e = scf.error({"UnsupportedOperation"}, "Invoke", {"FunctionName": fn})
    assert "web function" in e.message and "function URL" in e.message, e.message
    e = scf.error({"UnsupportedOperation"}, "Invoke", {"FunctionName": fn, "InvocationType": "Event"})
    assert "web function" in e.message, e.message
