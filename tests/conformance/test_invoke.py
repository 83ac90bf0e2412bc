"""Invoke and InvokeFunction through the official SDK: built-in Python and Node.js runtimes and a custom runtime,
run in the sandbox, with SCF's results, status codes and logs; the status rules of lifecycle.md for invocations;
versions, aliases and concurrency; and probes that check the sandbox from inside a function."""
import json
import socket
import stat
import threading
from collections import Counter

import pytest

from harness import zips
from harness.zips import Entry, build

PY = zips.PY_RUNTIME


def pkg(files: dict[str, str], modes: dict[str, int] | None = None) -> bytes:
    modes = modes or {}
    return build([Entry(n, d.encode(), mode=stat.S_IFREG | modes.get(n, 0o644)) for n, d in files.items()])


def invoke(scf, name, event=None, **kw):
    params = {"FunctionName": name, "ClientContext": json.dumps(event if event is not None else {})}
    params.update(kw)
    return scf.call("Invoke", params)["Result"]


def err(result):
    return json.loads(result["ErrMsg"]) if result["ErrMsg"] else None


def test_python_handler_returns_its_event_with_logs(scf):
    name = scf.create_function(zip_bytes=pkg({"index.py": (
        "import os\n"
        "def main_handler(event, context):\n"
        "    print('hello from', context['function_name'])\n"
        "    return {'event': event, 'greeting': os.environ['GREETING'], 'version': context['function_version'],\n"
        "            'cwd': os.getcwd(), 'runtime': os.environ.get('SCF_RUNTIME')}\n")}),
        Environment={"Variables": [{"Key": "GREETING", "Value": "hi"}]})
    first = invoke(scf, name, {"n": 1}, LogType="Tail")
    assert first["InvokeResult"] == 0, first
    ret = json.loads(first["RetMsg"])
    assert ret == {"event": {"n": 1}, "greeting": "hi", "version": "$LATEST", "cwd": "/var/user", "runtime": PY}
    log = first["Log"]
    rid = first["FunctionRequestId"]
    for line in (f"START RequestId:{rid}", f"Init Report RequestId:{rid} Coldstart:", f"hello from {name}",
                 f"END RequestId:{rid}", f"Report RequestId:{rid} Duration:"):
        assert line in log, log
    assert first["Duration"] > 0 and first["BillDuration"] >= 1 and first["MemUsage"] > 0
    warm = invoke(scf, name, {"n": 2}, LogType="Tail")
    assert json.loads(warm["RetMsg"])["event"] == {"n": 2}
    assert "Init Report" not in warm["Log"], "the second call reuses the warm instance"
    assert invoke(scf, name, {"n": 3})["Log"] == "", "no log without LogType=Tail"


def test_python_exception_is_430_with_type_message_and_trace(scf):
    name = scf.create_function(zip_bytes=pkg({"index.py": "def main_handler(e, c):\n    raise ValueError('bad input')\n"}))
    r = invoke(scf, name)
    e = err(r)
    assert r["InvokeResult"] == -1 and r["RetMsg"] == ""
    assert e["statusCode"] == 430 and e["errorType"] == "ValueError" and e["errorMessage"] == "bad input"
    assert "/var/user/index.py" in e["stackTrace"]


def test_timeout_is_433_and_exit_is_439(scf):
    slow = scf.create_function(zip_bytes=pkg({"index.py": "import time\ndef main_handler(e, c):\n    time.sleep(5)\n"}),
                               Timeout=1)
    e = err(invoke(scf, slow))
    assert e["statusCode"] == 433 and "timed out after 1 seconds" in e["errorMessage"], e
    quits = scf.create_function(zip_bytes=pkg({"index.py": "import os\ndef main_handler(e, c):\n    os._exit(3)\n"}))
    assert err(invoke(scf, quits))["statusCode"] == 439


def test_memory_limit_is_434(scf):
    hog = scf.create_function(zip_bytes=pkg({"index.py": (
        "def main_handler(e, c):\n    x = bytearray(300 * 1024 * 1024)\n    return len(x)\n")}), MemorySize=64)
    e = err(invoke(scf, hog))
    assert e and e["statusCode"] == 434, e


