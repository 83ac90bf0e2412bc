"""Function URLs (`CreateTrigger Type=http`) for event functions: the trigger through the official SDK (create it,
read its URL back through CreateTrigger, ListTriggers and GetFunction), and the URL itself through a plain HTTP
client (http.client, the standard library's client under urllib): SCF's API-gateway event, the integration
response, repeated headers, binary bodies, 6 MB in and out, each error status, an alias's weights, CAM signatures
and CORS preflights; Python, Node.js and a custom runtime behind a URL."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import stat
import tempfile
import threading
import time
import urllib.parse
from collections import Counter

import pytest

from harness import zips
from harness.zips import Entry, build

MB = 1024 * 1024

PY_EVENT = '''\
import base64, json, time
def main_handler(event, context):
    q = event["queryString"]
    mode = q.get("mode", "event")
    if mode == "event":
        return event
    if mode == "integration":
        return {"isBase64Encoded": False, "statusCode": 201,
                "headers": {"Content-Type": "text/plain", "Set-Cookie": ["a=1", "b=2"], "X-Path": event["path"]},
                "body": "made"}
    if mode == "reverse":
        raw = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
        return {"isBase64Encoded": True, "statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                "body": base64.b64encode(raw[::-1]).decode()}
    if mode == "size":
        return {"statusCode": 200, "body": str(len(event["body"]))}
    if mode == "big":
        return {"statusCode": 200, "body": "y" * int(q["n"])}
    if mode == "raise":
        raise ValueError("boom")
    if mode == "sleep":
        time.sleep(float(q["s"]))
        return "slept"
    if mode == "malformed":
        return {"statusCode": "OK", "body": 5}
    return {"unknown": mode}
'''

NODE_EVENT = """\
exports.main_handler = async (event, context) => ({
  statusCode: 202,
  headers: { "content-type": "application/json", "x-runtime": "node", "x-multi": ["1", "2"] },
  body: JSON.stringify({ path: event.path, method: event.httpMethod, q: event.queryString, body: event.body }),
});
"""

CUSTOM_BOOTSTRAP = """#!/usr/bin/python3
import http.client, json, os
host, port = os.environ["SCF_RUNTIME_API"], int(os.environ["SCF_RUNTIME_API_PORT"])
def call(method, path, body=None):
    c = http.client.HTTPConnection(host, port, timeout=600)
    c.request(method, path, body=body)
    r = c.getresponse()
    return r, r.read()
call("POST", "/runtime/init/ready", b"")
while True:
    r, raw = call("GET", "/runtime/invocation/next")
    event = json.loads(raw or b"{}")
    out = {"statusCode": 200, "headers": {"x-runtime": "custom"},
           "body": json.dumps({"path": event["path"], "body": event["body"], "rid": event["requestContext"]["requestId"]})}
    call("POST", "/runtime/invocation/response", json.dumps(out).encode())
"""


def pkg(files: dict[str, str], modes: dict[str, int] | None = None) -> bytes:
    modes = modes or {}
    return build([Entry(n, d.encode(), mode=stat.S_IFREG | modes.get(n, 0o644)) for n, d in files.items()])


class Reply:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        vals = self.all(name)
        return vals[0] if vals else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)


def request(url: str, method: str = "GET", body: bytes | None = None, headers: list[tuple[str, str]] = (),
            timeout: float = 60) -> Reply:
    """One request with the standard library's HTTP client (repeated headers kept as sent)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        c.putrequest(method, path, skip_host=any(k.lower() == "host" for k, _ in headers))
        for k, v in headers:
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        if body is not None:
            c.send(body)
        r = c.getresponse()
        return Reply(r.status, r.getheaders(), r.read())
    finally:
        c.close()


def create_url(scf, fn: str, name: str = "url", desc: dict | None = None, **params) -> dict:
    p = {"FunctionName": fn, "TriggerName": name, "Type": "http",
         "TriggerDesc": json.dumps(desc if desc is not None else {"AuthType": "NONE"}), **params}
    return scf.call("CreateTrigger", p)["TriggerInfo"]


def url_of(trigger: dict) -> str:
    net = json.loads(trigger["TriggerDesc"])["NetConfig"]
    return net["ExtranetUrl"] or net["IntranetUrl"]


@pytest.fixture(scope="module")
def py_url(server):
    """A Python event function (Timeout 2 s) behind an anonymous URL."""
    from harness.api import Scf

    scf = Scf(server.client(), server, server.creds)
    fn = scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT}), Timeout=2)
    return fn, url_of(create_url(scf, fn))


