"""Two nodes sharing one PostgreSQL database (the cluster mode): a package uploaded through one node is prepared
by the other node's workers, which fetch it from the shared blob table; each node's lifecycle workers claim
operations exclusively."""
import hashlib
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import zips
from harness.api import Scf, make_client, unique
from harness.server import binary, child_env

BANNER = re.compile(r"^stratus listening on http://127\.0\.0\.1:(\d+)$")


class SecondNode:
    """Another `stratus serve` on its own data dir and the first node's database."""

    def __init__(self, database_url: str):
        self.root = Path(tempfile.mkdtemp(prefix="stratus-node2-"))
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--data-dir", str(self.root / "data"), "--listen", "127.0.0.1:0",
             "--database-url", database_url],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(self.root / "stderr.log", "wb"),
            env=child_env({"STRATUS_WORKERS": "2"}), text=True, start_new_session=True,
        )
        deadline = time.monotonic() + 20
        self.port = None
        assert self.proc.stdout is not None
        while time.monotonic() < deadline and self.port is None:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = BANNER.match(line.strip())
            if m:
                self.port = int(m.group(1))
        assert self.port, f"second node did not start: {(self.root / 'stderr.log').read_text()[-2000:]}"

    def blob_path(self, sha256: str) -> Path:
        return self.root / "data" / "blobs" / sha256

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def cluster(stratus, backend):
    if backend.name != "postgres":
        pytest.skip("a cluster shares a PostgreSQL database")
    # The first node serves the API only: every operation is prepared by the second node.
    first = stratus(env={"STRATUS_WORKERS": "0"})
    second = SecondNode(first.database_url)
    try:
        yield first, second
    finally:
        second.stop()


def test_package_uploaded_through_one_node_is_prepared_by_another(cluster):
    first, second = cluster
    api_node = Scf(first.client(), first, first.creds)
    worker_node = Scf(make_client(f"127.0.0.1:{second.port}", first.creds), None, first.creds)
    name = unique("clu")
    package = zips.python_hello()
    api_node.create_function(name, zip_bytes=package, wait=False)
    fn = api_node.wait(name, timeout=20)
    assert fn["Status"] == "Active", fn
    sha = hashlib.sha256(package).hexdigest()
    # A small package lives in the shared table only: the preparing node checked it from there, writing no file.
    assert not second.blob_path(sha).exists(), "preparing a small package writes no file"
    # Both nodes see the same record.
    assert worker_node.get(name)["Status"] == "Active"
    # A download link handed out by the node that never received the upload serves the right bytes.
    addr = worker_node.call("GetFunctionAddress", FunctionName=name)
    assert addr["CodeSha256"] == sha
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(addr["Url"], timeout=10) as r:
        assert hashlib.sha256(r.read()).hexdigest() == sha


def test_operations_from_both_nodes_finish_once(cluster):
    first, second = cluster
    a = Scf(first.client(), first, first.creds)
    b = Scf(make_client(f"127.0.0.1:{second.port}", first.creds), None, first.creds)
    names = [unique("clu") for _ in range(10)]
    for i, name in enumerate(names):
        (a if i % 2 else b).create_function(name, wait=False)
    for name in names:
        assert a.wait(name, timeout=20)["Status"] == "Active"
    for name in names[:5]:
        b.publish_version(name)
    for name in names[:5]:
        versions = a.call("ListVersionByFunction", FunctionName=name)
        assert versions["FunctionVersion"] == ["$LATEST", "1"], versions
        assert {v["Status"] for v in versions["Versions"]} == {"Active"}
