"""Durability (lifecycle.md "Durability rules"): 200 concurrent management calls through the SDK, `kill -9` of the
server while they are in flight, a restart on the same data dir and database, and then, within 15 s and without any
client doing anything: every acknowledged create exists and is Active, every acknowledged update is applied, every
acknowledged publish exists, every acknowledged delete is gone, and no record anywhere is stuck in a transitional
status."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from harness import zips
from harness.api import FUNCTION_TERMINAL, Scf, build_request, unique

RECOVERY_DEADLINE = 15.0
WORKERS = 16


class Workload:
    """Seeds functions, then runs a shuffled mix of creates, updates, publishes and deletes from a thread pool,
    recording which calls the server acknowledged."""

    def __init__(self, srv, creates: int, updates: int, publishes: int, deletes: int, payload: int):
        self.srv = srv
        self.payload = payload
        scf = Scf(srv.client())
        seeds = [unique("seed") for _ in range(updates + publishes + deletes)]
        for name in seeds:
            scf.create_function(name, wait=None)
        for name in seeds:
            scf.wait(name, timeout=60)
        self.ops = (
            [("create", unique("crash")) for _ in range(creates)]
            + [("update", n) for n in seeds[:updates]]
            + [("publish", n) for n in seeds[updates:updates + publishes]]
            + [("delete", n) for n in seeds[updates + publishes:]]
        )
        random.shuffle(self.ops)
        self.acked: dict[tuple[str, str], object] = {}
        self.failed: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()
        self.local = threading.local()
        self.enough = threading.Event()
        self.kill_after = 0

    def _client(self):
        if not hasattr(self.local, "client"):
            self.local.client = self.srv.client()
        return self.local.client

    def _one(self, op: tuple[str, str]) -> None:
        kind, name = op
        client = self._client()
        try:
            if kind == "create":
                code = zips.python_hello(name, extra={"pad.bin": random.randbytes(self.payload)})
                client.CreateFunction(build_request("CreateFunction", {
                    "FunctionName": name, "Runtime": zips.PY_RUNTIME, "Handler": zips.PY_HANDLER,
                    "Code": {"ZipFile": zips.b64(code)}, "Description": f"created {name}"}))
                result = None
            elif kind == "update":
                client.UpdateFunctionConfiguration(build_request("UpdateFunctionConfiguration", {
                    "FunctionName": name, "Description": f"updated {name}", "MemorySize": 256}))
                result = None
            elif kind == "publish":
                r = client.PublishVersion(build_request("PublishVersion", {"FunctionName": name}))
                result = r.FunctionVersion
            else:
                client.DeleteFunction(build_request("DeleteFunction", {"FunctionName": name}))
                result = None
        except TencentCloudSDKException as e:
            with self.lock:
                self.failed[op] = str(e.code)
            return
        with self.lock:
            self.acked[op] = result
            if len(self.acked) >= self.kill_after:
                self.enough.set()

    def run_and_crash(self, kill_fraction: float) -> None:
        self.kill_after = max(1, int(len(self.ops) * kill_fraction))
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [pool.submit(self._one, op) for op in self.ops]
            assert self.enough.wait(timeout=300), f"only {len(self.acked)} calls acknowledged in 300 s"
            self.srv.kill9()
            for f in futures:
                f.result(timeout=180)
        assert len(self.acked) < len(self.ops), "everything finished before the crash: the test proves nothing"
        # Before the crash nothing may fail for another reason than the crash itself.
        for op, code in self.failed.items():
            assert code == "ClientNetworkError", (op, code)

    def verify_recovered(self) -> None:
        scf = Scf(self.srv.client())
        deadline = time.monotonic() + RECOVERY_DEADLINE
        pending = dict(self.acked)
        problems: dict = {}
        while True:
            for op, result in list(pending.items()):
                problem = self._check(scf, op, result)
                if problem is None:
                    del pending[op]
                    problems.pop(op, None)
                else:
                    problems[op] = problem
            stuck = self._stuck(scf)
            if not pending and not stuck:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{RECOVERY_DEADLINE:.0f} s after the restart: {len(pending)} acknowledged calls not reflected "
                    f"(e.g. {list(problems.items())[:5]}); records still transitional: {stuck[:10]}"
                )
            time.sleep(0.25)

    @staticmethod
    def _check(scf: Scf, op: tuple[str, str], result) -> str | None:
        kind, name = op
        try:
            fn = scf.get(name)
        except TencentCloudSDKException as e:
            if kind == "delete" and e.code == "ResourceNotFound.Function":
                return None
            return f"GetFunction: {e.code}"
        if kind == "delete":
            return f"still {fn['Status']}"
        # A valid package and a valid change: the only right outcome is Active.
        if fn["Status"] != "Active":
            return f"{fn['Status']} {fn['StatusReasons']}"
        if kind == "create" and fn["Description"] != f"created {name}":
            return f"Description {fn['Description']!r}"
        if kind == "update" and (fn["Description"], fn["MemorySize"]) != (f"updated {name}", 256):
            return f"update lost: {fn['Description']!r} {fn['MemorySize']}"
        if kind == "publish":
            try:
                v = scf.get(name, qualifier=result)
            except TencentCloudSDKException as e:
                return f"version {result}: {e.code}"
            if v["Status"] != "Active":
                return f"version {result}: {v['Status']} {v['StatusReasons']}"
        return None

    @staticmethod
    def _stuck(scf: Scf) -> list[str]:
        stuck = []
        offset = 0
        for _ in range(100):
            r = scf.call("ListFunctions", Offset=offset, Limit=100)
            for f in r["Functions"]:
                if f["Status"] not in FUNCTION_TERMINAL:
                    stuck.append(f"{f['FunctionName']}:{f['Status']}")
            offset += len(r["Functions"])
            if not r["Functions"] or offset >= r["TotalCount"]:
                break
        return stuck


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill9_under_load_loses_nothing_and_leaves_nothing_stuck(stratus):
    srv = stratus()
    w = Workload(srv, creates=130, updates=25, publishes=20, deletes=25, payload=256 << 10)
    assert len(w.ops) == 200
    w.run_and_crash(kill_fraction=0.35)
    srv.restart()
    w.verify_recovered()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill9_again_during_recovery(stratus):
    srv = stratus()
    w = Workload(srv, creates=50, updates=5, publishes=5, deletes=5, payload=512 << 10)
    w.run_and_crash(kill_fraction=0.3)
    srv.restart()
    time.sleep(0.2)  # let recovery start, then crash it too
    srv.kill9()
    srv.restart()
    w.verify_recovered()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_graceful_stop_under_load_loses_nothing(stratus):
    # SIGTERM while calls are in flight: it still exits 0, and nothing acknowledged is lost.
    srv = stratus()
    w = Workload(srv, creates=40, updates=5, publishes=5, deletes=5, payload=256 << 10)
    w.kill_after = 15
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(w._one, op) for op in w.ops]
        assert w.enough.wait(timeout=300)
        assert srv.stop() == 0
        for f in futures:
            f.result(timeout=180)
    for op, code in w.failed.items():
        assert code == "ClientNetworkError", (op, code)
    srv.restart()
    w.verify_recovered()