def test_the_url_is_read_back_through_the_api(scf, server):
    fn = scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT}))
    t = create_url(scf, fn, desc={"AuthType": "NONE", "NetConfig": {"EnableIntranet": True, "EnableExtranet": True}})
    assert t["Type"] == "http" and t["Qualifier"] == "$LATEST"
    desc = json.loads(t["TriggerDesc"])
    net = desc["NetConfig"]
    url = net["ExtranetUrl"]
    http_port = [ln for ln in server.stdout_lines if ln.startswith("stratus function URLs on http://")]
    assert http_port, server.stdout_lines
    base = http_port[0].rsplit(" ", 1)[1]
    assert url.startswith(base + f"/{server.creds.app_id}-"), (url, base)
    assert desc["AuthType"] == "NONE"
    assert net["EnableIntranet"] is True and net["EnableExtranet"] is True
    assert net["IntranetUrl"] == net["IntranetHTTPUrl"] == net["ExtranetHTTPUrl"] == url
    for k in ("WssIntranetUrl", "WsIntranetUrl", "WssExtranetUrl", "WsExtranetUrl"):
        assert net[k] == ""
    listed = scf.call("ListTriggers", {"FunctionName": fn})["Triggers"]
    assert [json.loads(x["TriggerDesc"])["NetConfig"]["ExtranetUrl"] for x in listed] == [url]
    got = scf.get(fn)["Triggers"]
    assert [json.loads(x["TriggerDesc"])["NetConfig"]["ExtranetUrl"] for x in got] == [url]
    assert request(url).status == 200
    # One URL per qualifier; bad descriptions name the key.
    scf.error("InvalidParameterValue.Qualifier", "CreateTrigger",
              {"FunctionName": fn, "TriggerName": "url2", "Type": "http", "TriggerDesc": "{}"})
    scf.error("InvalidParameterValue.TriggerDesc", "CreateTrigger",
              {"FunctionName": fn, "TriggerName": "url3", "Type": "http", "TriggerDesc": '{"AuthType":"KEY"}'})
    # UpdateTrigger changes the settings; the URL stays.
    scf.call("UpdateTrigger", {"FunctionName": fn, "TriggerName": "url", "Type": "http",
                               "TriggerDesc": json.dumps({"AuthType": "CAM"})})
    t2 = scf.call("ListTriggers", {"FunctionName": fn})["Triggers"][0]
    assert json.loads(t2["TriggerDesc"])["AuthType"] == "CAM" and url_of(t2) == url
    assert request(url).status == 401
    # Deleted: the URL is gone.
    scf.call("DeleteTrigger", {"FunctionName": fn, "TriggerName": "url", "Type": "http"})
    r = request(url)
    assert r.status == 404 and r.json()["statusCode"] == 404 and r.header("X-Scf-Request-Id")


def test_python_sees_the_api_gateway_event(py_url):
    _, url = py_url
    r = request(url + "/a/b?mode=event&x=1&x=2&y=%20z", "POST", b'{"k":"v"}',
                [("Content-Type", "application/json"), ("X-Rep", "one"), ("X-Rep", "two")])
    assert r.status == 200, r.body
    assert r.header("Content-Type") == "application/json"
    e = r.json()
    for k in ("requestContext", "headers", "body", "isBase64Encoded", "pathParameters", "queryString",
              "queryStringParameters", "headerParameters", "stageVariables", "path", "httpMethod"):
        assert k in e, k
    assert e["path"] == "/a/b" and e["httpMethod"] == "POST" and e["body"] == '{"k":"v"}'
    assert e["isBase64Encoded"] is False
    assert e["queryString"] == {"mode": "event", "x": ["1", "2"], "y": " z"}
    assert e["headers"]["content-type"] == "application/json"
    assert e["headers"]["x-rep"] == "one,two"
    ctx = e["requestContext"]
    assert ctx["httpMethod"] == "POST" and ctx["sourceIp"] == "127.0.0.1" and ctx["stage"] == "release"
    assert ctx["requestId"] == r.header("X-Scf-Request-Id")
    assert ctx["identity"] == {}
    assert e["pathParameters"] == {} and e["stageVariables"] == {}
    # The bare URL is the path "/".
    assert request(url + "?mode=event").json()["path"] == "/"