def test_node_async_and_callback_handlers(scf):
    name = scf.create_function(zip_bytes=pkg({"index.js": (
        "exports.main_handler = async (event, context) => ({ doubled: event.n * 2, fn: context.function_name });\n"
        "exports.cb = (event, context, callback) => callback(null, { via: 'callback', left: context.getRemainingTimeInMillis() > 0 });\n")}),
        runtime="Nodejs18.15", handler="index.main_handler")
    r = scf.call("InvokeFunction", {"FunctionName": name, "Event": json.dumps({"n": 21})})["Result"]
    assert json.loads(r["RetMsg"]) == {"doubled": 42, "fn": name}
    scf.call("UpdateFunctionCode", {"FunctionName": name, "Handler": "index.cb",
                                    "Code": {"ZipFile": zips.b64(pkg({"index.js": (
                                        "exports.cb = (event, context, callback) => callback(null, { via: 'callback', left: context.getRemainingTimeInMillis() > 0 });\n")}))}})
    scf.wait(name)
    assert json.loads(invoke(scf, name)["RetMsg"]) == {"via": "callback", "left": True}


BOOTSTRAP = """#!/usr/bin/python3
import http.client, json, os
host, port = os.environ["SCF_RUNTIME_API"], int(os.environ["SCF_RUNTIME_API_PORT"])
def call(method, path, body=None):
    c = http.client.HTTPConnection(host, port, timeout=600)
    c.request(method, path, body=body)
    r = c.getresponse()
    return r, r.read()
call("POST", "/runtime/init/ready", b"")
while True:
    r, event = call("GET", "/runtime/invocation/next")
    out = {"custom": True, "event": json.loads(event or b"{}"), "request_id": r.getheader("request_id")}
    call("POST", "/runtime/invocation/response", json.dumps(out).encode())
"""


def test_custom_runtime_speaks_the_http_runtime_api(scf):
    name = scf.create_function(zip_bytes=pkg({"scf_bootstrap": BOOTSTRAP}, {"scf_bootstrap": 0o755}),
                               runtime="CustomRuntime", handler=None)
    r = invoke(scf, name, {"k": "v"})
    body = json.loads(r["RetMsg"])
    assert body["custom"] is True and body["event"] == {"k": "v"} and body["request_id"] == r["FunctionRequestId"]


def test_layer_module_is_imported_from_opt(scf):
    layer = build([Entry("python/helper.py", b"VALUE = 'from the layer'\n")])
    scf.call("PublishLayerVersion", {"LayerName": "invlib", "CompatibleRuntimes": [PY],
                                     "Content": {"ZipFile": zips.b64(layer)}})
    scf.wait_layer("invlib", 1)
    name = scf.create_function(zip_bytes=pkg({"index.py": (
        "import helper\ndef main_handler(e, c):\n    return {'value': helper.VALUE, 'file': helper.__file__}\n")}),
        Layers=[{"LayerName": "invlib", "LayerVersion": 1}])
    ret = json.loads(invoke(scf, name)["RetMsg"])
    assert ret["value"] == "from the layer" and ret["file"].startswith("/opt/")


def test_invocations_follow_the_status_rules(scf):
    name = scf.create_function(zip_bytes=pkg({"index.py": "def main_handler(e, c):\n    return 'v1'\n"}))
    assert invoke(scf, name)["RetMsg"] == '"v1"'
    version = scf.publish_version(name)
    # A failed update leaves the old code serving.
    scf.call("UpdateFunctionCode", {"FunctionName": name, "Code": {"ZipFile": zips.b64(pkg({"other.py": "x"}))}})
    assert scf.wait(name, {"UpdateFailed"})["Status"] == "UpdateFailed"
    assert invoke(scf, name)["RetMsg"] == '"v1"'
    # A published version keeps its code after $LATEST changes.
    scf.call("UpdateFunctionCode", {"FunctionName": name, "Code": {"ZipFile": zips.b64(
        pkg({"index.py": "def main_handler(e, c):\n    return 'v2'\n"}))}})
    scf.wait(name)
    assert invoke(scf, name)["RetMsg"] == '"v2"'
    assert invoke(scf, name, Qualifier=version)["RetMsg"] == '"v1"'
    # Unknown qualifiers and functions that never became Active are refused.
    scf.error("ResourceNotFound.Qualifier", "Invoke", {"FunctionName": name, "Qualifier": "99"})
    scf.error("ResourceNotFound.Qualifier", "Invoke", {"FunctionName": name, "Qualifier": "nope"})
    broken = scf.create_function(zip_bytes=pkg({"other.py": "x"}), wait="CreateFailed")
    scf.error("FailedOperation.FunctionStatusError", "Invoke", {"FunctionName": broken})
    scf.error("ResourceNotFound.Function", "Invoke", {"FunctionName": "nosuchfunction"})


