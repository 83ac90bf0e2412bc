"""Timer ticks on a cluster (two nodes sharing one PostgreSQL database, both scheduling): a timer firing every
second for 60 s, with one node killed (kill -9) and restarted meanwhile, produces exactly one event per tick, with
no duplicate and no gap (one node is always up, so no tick is ever missed for longer than the late window)."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.api import Scf, make_client
from harness.server import binary, child_env
from test_timers import code, tick_secs, timer, timer_events

BANNER = re.compile(r"^stratus listening on http://127\.0\.0\.1:(\d+)$")
NODE_ENV = {"STRATUS_EVENT_POLL_MS": "100", "STRATUS_EVENT_LEASE_SECS": "2", "STRATUS_WORKERS": "2"}
RUN_SECS = 60


class Node:
    """Another `stratus serve` on its own data dir and the first node's database."""

    def __init__(self, database_url: str):
        self.root = Path(tempfile.mkdtemp(prefix="stratus-timer-node-"))
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--data-dir", str(self.root / "data"), "--listen", "127.0.0.1:0",
             "--database-url", database_url],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(self.root / "stderr.log", "wb"),
            env=child_env(NODE_ENV), text=True, start_new_session=True,
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

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def two_nodes(stratus, backend):
    if backend.name != "postgres":
        pytest.skip("a cluster shares a PostgreSQL database")
    first = stratus(env=NODE_ENV)
    second = Node(first.database_url)
    try:
        yield first, second
    finally:
        second.stop()


def runs_by_tick(scf: Scf, fn: str) -> dict[int, set[str]]:
    """The request ids of the function's finished runs, by the tick their event carries."""
    by_tick: dict[int, set[str]] = collections.defaultdict(set)
    offset = 0
    while True:
        page = scf.call("GetFunctionLogs", {"FunctionName": fn, "Limit": 100, "Offset": offset, "Order": "asc"})
        for d in page["Data"]:
            if d["RetCode"] == 0:
                by_tick[tick_secs(json.loads(d["RetMsg"])["event"])].add(d["RequestId"])
        offset += len(page["Data"])
        if not page["Data"] or offset >= page["TotalCount"]:
            break
    return by_tick


def test_one_event_per_tick_with_a_node_killed_and_restarted(two_nodes):
    first, second = two_nodes
    a = Scf(first.client(), first, first.creds)
    b = Scf(make_client(f"127.0.0.1:{second.port}", first.creds), None, first.creds)
    fn = a.create_function(zip_bytes=code("A"))
    b.wait(fn)
    created = time.time()
    timer(a, fn, "every-second")
    time.sleep(RUN_SECS / 4)
    first.kill9()
    killed_at = time.time()
    time.sleep(RUN_SECS / 4)
    first.restart()
    restarted_at = time.time()
    a = Scf(first.client(), first, first.creds)
    time.sleep(max(0.0, created + RUN_SECS - time.time()))
    b.call("DeleteTrigger", FunctionName=fn, Type="timer", TriggerName="every-second")
    deleted = time.time()
    # Every event ends (one the killed node was running is run again by the survivor once its lease lapses).
    deadline = time.monotonic() + 30
    while True:
        events = timer_events(b, fn)
        if all(e["Status"] != "RUNNING" for e in events):
            break
        assert time.monotonic() < deadline, [e for e in events if e["Status"] == "RUNNING"]
        time.sleep(0.5)
    deadline = time.monotonic() + 20
    while True:
        by_tick = runs_by_tick(b, fn)
        if sum(len(r) for r in by_tick.values()) >= len(events):
            break
        assert time.monotonic() < deadline, (len(events), by_tick)
        time.sleep(0.5)

    ticks = sorted(by_tick)
    expected = list(range(ticks[0], ticks[-1] + 1))
    missing = sorted(set(expected) - set(ticks))
    doubled = {t: ids for t, ids in by_tick.items() if len(ids) > 1}
    statuses = collections.Counter(e["Status"] for e in events)
    print(f"\ntimer cluster run: {len(ticks)} ticks from {ticks[0]} to {ticks[-1]} "
          f"(node 1 killed at +{killed_at - created:.1f} s, restarted at +{restarted_at - created:.1f} s, "
          f"trigger deleted at +{deleted - created:.1f} s); {len(events)} events {dict(statuses)}; "
          f"ticks with more than one event: {len(doubled)}; ticks missing: {len(missing)}")
    assert not doubled, f"ticks with more than one event: {doubled}"
    assert not missing, f"ticks without an event: {missing}"
    assert len(events) == len(ticks), (len(events), len(ticks))
    assert statuses == {"FINISHED": len(events)}, statuses
    assert ticks[0] <= int(created) + 2 and ticks[-1] >= int(deleted) - 2, (created, deleted, ticks[0], ticks[-1])
    assert len(ticks) >= RUN_SECS - 3
