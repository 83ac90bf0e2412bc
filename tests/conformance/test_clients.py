"""The other official clients: tccli and the Node SDK, driven as a user would (PROTOCOL.md section 1), on both
backends.

tccli runs from its own venv (.venv-tccli, see tests/clients/requirements-tccli.txt): it pulls the full
tencentcloud-sdk-python, which would overwrite the per-product packages of the suite's venv. The Node SDK runs through
tests/clients/scf.js (package.json pins it). scripts/test installs both; STRATUS_TCCLI points at another tccli.
Without them these tests are skipped, and under CI they fail.

Each tccli call costs about half a second of start-up, so these tests make a handful of calls each and let the Python
SDK (`scf`) do the cheap waiting where the client under test is not the point.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import zips
from harness.api import REGION, unique
from harness.server import REPO_ROOT, child_env

CLIENTS_DIR = REPO_ROOT / "tests" / "clients"
SCF_JS = CLIENTS_DIR / "scf.js"
TCCLI = Path(os.environ.get("STRATUS_TCCLI") or REPO_ROOT / ".venv-tccli" / "bin" / "tccli")
CALL_TIMEOUT = 60
WAIT_TIMEOUT = 15.0
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# tccli's error line on stderr (PROTOCOL.md section 1).
TCCLI_ERROR = re.compile(r"\[TencentCloudSDKException\] code:(\S+) message:(.*) requestId:(\S*)\s*$", re.DOTALL)
PY = zips.PY_RUNTIME
DESCRIPTION = "测试 client función"  # non-ASCII: tccli sends it \u-escaped, Node as raw UTF-8


def missing(why: str):
    why += " (scripts/test installs the clients)"
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def client_env(creds, home: Path | None = None) -> dict[str, str]:
    # No TENCENTCLOUD_* of the caller's (a TENCENTCLOUD_TOKEN would add X-TC-Token, a REGION would win): only ours.
    env = {k: v for k, v in child_env().items() if not k.startswith("TENCENTCLOUD_")}
    env["TENCENTCLOUD_SECRET_ID"] = creds.secret_id
    env["TENCENTCLOUD_SECRET_KEY"] = creds.secret_key
    if home is not None:
        env["HOME"] = str(home)
    return env


@dataclass
class ClientError(Exception):
    code: str
    message: str
    request_id: str
    trace_id: str | None = None

    def check(self, code: str) -> "ClientError":
        assert self.code == code, f"expected {code}, got {self.code}: {self.message}"
        assert UUID.match(self.request_id), f"{self.code}: RequestId {self.request_id!r}"
        assert self.message, f"{self.code}: empty message"
        return self


# ---------------------------------------------------------------------------------------------------------------
# tccli


class Tccli:
    """`tccli scf ACTION --region … --endpoint http://127.0.0.1:PORT`, credentials from the environment, a private
    HOME (tccli writes ~/.tccli/default.configure and a log there)."""

    def __init__(self, server, creds, home: Path, workdir: Path):
        self.endpoint = server.url  # tccli needs the scheme in --endpoint to speak plain http
        self.env = client_env(creds, home)
        self.workdir = workdir

    def run(self, action: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(TCCLI), "scf", action, "--region", REGION, "--endpoint", self.endpoint, "--output", "json", *args]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self.env,
                              timeout=CALL_TIMEOUT)

    def call(self, action: str, *args: str, **params) -> dict:
        """Run `action` with `--Key value` flags (and `args`) and return its JSON reply. Raises ClientError for an
        API error: exit status 255, the code on stderr."""
        flags = list(args)
        for k, v in params.items():
            flags += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
        out = self.run(action, *flags)
        if out.returncode == 0:
            try:
                return json.loads(out.stdout)
            except ValueError as e:
                raise AssertionError(f"tccli {action}: exit 0 but stdout is not JSON ({e}): {out.stdout!r}") from None
        assert out.returncode == 255, f"tccli {action}: exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
        assert out.stdout == "", f"tccli {action}: error, yet stdout has {out.stdout!r}"
        m = TCCLI_ERROR.search(out.stderr)
        assert m, f"tccli {action}: exit 255 without the SDK error line on stderr: {out.stderr!r}"
        raise ClientError(m.group(1), m.group(2), m.group(3))

    def call_file(self, action: str, params: dict) -> dict:
        """Parameters through `--cli-input-json file://…`: the only way for a real zip (argv is limited to
        128 KiB a string)."""
        path = self.workdir / f"{action}-{unique('in')}.json"
        path.write_text(json.dumps(params))
        return self.call(action, "--cli-input-json", f"file://{path}")

    def error(self, code: str, action: str, *args: str, **params) -> ClientError:
        try:
            got = self.call(action, *args, **params)
        except ClientError as e:
            return e.check(code)
        raise AssertionError(f"tccli {action}: expected {code}, but it succeeded: {got}")


@pytest.fixture(scope="module")
def tccli_home(tmp_path_factory) -> Path:
    if not TCCLI.exists():
        missing(f"tccli is not installed at {TCCLI}")
    return tmp_path_factory.mktemp("tccli-home")


@pytest.fixture
def tccli(scf, tccli_home, tmp_path) -> Tccli:
    return Tccli(scf.server, scf.creds, tccli_home, tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Node SDK


class NodeSdk:
    """tests/clients/scf.js: one typed ScfClient call, endpoint 127.0.0.1:PORT with protocol "http://"."""

    def __init__(self, server, creds, workdir: Path, node: str):
        self.endpoint = server.endpoint
        self.env = client_env(creds)
        self.workdir = workdir
        self.node = node

    def call(self, action: str, params: dict | None = None, *, real_endpoint: bool = False, **kw) -> dict:
        p = dict(params or {})
        p.update(kw)
        text = json.dumps(p, ensure_ascii=False)
        if len(text) > 8000:
            path = self.workdir / f"{action}-{unique('in')}.json"
            path.write_text(text, encoding="utf-8")
            text = f"file://{path}"
        cmd = [self.node, str(SCF_JS), "--endpoint", self.endpoint, *(["--real-endpoint"] if real_endpoint else []),
               action, text]
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self.env,
                             timeout=CALL_TIMEOUT, cwd=CLIENTS_DIR)
        assert out.returncode in (0, 1), f"scf.js {action}: exit {out.returncode}\n{out.stdout}{out.stderr}"
        reply = json.loads(out.stdout)
        if out.returncode == 0:
            assert reply["ok"] is True, reply
            return reply["response"]
        e = reply["error"]
        # The SDK reads err.code from Response.Error.Code and err.traceId from the reply's X-TC-TraceId header.
        raise ClientError(e["code"], e["message"], e["requestId"], e["traceId"])

    def error(self, code: str, action: str, params: dict | None = None, **kw) -> ClientError:
        try:
            got = self.call(action, params, **kw)
        except ClientError as e:
            return e.check(code)
        raise AssertionError(f"Node SDK {action}: expected {code}, but it succeeded: {got}")

    def wait(self, name: str, qualifier: str | None = None, want: str = "Active") -> dict:
        params = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
        deadline = time.monotonic() + WAIT_TIMEOUT
        seen = []
        while True:
            fn = self.call("GetFunction", params)
            if not seen or seen[-1] != fn["Status"]:
                seen.append(fn["Status"])
            if fn["Status"] == want:
                return fn
            assert fn["Status"] in ("Creating", "Updating", "Publishing"), f"{name}@{qualifier}: {seen}"
            assert time.monotonic() < deadline, f"{name}@{qualifier}: not {want} after {WAIT_TIMEOUT} s ({seen})"
            time.sleep(0.1)

    def wait_layer(self, layer: str, version: int) -> dict:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            lv = self.call("GetLayerVersion", LayerName=layer, LayerVersion=version)
            if lv["Status"] == "Active":
                return lv
            assert lv["Status"] == "Publishing", f"layer {layer} v{version}: {lv['Status']}"
            assert time.monotonic() < deadline, f"layer {layer} v{version}: still {lv['Status']}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def node_bin() -> str:
    node = shutil.which("node")
    if node is None:
        missing("node is not on PATH")
    if not (CLIENTS_DIR / "node_modules" / "tencentcloud-sdk-nodejs-scf").is_dir():
        missing(f"the Node SDK is not installed in {CLIENTS_DIR / 'node_modules'}")
    return node


@pytest.fixture
def node(scf, node_bin, tmp_path) -> NodeSdk:
    return NodeSdk(scf.server, scf.creds, tmp_path, node_bin)


# ---------------------------------------------------------------------------------------------------------------
# tccli


def test_tccli_function_lifecycle(tccli, scf):
    name = unique("tccli")
    code = zips.python_hello(name)
    # A real zip through --cli-input-json, with fields tccli must carry as JSON types (an int, a nested list).
    created = tccli.call_file("CreateFunction", {
        "FunctionName": name,
        "Code": {"ZipFile": zips.b64(code)},
        "Handler": zips.PY_HANDLER,
        "Runtime": PY,
        "MemorySize": 256,
        "Timeout": 7,
        "Description": DESCRIPTION,
        "Environment": {"Variables": [{"Key": "K", "Value": "v 1"}]},
    })
    assert UUID.match(created["RequestId"]), created
    # Wait Active with tccli's own GetFunction (bounded; preparation of a tiny zip takes well under a second).
    deadline = time.monotonic() + WAIT_TIMEOUT
    while (fn := tccli.call("GetFunction", FunctionName=name))["Status"] != "Active":
        assert fn["Status"] == "Creating", fn
        assert time.monotonic() < deadline, f"{name} still {fn['Status']}"
        time.sleep(0.2)
    assert (fn["FunctionName"], fn["FunctionVersion"], fn["Namespace"]) == (name, "$LATEST", "default")
    assert (fn["Runtime"], fn["Handler"], fn["MemorySize"], fn["Timeout"]) == (PY, zips.PY_HANDLER, 256, 7)
    assert fn["Description"] == DESCRIPTION
    assert fn["Environment"]["Variables"] == [{"Key": "K", "Value": "v 1"}]
    assert fn["CodeSize"] == len(code)

    # ListFunctions with plain flags: tccli turns "--Limit 10" into the number the API wants.
    listed = tccli.call("ListFunctions", SearchKey=name, Limit="10")
    assert listed["TotalCount"] == 1, listed
    assert [(f["FunctionName"], f["Status"], f["Description"]) for f in listed["Functions"]] == \
        [(name, "Active", DESCRIPTION)]

    pub = tccli.call("PublishVersion", FunctionName=name, Description="first version")
    assert (pub["FunctionVersion"], pub["Description"], pub["CodeSize"]) == ("1", "first version", len(code))
    v1 = scf.wait(name, qualifier="1")
    assert (v1["FunctionVersion"], v1["MemorySize"], v1["Description"]) == ("1", 256, "first version")

    deleted = tccli.call("DeleteFunction", FunctionName=name)
    assert UUID.match(deleted["RequestId"]), deleted
    scf.wait_gone(name)
    # The error path: exit status 255, the code and the RequestId on stderr.
    tccli.error("ResourceNotFound.Function", "GetFunction", FunctionName=name)
    assert name not in scf.function_names()


def test_tccli_errors(tccli, scf):
    e = tccli.error("ResourceNotFound.Function", "PublishVersion", FunctionName=unique("absent"))
    assert e.message
    # The signature is really checked on tccli's `Host: http://127.0.0.1:PORT` requests: a wrong key is refused.
    tccli.env["TENCENTCLOUD_SECRET_KEY"] = scf.creds.secret_key[::-1]
    tccli.error("AuthFailure.SignatureFailure", "ListFunctions")


# ---------------------------------------------------------------------------------------------------------------
# Node SDK


def test_node_function_lifecycle(node, scf):
    name = unique("node")
    code = zips.python_hello(name)
    created = node.call("CreateFunction", {
        "FunctionName": name,
        "Code": {"ZipFile": zips.b64(code)},
        "Handler": zips.PY_HANDLER,
        "Runtime": PY,
        "MemorySize": 384,
        "Description": DESCRIPTION,
        "Environment": {"Variables": [{"Key": "GREETING", "Value": "hello"}]},
    })
    assert UUID.match(created["RequestId"]), created
    fn = node.wait(name)
    assert (fn["FunctionName"], fn["FunctionVersion"], fn["Status"]) == (name, "$LATEST", "Active")
    assert (fn["Runtime"], fn["Handler"], fn["MemorySize"], fn["CodeSize"]) == (PY, zips.PY_HANDLER, 384, len(code))
    assert fn["Description"] == DESCRIPTION
    assert fn["Environment"]["Variables"] == [{"Key": "GREETING", "Value": "hello"}]

    listed = node.call("ListFunctions", SearchKey=name, Limit=10)
    assert listed["TotalCount"] == 1, listed
    assert [(f["FunctionName"], f["Status"]) for f in listed["Functions"]] == [(name, "Active")]

    pub = node.call("PublishVersion", FunctionName=name, Description="node v1")
    assert (pub["FunctionVersion"], pub["Description"]) == ("1", "node v1")
    v1 = node.wait(name, qualifier="1")
    assert (v1["FunctionVersion"], v1["Description"], v1["MemorySize"]) == ("1", "node v1", 384)
    pub2 = node.call("PublishVersion", FunctionName=name)
    assert pub2["FunctionVersion"] == "2"
    versions = node.call("ListVersionByFunction", FunctionName=name)
    assert sorted(v["Version"] for v in versions["Versions"]) == ["$LATEST", "1", "2"], versions

    node.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)
    e = node.error("ResourceNotFound.Function", "GetFunction", FunctionName=name)
    # The server echoes the SDK's X-TC-TraceId; the SDK reads it back into err.traceId.
    assert e.trace_id and UUID.match(e.trace_id), e


def test_node_layers(node):
    layer = unique("nodelayer")
    content = zips.layer_content("nodelib.py")
    r = node.call("PublishLayerVersion", LayerName=layer, CompatibleRuntimes=[PY, "Nodejs18.15"],
                  Content={"ZipFile": zips.b64(content)}, Description=DESCRIPTION, LicenseInfo="MIT")
    assert r["LayerVersion"] == 1, r
    lv = node.wait_layer(layer, 1)
    assert (lv["LayerName"], lv["LayerVersion"], lv["Status"]) == (layer, 1, "Active")
    assert lv["CompatibleRuntimes"] == [PY, "Nodejs18.15"]
    assert (lv["Description"], lv["LicenseInfo"]) == (DESCRIPTION, "MIT")
    assert lv["CodeSha256"] == hashlib.sha256(content).hexdigest()

    r2 = node.call("PublishLayerVersion", LayerName=layer, CompatibleRuntimes=[PY],
                   Content={"ZipFile": zips.b64(zips.layer_content("other.py"))})
    assert r2["LayerVersion"] == 2, r2
    node.error("ResourceNotFound.LayerVersion", "GetLayerVersion", LayerName=layer, LayerVersion=9)


def test_node_real_looking_endpoint(node, scf):
    """Endpoint scf.tencentcloudapi.com:PORT resolved to 127.0.0.1 by an agent: the SDK signs with the scope
    service `scf` (not `127`) and the host without the port, and sends `Host: scf.tencentcloudapi.com:PORT`."""
    name = scf.create_function(Description="seen through a real-looking endpoint")
    fn = node.call("GetFunction", FunctionName=name, real_endpoint=True)
    assert (fn["FunctionName"], fn["Status"], fn["Description"]) == (name, "Active", "seen through a real-looking endpoint")
    node.error("ResourceNotFound.Function", "GetFunction", FunctionName=unique("absent"), real_endpoint=True)