def test_alias_weights_are_honoured(scf):
    name = scf.create_function(zip_bytes=pkg({"index.py": "def main_handler(e, c):\n    return 'one'\n"}))
    v1 = scf.publish_version(name)
    scf.call("UpdateFunctionCode", {"FunctionName": name, "Code": {"ZipFile": zips.b64(
        pkg({"index.py": "def main_handler(e, c):\n    return 'two'\n"}))}})
    scf.wait(name)
    v2 = scf.publish_version(name)
    scf.call("CreateAlias", {"FunctionName": name, "Name": "canary", "FunctionVersion": v1,
                             "RoutingConfig": {"AdditionalVersionWeights": [{"Version": v2, "Weight": 0.3}]}})
    n = 1000
    seen = Counter(invoke(scf, name, Qualifier="canary")["RetMsg"] for _ in range(n))
    # Binomial(1000, 0.3): mean 300, sd ~14.5; 6 sd either side.
    assert 213 <= seen['"two"'] <= 387, seen
    assert seen['"one"'] + seen['"two"'] == n
    # InvokeFunction defaults to $DEFAULT, which routes to $LATEST.
    r = scf.call("InvokeFunction", {"FunctionName": name})["Result"]
    assert r["RetMsg"] == '"two"'


def test_fifty_concurrent_invokes(scf):
    name = scf.create_function(zip_bytes=pkg({"index.py": (
        "import time, os\ndef main_handler(e, c):\n    time.sleep(0.05)\n    return {'n': e['n'], 'pid': os.getpid()}\n")}))
    results, errors = {}, []

    def one(i):
        try:
            client = scf.server.client() if scf.server else None
            r = client.Invoke(_invoke_request(name, i)) if client else None
            results[i] = json.loads(r.Result.RetMsg)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert sorted(r["n"] for r in results.values()) == list(range(50))


def _invoke_request(name, i):
    from tencentcloud.scf.v20180416 import models
    req = models.InvokeRequest()
    req.FunctionName = name
    req.ClientContext = json.dumps({"n": i})
    return req


PROBE = """
import os, socket, json
def main_handler(event, context):
    out = {}
    for path in event["paths"]:
        out[path] = os.path.exists(path)
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["uid"] = os.getuid()
    try:
        socket.create_connection(("127.0.0.1", event["port"]), timeout=2).close()
        out["api"] = "reached"
    except OSError as e:
        out["api"] = type(e).__name__
    try:
        open("/var/user/written", "w").write("x")
        out["code_writable"] = True
    except OSError:
        out["code_writable"] = False
    open("/tmp/scratch", "w").write("x")
    return out
"""


def test_sandbox_probe_from_inside_a_function(scf):
    server = scf.server
    other = scf.create_function(zip_bytes=pkg({"index.py": "SECRET = 1\ndef main_handler(e, c):\n    return 1\n"}))
    name = scf.create_function(zip_bytes=pkg({"index.py": PROBE}))
    data_dir = str(server.data_dir)
    paths = [data_dir, data_dir + "/dev-credentials.json", data_dir + "/stratus.db", data_dir + "/unpacked",
             data_dir + "/blobs"]
    r = invoke(scf, name, {"paths": paths, "port": server.port})
    assert r["InvokeResult"] == 0, r
    out = json.loads(r["RetMsg"])
    for p in paths:
        assert out[p] is False, (p, out)
    assert out["api"] != "reached", "an instance must not reach Stratus's API on the host loopback"
    assert out["uid"] != 0
    assert out["code_writable"] is False
    assert len(out["pids"]) <= 3, out["pids"]
    assert other != name


