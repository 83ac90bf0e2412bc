"""Concurrency limits through the official SDK, counted as SCF counts them (the memory of the instances running at
once): PutReservedConcurrencyConfig / GetReservedConcurrencyConfig / DeleteReservedConcurrencyConfig,
PutTotalConcurrencyConfig, what GetAccount shows, the 432 of a synchronous call over a limit and the retry of an
asynchronous one, on both backends; and one reservation held between two nodes on one PostgreSQL database."""
from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.api import Scf, make_client, unique
from harness.server import binary, child_env
from harness.zips import Entry, build

# A 1024 MB account quota of which reservations must leave 128 MB, and a 2 s lease of a node's shares.
ENV = {
    "STRATUS_CONCURRENCY_QUOTA_MB": "1024",
    "STRATUS_CONCURRENCY_MIN_UNRESERVED_MB": "128",
    "STRATUS_CONCURRENCY_LEASE_SECS": "2",
    "STRATUS_EVENT_BACKOFF_MS": "200",
    "STRATUS_EVENT_POLL_MS": "100",
}
# Long enough that every call of a burst reaches admission while the admitted ones still run.
SLEEP = 4
SLOW = f"import time\ndef main_handler(event, context):\n    time.sleep(event.get('sleep', {SLEEP}))\n    return 'done'\n"


def _zip(body: str) -> bytes:
    return build([Entry("index.py", body.encode(), mode=stat.S_IFREG | 0o644)])


@pytest.fixture
def cscf(stratus) -> Scf:
    srv = stratus(env=ENV)
    return Scf(srv.client(), srv, srv.creds)


def slow_function(scf: Scf, namespace: str | None = None, memory: int = 128) -> str:
    return scf.create_function(zip_bytes=_zip(SLOW), MemorySize=memory, Timeout=30, namespace=namespace)


def invoke(client, name: str, namespace: str | None = None, event: dict | None = None) -> dict:
    p = {"FunctionName": name, "ClientContext": json.dumps(event or {})}
    if namespace:
        p["Namespace"] = namespace
    return Scf(client).call("Invoke", p)["Result"]


def status_of(result: dict) -> int:
    if result["InvokeResult"] == 0:
        return 200
    return json.loads(result["ErrMsg"])["statusCode"]


def burst(clients: list, name: str, n: int, namespace: str | None = None) -> list[dict]:
    """`n` parallel synchronous calls, spread over `clients` in turn (one SDK client per call)."""
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(invoke, clients[i % len(clients)](), name, namespace) for i in range(n)]
        return [f.result(timeout=120) for f in futures]