def test_integration_response_and_repeated_headers(py_url):
    _, url = py_url
    r = request(url + "/p?mode=integration")
    assert r.status == 201 and r.body == b"made"
    assert r.header("Content-Type") == "text/plain"
    assert r.all("Set-Cookie") == ["a=1", "b=2"]
    assert r.header("X-Path") == "/p"


def test_binary_bodies_go_through_base64(py_url):
    _, url = py_url
    raw = os.urandom(200_000) + b"\xff\xfe"
    r = request(url + "?mode=reverse", "POST", raw, [("Content-Type", "application/octet-stream")])
    assert r.status == 200 and r.header("Content-Type") == "application/octet-stream"
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(raw[::-1]).hexdigest()


def test_six_megabytes_in_and_out(py_url):
    _, url = py_url
    body = b"a" * (6 * MB)
    r = request(url + "?mode=size", "POST", body, [("Content-Type", "text/plain")])
    assert r.status == 200 and r.body == str(6 * MB).encode(), r.body[:300]
    r = request(url + "?mode=big&n=" + str(5 * MB))
    assert r.status == 200 and len(r.body) == 5 * MB and set(r.body) == {ord("y")}
    r = request(url + "?mode=size", "POST", body + b"a", [("Content-Type", "text/plain")])
    assert r.status == 413, r.body[:300]
    assert r.json()["statusCode"] == 406 and r.header("X-Scf-Request-Id")


def test_error_statuses(py_url, server):
    _, url = py_url
    r = request(url + "?mode=raise")
    assert r.status == 502
    e = r.json()
    assert e["statusCode"] == 430 and e["errorMessage"] == "boom" and e["errorType"] == "ValueError"
    assert r.header("X-Scf-Request-Id")
    r = request(url + "?mode=sleep&s=4")
    assert r.status == 504 and r.json()["statusCode"] == 433 and r.header("X-Scf-Request-Id")
    r = request(url + "?mode=malformed")
    assert r.status == 502
    assert r.json() == {"errno": 403, "error": "Invalid scf response format. please check your scf response format."}
    base = url.rsplit("/", 1)[0]
    for unknown in (f"{base}/", f"{base}/{server.creds.app_id}-{'0' * 32}", f"{base}/nothing/here"):
        r = request(unknown)
        assert r.status == 404 and r.json()["statusCode"] == 404 and r.header("X-Scf-Request-Id"), unknown
    # A URL of one account named with another account's id is not found either.
    label = url.rsplit("/", 1)[1]
    r = request(f"{base}/1{label}")
    assert r.status == 404


def test_node_behind_a_url(scf):
    fn = scf.create_function(zip_bytes=zips.build([Entry("index.js", NODE_EVENT.encode())]),
                             runtime="Nodejs18.15", handler="index.main_handler")
    url = url_of(create_url(scf, fn))
    r = request(url + "/n?q=1", "PUT", b"text body")
    assert r.status == 202 and r.header("x-runtime") == "node" and r.all("x-multi") == ["1", "2"]
    assert r.json() == {"path": "/n", "method": "PUT", "q": {"q": "1"}, "body": "text body"}


def test_custom_runtime_behind_a_url(scf):
    fn = scf.create_function(zip_bytes=pkg({"scf_bootstrap": CUSTOM_BOOTSTRAP}, {"scf_bootstrap": 0o755}),
                             runtime="CustomRuntime", handler=None)
    url = url_of(create_url(scf, fn))
    r = request(url + "/c", "POST", b"hello")
    assert r.status == 200 and r.header("x-runtime") == "custom"
    body = r.json()
    assert body == {"path": "/c", "body": "hello", "rid": r.header("X-Scf-Request-Id")}


def test_a_url_bound_to_an_alias_follows_its_weights(scf):
    fn = scf.create_function(zip_bytes=pkg({"index.py": "def main_handler(e, c):\n    return 'v1'\n"}))
    v1 = scf.publish_version(fn)
    scf.call("UpdateFunctionCode", {"FunctionName": fn,
                                    "Code": {"ZipFile": zips.b64(pkg({"index.py": "def main_handler(e, c):\n    return 'v2'\n"}))}})
    scf.wait(fn)
    v2 = scf.publish_version(fn)
    scf.call("CreateAlias", {"FunctionName": fn, "Name": "canary", "FunctionVersion": v1,
                             "RoutingConfig": {"AdditionalVersionWeights": [{"Version": v2, "Weight": 0.5}]}})
    t = create_url(scf, fn, Qualifier="canary")
    assert t["Qualifier"] == "canary"
    url = url_of(t)
    n = 200
    seen = Counter(request(url).body for _ in range(n))
    # Binomial(200, 0.5): mean 100, sd ~7; 6 sd either side.
    assert set(seen) == {b'"v1"', b'"v2"'} and abs(seen[b'"v2"'] - 100) < 43, seen
    # A URL bound to a version runs that version.
    v1_url = url_of(create_url(scf, fn, name="v1url", Qualifier=v1))
    assert request(v1_url).body == b'"v1"'