def test_invocations_are_recorded_for_logs_and_request_status(scf):
    name = scf.create_function(zip_bytes=pkg({"index.py": (
        "def main_handler(e, c):\n    print('working on', e['n'])\n    if e['n'] == 2:\n        raise RuntimeError('two')\n    return e['n']\n")}))
    ids = [invoke(scf, name, {"n": n})["FunctionRequestId"] for n in (1, 2, 3)]
    import time as _time
    logs = None
    for _ in range(100):
        logs = scf.call("GetFunctionLogs", {"FunctionName": name, "Limit": 10, "Order": "asc"})
        if logs["TotalCount"] >= 3:
            break
        _time.sleep(0.05)
    assert logs["TotalCount"] == 3, logs
    assert [d["RequestId"] for d in logs["Data"]] == ids
    assert [d["RetCode"] for d in logs["Data"]] == [0, 430, 0]
    assert "working on 2" in logs["Data"][1]["Log"] and logs["Data"][0]["RetMsg"] == "1"
    failed = scf.call("GetFunctionLogs", {"FunctionName": name, "Filter": {"RetCode": "not0"}})
    assert [d["RequestId"] for d in failed["Data"]] == [ids[1]]
    one = scf.call("GetFunctionLogs", {"FunctionName": name, "FunctionRequestId": ids[2]})
    assert one["TotalCount"] == 1 and one["Data"][0]["RetMsg"] == "3"
    status = scf.call("GetRequestStatus", {"FunctionName": name, "FunctionRequestId": ids[1]})
    assert status["TotalCount"] == 1 and status["Data"][0]["RetCode"] == 430
    scf.error("ResourceNotFound.Function", "GetFunctionLogs", {"FunctionName": "nosuchfunction"})


BIG_OUTPUT = """def main_handler(event, context):
    print('L' * 100_000)
    if event.get('big'):
        return 'x' * (6 * 1024 * 1024 - 16)
    return event.get('n')
"""


def test_logs_of_six_megabyte_results_stay_within_the_reply_budget(scf):
    # Stored records keep 16 KiB of a result and 64 KiB of a log (head and tail); one reply carries at most 4 MiB
    # of them, so a page can end before Limit and the client pages on from where it ended.
    name = scf.create_function(zip_bytes=pkg({"index.py": BIG_OUTPUT}), MemorySize=256)
    big = [invoke(scf, name, {"big": True}) for _ in range(2)]
    assert all(len(r["RetMsg"]) > 6_000_000 for r in big), "the synchronous caller gets the whole result"
    ids = {r["FunctionRequestId"] for r in big}
    ids |= {invoke(scf, name, {"n": i})["FunctionRequestId"] for i in range(70)}
    import time as _time
    for _ in range(100):
        page = scf.call("GetFunctionLogs", {"FunctionName": name, "Limit": 100})
        if page["TotalCount"] == len(ids):
            break
        _time.sleep(0.1)
    assert page["TotalCount"] == 72, page["TotalCount"]
    size = len(json.dumps(page))
    assert size < 4.5 * 1024 * 1024, f"reply of {size} bytes"
    assert 40 <= len(page["Data"]) < 72, len(page["Data"])
    for d in page["Data"]:
        assert len(d["Log"]) <= 64 * 1024 + 100 and "bytes of log cut" in d["Log"], len(d["Log"])
        assert f"Report RequestId:{d['RequestId']}" in d["Log"], "the tail of the log is kept"
        assert len(d["RetMsg"]) <= 16 * 1024 + 100
    seen = [d["RequestId"] for d in page["Data"]]
    while len(seen) < 72:
        more = scf.call("GetFunctionLogs", {"FunctionName": name, "Limit": 100, "Offset": len(seen)})["Data"]
        assert more, "paging on always advances"
        seen += [d["RequestId"] for d in more]
    assert set(seen) == ids and len(seen) == 72
    stored_big = [scf.call("GetFunctionLogs", {"FunctionName": name, "FunctionRequestId": r["FunctionRequestId"]})
                  for r in big]
    for s in stored_big:
        ret = s["Data"][0]["RetMsg"]
        assert "[truncated: " in ret and len(ret) < 16 * 1024 + 100, ret[-60:]