def counts(results: list[dict]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in results:
        out[status_of(r)] = out.get(status_of(r), 0) + 1
    return out


def reserve(scf: Scf, name: str, mem: int, namespace: str | None = None):
    p = {"FunctionName": name, "ReservedConcurrencyMem": mem}
    if namespace:
        p["Namespace"] = namespace
    scf.call("PutReservedConcurrencyConfig", p)


def reserved(scf: Scf, name: str, namespace: str | None = None):
    p = {"FunctionName": name}
    if namespace:
        p["Namespace"] = namespace
    return scf.call("GetReservedConcurrencyConfig", p)["ReservedMem"]


def usage(scf: Scf, namespace: str = "default") -> dict:
    acct = scf.call("GetAccount")["AccountUsage"]
    (ns,) = [n for n in acct["Namespace"] if n["Namespace"] == namespace]
    return {**acct, "ns": ns}


def test_reserved_concurrency_is_set_read_and_deleted_within_scf_bounds(cscf):
    scf = cscf
    f1, f2 = slow_function(scf), slow_function(scf)
    assert reserved(scf, f1) is None
    reserve(scf, f1, 256)
    assert reserved(scf, f1) == 256
    reserve(scf, f1, 384)  # a second Put replaces the first
    assert reserved(scf, f1) == 384
    listed = {f["FunctionName"]: f for f in scf.call("ListFunctions", Limit=100)["Functions"]}
    assert listed[f1]["ReservedConcurrencyMem"] == 384 and listed[f2]["ReservedConcurrencyMem"] == 0
    acct = usage(scf)
    assert acct["TotalConcurrencyMem"] == 1024 and acct["UserConcurrencyMemLimit"] == 1024
    assert acct["TotalAllocatedConcurrencyMem"] == 384
    # Reservations together may take the quota less 128 MB: 384 + 512 = 896 fits, one more MB does not.
    scf.error("LimitExceeded.FunctionReservedConcurrencyMemory", "PutReservedConcurrencyConfig",
              FunctionName=f2, ReservedConcurrencyMem=513)
    reserve(scf, f2, 512)
    assert usage(scf)["TotalAllocatedConcurrencyMem"] == 896
    scf.error("LimitExceeded.FunctionReservedConcurrencyMemory", "PutReservedConcurrencyConfig",
              FunctionName=f1, ReservedConcurrencyMem=1024)
    scf.error("ResourceNotFound.Function", "PutReservedConcurrencyConfig",
              FunctionName=unique("nope"), ReservedConcurrencyMem=128)
    scf.error("ResourceNotFound.Namespace", "PutReservedConcurrencyConfig",
              FunctionName=f1, ReservedConcurrencyMem=128, Namespace="nosuchns")
    scf.error("ResourceNotFound.Function", "GetReservedConcurrencyConfig", FunctionName=unique("nope"))
    scf.error("ResourceNotFound.Function", "DeleteReservedConcurrencyConfig", FunctionName=unique("nope"))
    scf.error("MissingParameter", "PutReservedConcurrencyConfig", FunctionName=f1)
    scf.error("MissingParameter", "GetReservedConcurrencyConfig")
    scf.call("DeleteReservedConcurrencyConfig", FunctionName=f1)
    assert reserved(scf, f1) is None
    assert usage(scf)["TotalAllocatedConcurrencyMem"] == 512
    # A deleted function takes its reservation with it: the same name starts without one.
    scf.call("DeleteFunction", FunctionName=f2)
    scf.wait_gone(f2)
    assert usage(scf)["TotalAllocatedConcurrencyMem"] == 0
    scf.create_function(f2, zip_bytes=_zip(SLOW))
    assert reserved(scf, f2) is None


def test_namespace_total_is_bounded_by_the_quota_and_its_reservations(cscf):
    scf = cscf
    ns = unique("ns")
    scf.call("CreateNamespace", Namespace=ns)
    f = slow_function(scf, namespace=ns)
    scf.error("LimitExceeded.TotalConcurrencyMemory", "PutTotalConcurrencyConfig", TotalConcurrencyMem=1025,
              Namespace=ns)
    scf.error("ResourceNotFound.Namespace", "PutTotalConcurrencyConfig", TotalConcurrencyMem=512,
              Namespace="nosuchns")
    scf.error("MissingParameter", "PutTotalConcurrencyConfig", Namespace=ns)
    assert usage(scf, ns)["ns"]["TotalConcurrencyMem"] == 0, "no total of its own yet"
    reserve(scf, f, 256, namespace=ns)
    # The total must cover the namespace's reservations plus 128 MB.
    scf.error("InvalidParameterValue.TotalConcurrencyMem", "PutTotalConcurrencyConfig", TotalConcurrencyMem=383,
              Namespace=ns)
    scf.call("PutTotalConcurrencyConfig", TotalConcurrencyMem=512, Namespace=ns)
    assert usage(scf, ns)["ns"]["TotalConcurrencyMem"] == 512
    # And a reservation must leave 128 MB of the total unreserved.
    g = slow_function(scf, namespace=ns)
    scf.error("FailedOperation.ReservedExceedTotal", "PutReservedConcurrencyConfig", FunctionName=g,
              ReservedConcurrencyMem=129, Namespace=ns)
    reserve(scf, g, 128, namespace=ns)
    # Namespace defaults to `default`.
    scf.call("PutTotalConcurrencyConfig", TotalConcurrencyMem=640)
    assert usage(scf)["ns"]["TotalConcurrencyMem"] == 640


def test_a_reservation_caps_its_function_exactly_and_getaccount_shows_the_running_memory(cscf):
    scf = cscf
    name = slow_function(scf)
    reserve(scf, name, 256)  # two 128 MB instances
    clients = [lambda: scf.server.client()]
    with ThreadPoolExecutor(max_workers=1) as side:
        pending = side.submit(burst, clients, name, 20)
        # The refusals come back at once; the two admitted calls run for SLEEP seconds.
        deadline = time.monotonic() + SLEEP - 1
        seen = 0
        while time.monotonic() < deadline:
            seen = usage(scf)["ns"]["TotalAllocatedConcurrencyMem"]
            if seen == 256:
                break
            time.sleep(0.1)
        assert seen == 256, "GetAccount shows the memory of the two running instances"
        results = pending.result(timeout=120)
    assert counts(results) == {200: 2, 432: 18}, counts(results)
    throttled = next(json.loads(r["ErrMsg"]) for r in results if status_of(r) == 432)
    assert "ResourceLimitReached" in throttled["errorMessage"] and "2 concurrent" in throttled["errorMessage"]
    assert usage(scf)["ns"]["TotalAllocatedConcurrencyMem"] == 0
    # The capacity comes back when the calls end.
    assert counts(burst(clients, name, 2)) == {200: 2}


def test_a_reservation_keeps_its_capacity_while_another_function_floods_the_account(cscf):
    scf = cscf
    guarded, flood = slow_function(scf), slow_function(scf)
    reserve(scf, guarded, 256)
    clients = [lambda: scf.server.client()]
    with ThreadPoolExecutor(max_workers=2) as side:
        flooding = side.submit(burst, clients, flood, 20)
        time.sleep(1.0)
        guarded_calls = side.submit(burst, clients, guarded, 2)
        # The unreserved pool is the quota less the reservation: 768 MB, six instances.
        assert counts(flooding.result(timeout=120)) == {200: 6, 432: 14}
        assert counts(guarded_calls.result(timeout=120)) == {200: 2}


def test_a_namespace_total_and_the_account_quota_hold(cscf):
    scf = cscf
    ns = unique("ns")
    scf.call("CreateNamespace", Namespace=ns)
    scf.call("PutTotalConcurrencyConfig", TotalConcurrencyMem=384, Namespace=ns)
    f = slow_function(scf, namespace=ns)
    clients = [lambda: scf.server.client()]
    assert counts(burst(clients, f, 10, namespace=ns)) == {200: 3, 432: 7}
    # The account quota: 1024 MB of 256 MB instances is four, across functions.
    big1, big2 = slow_function(scf, memory=256), slow_function(scf, memory=256)
    with ThreadPoolExecutor(max_workers=1) as side:
        first = side.submit(burst, clients, big1, 10)
        time.sleep(1.5)
        r = invoke(scf.client, big2)
        assert status_of(r) == 432, r
        assert counts(first.result(timeout=120)) == {200: 4, 432: 6}
    assert status_of(invoke(scf.client, big2, event={"sleep": 0})) == 200


def test_an_asynchronous_event_over_the_limit_is_retried_as_a_throttle(cscf):
    scf = cscf
    name = slow_function(scf)
    reserve(scf, name, 128)  # one instance
    with ThreadPoolExecutor(max_workers=1) as side:
        busy = side.submit(invoke, scf.server.client(), name, None, {"sleep": 3})
        time.sleep(1.0)
        rid = scf.call("Invoke", FunctionName=name, InvocationType="Event",
                       ClientContext=json.dumps({"sleep": 0}))["Result"]["FunctionRequestId"]
        time.sleep(1.0)
        st = scf.call("GetAsyncEventStatus", InvokeRequestId=rid)["Result"]
        assert st["Status"] == "RUNNING", st
        assert status_of(busy.result(timeout=30)) == 200
    deadline = time.monotonic() + 30
    while True:
        st = scf.call("GetAsyncEventStatus", InvokeRequestId=rid)["Result"]
        if st["Status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.2)
    assert st["Status"] == "FINISHED" and st["StatusCode"] == 200, st
    data = scf.call("GetFunctionLogs", FunctionName=name, FunctionRequestId=rid, Limit=100, Order="asc")["Data"]
    codes = [d["RetCode"] for d in data]
    assert codes[-1] == 0, data


# --- two nodes ------------------------------------------------------------------------------------------------

BANNER = re.compile(r"^stratus listening on http://127\.0\.0\.1:(\d+)$")


class OtherNode:
    """Another `stratus serve` on its own data dir and the first node's database."""

    def __init__(self, database_url: str, env: dict[str, str]):
        self.root = Path(tempfile.mkdtemp(prefix="stratus-conc-node-"))
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--data-dir", str(self.root / "data"), "--listen", "127.0.0.1:0",
             "--database-url", database_url],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(self.root / "stderr.log", "wb"),
            env=child_env(env), text=True, start_new_session=True,
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
        assert self.port, f"the other node did not start: {(self.root / 'stderr.log').read_text()[-2000:]}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def test_two_nodes_hold_one_reservation_between_them(stratus, backend):
    if backend.name != "postgres":
        pytest.skip("a cluster shares a PostgreSQL database")
    first = stratus(env=ENV)
    scf = Scf(first.client(), first, first.creds)
    name = slow_function(scf)
    other = OtherNode(first.database_url, ENV)
    try:
        on_other = lambda: make_client(f"127.0.0.1:{other.port}", first.creds)  # noqa: E731
        on_first = lambda: first.client()  # noqa: E731
        # The second node learns of the reservation from the database at its first call.
        reserve(scf, name, 256)
        # Twenty calls, half through each node: two run in the whole cluster.
        with ThreadPoolExecutor(max_workers=1) as side:
            pending = side.submit(burst, [on_first, on_other], name, 20)
            deadline = time.monotonic() + SLEEP - 1
            seen = 0
            while time.monotonic() < deadline:
                seen = usage(Scf(on_other()))["ns"]["TotalAllocatedConcurrencyMem"]
                if seen == 256:
                    break
                time.sleep(0.1)
            results = pending.result(timeout=120)
        assert counts(results) == {200: 2, 432: 18}, counts(results)
        assert seen == 256, "either node's GetAccount shows what the whole cluster runs"
        # Idle shares flow back within a couple of renewals: then one node alone can run both instances.
        time.sleep(3)
        assert counts(burst([on_other], name, 20)) == {200: 2, 432: 18}
        time.sleep(3)
        assert counts(burst([on_first], name, 20)) == {200: 2, 432: 18}
        # While the other node runs both instances, the first has none to give; once the other node stopped
        # (giving its shares up), the first runs both.
        time.sleep(3)
        with ThreadPoolExecutor(max_workers=1) as side:
            running = side.submit(burst, [on_other], name, 2)
            time.sleep(1.5)
            assert status_of(invoke(first.client(), name, event={"sleep": 0})) == 432
            assert counts(running.result(timeout=60)) == {200: 2}
        other.stop()
        assert counts(burst([on_first], name, 2)) == {200: 2}
    finally:
        other.stop()


def test_the_share_of_a_node_killed_mid_call_lapses_with_its_lease(stratus, backend):
    if backend.name != "postgres":
        pytest.skip("a cluster shares a PostgreSQL database")
    first = stratus(env=ENV)
    scf = Scf(first.client(), first, first.creds)
    name = slow_function(scf)
    reserve(scf, name, 256)
    other = OtherNode(first.database_url, ENV)
    try:
        on_other = lambda: make_client(f"127.0.0.1:{other.port}", first.creds)  # noqa: E731
        with ThreadPoolExecutor(max_workers=1) as side:
            running = side.submit(burst, [on_other], name, 2)
            time.sleep(1.5)
            assert status_of(invoke(first.client(), name, event={"sleep": 0})) == 432
            other.proc.kill()
            killed = time.monotonic()
            with pytest.raises(Exception):
                running.result(timeout=60)
        # The dead node's share still counts until its lease (2 s from its last renewal) lapses, then the first
        # node takes the whole reservation.
        assert status_of(invoke(first.client(), name, event={"sleep": 0})) == 432
        while True:
            r = invoke(first.client(), name, event={"sleep": 0})
            if status_of(r) == 200:
                break
            assert time.monotonic() - killed < 6, "the dead node's share outlived its lease"
            time.sleep(0.1)
        assert counts(burst([lambda: first.client()], name, 3)) == {200: 2, 432: 1}
    finally:
        other.stop()