def sign(secret_id: str, secret_key: str, method: str, url: str, body: bytes, ts: int | None = None) -> list:
    """TC3-HMAC-SHA256 over the request as sent: its path, query, content-type and host, and its body."""
    u = urllib.parse.urlsplit(url)
    ts = ts or int(time.time())
    date = time.strftime("%Y-%m-%d", time.gmtime(ts))
    host = u.netloc
    ct = "application/json"
    canonical = "\n".join([method, u.path or "/", u.query, f"content-type:{ct}\nhost:{host}\n", "content-type;host",
                           hashlib.sha256(body).hexdigest()])
    scope = f"{date}/scf/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"

    def h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    k = h(h(h(("TC3" + secret_key).encode(), date), "scf"), "tc3_request")
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={sig}"
    return [("Content-Type", ct), ("Authorization", auth), ("X-TC-Timestamp", str(ts))]


def test_cam_refuses_unsigned_and_wrongly_signed_requests(scf, server):
    fn = scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT}))
    url = url_of(create_url(scf, fn, desc={"AuthType": "CAM"})) + "/s?mode=event"
    c = server.creds
    body = b'{"signed":true}'
    r = request(url, "POST", body, sign(c.secret_id, c.secret_key, "POST", url, body))
    assert r.status == 200, r.body
    assert r.json()["requestContext"]["identity"] == {"secretId": c.secret_id}
    assert r.json()["body"] == '{"signed":true}'
    r = request(url, "POST", body, [("Content-Type", "application/json")])
    assert r.status == 401 and r.json()["statusCode"] == 401
    r = request(url, "POST", body, sign(c.secret_id, c.secret_key[:-1] + "x", "POST", url, body))
    assert r.status == 403
    r = request(url, "POST", body + b" ", sign(c.secret_id, c.secret_key, "POST", url, body))
    assert r.status == 403, "the body is part of the signature"
    r = request(url, "POST", body, sign(c.secret_id, c.secret_key, "POST", url, body, ts=int(time.time()) - 3600))
    assert r.status == 403 and "expired" in r.json()["errorMessage"]
    other = server.create_account()
    r = request(url, "POST", body, sign(other.secret_id, other.secret_key, "POST", url, body))
    assert r.status == 403 and "account" in r.json()["errorMessage"]


def test_cors_preflights_are_answered_without_the_function(scf):
    fn = scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT}))
    cors = {"Origins": ["https://app.example"], "Methods": ["GET", "POST"], "Headers": ["X-Token"],
            "ExposeHeaders": ["X-Path"], "MaxAge": 600}
    url = url_of(create_url(scf, fn, desc={"AuthType": "CAM", "CorsConfig": cors}))
    # Anonymous preflights even on a CAM URL: browsers never sign them.
    r = request(url, "OPTIONS", headers=[("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST"),
                                         ("Access-Control-Request-Headers", "x-token")])
    assert r.status == 204 and r.body == b""
    assert r.header("Access-Control-Allow-Origin") == "https://app.example"
    assert r.header("Access-Control-Allow-Methods") == "GET,POST"
    assert r.header("Access-Control-Allow-Headers") == "X-Token"
    assert r.header("Access-Control-Max-Age") == "600"
    r = request(url, "OPTIONS", headers=[("Origin", "https://evil.example"), ("Access-Control-Request-Method", "GET")])
    assert r.status == 403 and r.header("Access-Control-Allow-Origin") is None
    r = request(url, "OPTIONS", headers=[("Origin", "https://app.example"), ("Access-Control-Request-Method", "DELETE")])
    assert r.status == 403
    # No invocation ran: the function has no log.
    logs = scf.call("GetFunctionLogs", {"FunctionName": fn})
    assert logs["TotalCount"] == 0, logs
    # A real request from the origin carries the headers the browser needs.
    open_url = url_of(create_url(scf, scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT})),
                                 desc={"CorsConfig": cors}))
    r = request(open_url + "/x?mode=integration", headers=[("Origin", "https://app.example")])
    assert r.status == 201
    assert r.header("Access-Control-Allow-Origin") == "https://app.example"
    assert r.header("Access-Control-Expose-Headers") == "X-Path"