def test_metrics_count_invocations(scf):
    import urllib.request
    name = scf.create_function(zip_bytes=pkg({"index.py": "def main_handler(e, c):\n    return 1\n"}))
    invoke(scf, name)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{scf.server.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'stratus_invocations_total{status="200"}' in text
    assert "stratus_cold_starts_total" in text and "stratus_invocation_duration_seconds_bucket" in text
    assert 'stratus_instances{state="idle"}' in text


def test_invoke_during_updating_runs_the_old_code(stratus):
    # The update's preparation is held for a few seconds, so the function stays Updating while we invoke it.
    from harness.api import Scf
    server = stratus(failpoints="update-function=sleep(3000)")
    scf = Scf(server.client(), server, server.creds)
    name = scf.create_function(zip_bytes=pkg({"index.py": "def main_handler(e, c):\n    return 'old'\n"}))
    assert invoke(scf, name)["RetMsg"] == '"old"'
    scf.call("UpdateFunctionCode", {"FunctionName": name, "Code": {"ZipFile": zips.b64(
        pkg({"index.py": "def main_handler(e, c):\n    return 'new'\n"}))}})
    assert scf.get(name)["Status"] == "Updating"
    assert invoke(scf, name)["RetMsg"] == '"old"'
    assert scf.wait(name, timeout=20)["Status"] == "Active"
    assert invoke(scf, name)["RetMsg"] == '"new"'


def test_results_over_six_megabytes_are_refused(scf):
    name = scf.create_function(zip_bytes=pkg({"index.py": "def main_handler(e, c):\n    return 'x' * (7 * 1024 * 1024)\n"}),
                               MemorySize=256)
    r = invoke(scf, name)
    e = err(r)
    assert r["RetMsg"] == "" and e["statusCode"] == 430 and "6 MB" in e["errorMessage"], e
    big = json.dumps({"blob": "y" * (6 * 1024 * 1024 + 10)})
    scf.error("InvalidParameter.RequestTooLarge", "Invoke", {"FunctionName": name, "ClientContext": big})


FORK_BOMB = """import os, time
def main_handler(event, context):
    n = 0
    try:
        while n < 5000:
            if os.fork() == 0:
                time.sleep(20)
                os._exit(0)
            n += 1
    except OSError:
        pass
    return n
"""


def test_fork_bomb_is_contained_and_runtime_apis_are_private(scf):
    # A custom runtime instance listens on 127.0.0.1:9001 inside its own network namespace.
    custom = scf.create_function(zip_bytes=pkg({"scf_bootstrap": BOOTSTRAP}, {"scf_bootstrap": 0o755}),
                                 runtime="CustomRuntime", handler=None)
    assert json.loads(invoke(scf, custom)["RetMsg"])["custom"] is True
    probe = scf.create_function(zip_bytes=pkg({"index.py": PROBE}))
    out = json.loads(invoke(scf, probe, {"paths": [], "port": 9001})["RetMsg"])
    assert out["api"] != "reached", "another instance's runtime API must be unreachable"
    bomb = scf.create_function(zip_bytes=pkg({"index.py": FORK_BOMB}), Timeout=30)
    result = invoke(scf, bomb)
    if result["InvokeResult"] == 0:
        # Stopped by the process limit.
        forked = json.loads(result["RetMsg"])
        assert 0 < forked < 1024, forked
    else:
        # Or by the memory limit first: the instance is killed whole.
        assert err(result)["statusCode"] == 434, result
    # The host is unharmed: other functions still start and run.
    again = scf.create_function(zip_bytes=pkg({"index.py": "def main_handler(e, c):\n    return 'fine'\n"}))
    assert invoke(scf, again)["RetMsg"] == '"fine"'