def test_throttled_is_429(stratus):
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write("[execution]\nmax_per_function = 1\n")
    try:
        srv = stratus(env={"STRATUS_CONFIG": f.name})
        from harness.api import Scf

        scf = Scf(srv.client(), srv, srv.creds)
        fn = scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT}), Timeout=10)
        url = url_of(create_url(scf, fn))
        assert request(url + "?mode=event").status == 200
        slow: list[Reply] = []
        t = threading.Thread(target=lambda: slow.append(request(url + "?mode=sleep&s=2")))
        t.start()
        time.sleep(0.7)
        r = request(url + "?mode=event")
        t.join(timeout=30)
        assert r.status == 429 and r.json()["statusCode"] == 432 and r.header("X-Scf-Request-Id"), r.body
        assert slow and slow[0].status == 200 and slow[0].body == b'"slept"'
    finally:
        os.unlink(f.name)


def test_listener_metrics(py_url, server):
    _, url = py_url
    request(url + "?mode=event")
    text = request(server.url + "/metrics/http").body.decode()
    fn = py_url[0]
    assert f'stratus_http_requests_total{{function="default/{fn}",status="200"}}' in text, text
    assert "stratus_http_request_duration_seconds_count" in text


def test_a_wildcard_public_url_routes_by_host(stratus):
    srv = stratus(env={"STRATUS_PUBLIC_URL": "http://*.fn.stratus.test", "STRATUS_LOG": "info,stratus::http=debug"})
    from harness.api import Scf

    scf = Scf(srv.client(), srv, srv.creds)
    fn = scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT}))
    url = url_of(create_url(scf, fn))
    host = urllib.parse.urlsplit(url).netloc
    assert host.startswith(f"{srv.creds.app_id}-") and host.endswith(".fn.stratus.test"), url
    line = [ln for ln in srv.stdout_lines if ln.startswith("stratus function URLs on http://")][0]
    listener = line.rsplit(" ", 1)[1]
    r = request(f"{listener}/some/path?mode=event", headers=[("Host", host)])
    assert r.status == 200, r.body
    assert r.json()["path"] == "/some/path" and r.json()["headers"]["host"] == host
    # The access log, at debug level.
    rid = r.header("X-Scf-Request-Id")
    deadline = time.monotonic() + 5
    while rid not in srv.stderr_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = [ln for ln in srv.stderr_tail().splitlines() if rid in ln]
    assert line and "function URL request" in line[0] and "status=200" in line[0], line


def test_one_url_per_qualifier_even_when_created_at_once(scf):
    fn = scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT}))
    results: list[str] = []

    def make(i: int) -> None:
        try:
            scf.call("CreateTrigger", {"FunctionName": fn, "TriggerName": f"u{i}", "Type": "http", "TriggerDesc": "{}"})
            results.append("ok")
        except Exception as e:  # noqa: BLE001 - the refusal is the expected outcome for all but one
            results.append(getattr(e, "code", None) or repr(e))

    threads = [threading.Thread(target=make, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["InvalidParameterValue.Qualifier"] * 5 + ["ok"], results
    assert len(scf.call("ListTriggers", {"FunctionName": fn})["Triggers"]) == 1


def test_requests_in_flight_finish_when_the_server_stops(stratus):
    srv = stratus()
    from harness.api import Scf

    scf = Scf(srv.client(), srv, srv.creds)
    fn = scf.create_function(zip_bytes=pkg({"index.py": PY_EVENT}), Timeout=10)
    url = url_of(create_url(scf, fn))
    assert request(url + "?mode=event").status == 200
    slow: list[Reply] = []
    t = threading.Thread(target=lambda: slow.append(request(url + "?mode=sleep&s=1.5")))
    t.start()
    time.sleep(0.5)
    assert srv.stop() == 0
    t.join(timeout=30)
    assert slow and slow[0].status == 200 and slow[0].body == b'"slept"'
    with pytest.raises(OSError):
        request(url + "?mode=event", timeout=5)
