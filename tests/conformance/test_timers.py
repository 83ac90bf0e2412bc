"""Timer triggers fire (events.md "Timers"), through the official SDK: a second-level timer fires once per tick with
SCF's timer event `{"Type":"Timer","TriggerName","Time","Message"}` as an asynchronous event of invoke type
TRIGGER_TIMER; UpdateTriggerStatus CLOSE stops it and OPEN resumes from the next tick; DeleteTrigger stops it; a
timer bound to a version runs that version and one bound to an alias follows the alias; and across a restart a
missed tick fires once, late, within the late window, while one older than the window is recorded as skipped
(logged and counted in /metrics), never fired."""

from __future__ import annotations

import base64
import json
import re
import stat
import time
import urllib.request
from datetime import datetime, timezone

import pytest

from harness.api import Scf
from harness.server import StratusServer
from harness.zips import Entry, build

EVERY_SECOND = "*/1 * * * * * *"
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TIMER_ENV = {"STRATUS_EVENT_POLL_MS": "100"}

HANDLER = """
def main_handler(event, context):
    return {"event": event, "version": context["function_version"], "code": %r, "rid": context["request_id"]}
"""


def code(marker: str) -> bytes:
    return build([Entry("index.py", (HANDLER % marker).encode(), mode=stat.S_IFREG | 0o644)])


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


@pytest.fixture(scope="module")
def timer_server(backend):
    srv = StratusServer(backend, env=TIMER_ENV)
    try:
        srv.start()
        yield srv
    finally:
        srv.destroy()


@pytest.fixture
def tscf(request, timer_server) -> Scf:
    since = timer_server.stderr_size()
    yield Scf(timer_server.client(), timer_server, timer_server.creds)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(timer_server.diagnostics(since))


def timer(scf: Scf, fn: str, name: str, desc: str = EVERY_SECOND, **params) -> dict:
    p = {"FunctionName": fn, "TriggerName": name, "Type": "timer", "TriggerDesc": desc, **params}
    return scf.call("CreateTrigger", p)["TriggerInfo"]


def tick_secs(event: dict) -> int:
    return int(datetime.strptime(event["Time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def results(scf: Scf, fn: str) -> list[dict]:
    """What every finished run of the function returned (one per event, by request id), oldest tick first."""
    out, offset = {}, 0
    while True:
        page = scf.call("GetFunctionLogs", {"FunctionName": fn, "Limit": 100, "Offset": offset, "Order": "asc"})
        for d in page["Data"]:
            if d["RetCode"] == 0:
                out[d["RequestId"]] = json.loads(d["RetMsg"])
        offset += len(page["Data"])
        if not page["Data"] or offset >= page["TotalCount"]:
            break
    return sorted(out.values(), key=lambda r: tick_secs(r["event"]))


def wait_results(scf: Scf, fn: str, n: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        got = results(scf, fn)
        if len(got) >= n:
            return got
        assert time.monotonic() < deadline, f"{len(got)} of {n} timer runs of {fn} after {timeout} s: {got}"
        time.sleep(0.3)


def timer_events(scf: Scf, fn: str) -> list[dict]:
    r = scf.call("ListAsyncEvents", {"FunctionName": fn, "InvokeType": ["TRIGGER_TIMER"], "Limit": 100})
    assert r["TotalCount"] == len(r["EventList"]), r
    return r["EventList"]


def sleep_until_second(frac: float) -> None:
    """Sleeps to `frac` of the next wall-clock second (away from tick edges)."""
    now = time.time()
    time.sleep((1 - (now % 1)) + frac)


def test_a_timer_fires_every_tick_with_the_scf_event(tscf):
    fn = tscf.create_function(zip_bytes=code("A"))
    started = time.time()
    timer(tscf, fn, "every-second", CustomArgument='{"job": "report"}')
    runs = wait_results(tscf, fn, 4)
    for r in runs:
        e = r["event"]
        assert set(e) == {"Type", "TriggerName", "Time", "Message"}, e
        assert (e["Type"], e["TriggerName"], e["Message"]) == ("Timer", "every-second", '{"job": "report"}'), e
        assert RFC3339_Z.match(e["Time"]), e
        assert started - 1 <= tick_secs(e) <= time.time(), (started, e)
        assert r["version"] == "$LATEST" and r["code"] == "A"
    ticks = [tick_secs(r["event"]) for r in runs]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), f"one run per second, none missing: {ticks}"
    # Each is an asynchronous event of SCF's timer invoke type, under the event's request id.
    events = {e["InvokeRequestId"]: e for e in timer_events(tscf, fn)}
    for r in runs:
        assert r["rid"] in events, (r, events)
        assert events[r["rid"]]["InvokeType"] == "TRIGGER_TIMER"
        assert events[r["rid"]]["Qualifier"] == "$LATEST"
    # Other invoke types do not list them.
    other = tscf.call("ListAsyncEvents", {"FunctionName": fn, "InvokeType": ["Event"]})
    assert other["TotalCount"] == 0, other
    tscf.call("DeleteTrigger", FunctionName=fn, Type="timer", TriggerName="every-second")


def test_close_stops_a_timer_and_open_resumes_it_from_the_next_tick(tscf):
    fn = tscf.create_function(zip_bytes=code("A"))
    timer(tscf, fn, "t")
    wait_results(tscf, fn, 2)
    tscf.call("UpdateTriggerStatus", FunctionName=fn, Type="timer", TriggerName="t", Enable="CLOSE")
    closed_at = time.time()
    time.sleep(1.5)  # a firing already under way finishes
    before = len(timer_events(tscf, fn))
    time.sleep(3)
    assert len(timer_events(tscf, fn)) == before, "a closed timer fires nothing"
    reopened_at = time.time()
    tscf.call("UpdateTriggerStatus", FunctionName=fn, Type="timer", TriggerName="t", Enable="OPEN")
    runs = wait_results(tscf, fn, before + 2)
    late = [tick_secs(r["event"]) for r in runs if tick_secs(r["event"]) > closed_at + 1]
    assert late, runs
    # The ticks of the closed period are not made up for: the first tick after reopening is later than it.
    assert min(late) >= int(reopened_at), (closed_at, reopened_at, late)
    assert len(timer_events(tscf, fn)) == len(runs)


def test_deleting_a_timer_stops_it(tscf):
    fn = tscf.create_function(zip_bytes=code("A"))
    timer(tscf, fn, "t")
    wait_results(tscf, fn, 1)
    tscf.call("DeleteTrigger", FunctionName=fn, Type="timer", TriggerName="t")
    time.sleep(1.5)
    n = len(timer_events(tscf, fn))
    time.sleep(2.5)
    assert len(timer_events(tscf, fn)) == n, "a deleted timer fires nothing"


def test_a_timer_bound_to_a_version_runs_it_and_one_bound_to_an_alias_follows_it(tscf):
    fn = tscf.create_function(zip_bytes=code("A"))
    v1 = tscf.publish_version(fn)
    tscf.call("UpdateFunctionCode", FunctionName=fn, Handler="index.main_handler", ZipFile=b64(code("B")))
    tscf.wait(fn)
    v2 = tscf.publish_version(fn)
    tscf.call("CreateAlias", FunctionName=fn, Name="prod", FunctionVersion=v1)
    timer(tscf, fn, "on-version", Qualifier=v1, CustomArgument="version")
    timer(tscf, fn, "on-alias", Qualifier="prod", CustomArgument="alias")
    timer(tscf, fn, "on-latest", CustomArgument="latest")

    def by(message: str) -> list[dict]:
        return [r for r in results(tscf, fn) if r["event"]["Message"] == message]

    deadline = time.monotonic() + 20
    while not all(len(by(m)) >= 2 for m in ("version", "alias", "latest")):
        assert time.monotonic() < deadline, results(tscf, fn)
        time.sleep(0.3)
    assert {(r["version"], r["code"]) for r in by("version")} == {(v1, "A")}
    assert {(r["version"], r["code"]) for r in by("alias")} == {(v1, "A")}
    assert {(r["version"], r["code"]) for r in by("latest")} == {("$LATEST", "B")}
    qualifiers = {e["Qualifier"] for e in timer_events(tscf, fn)}
    assert qualifiers == {v1, "prod", "$LATEST"}, qualifiers

    # The alias moves to version 2: the timer's next ticks run it.
    tscf.call("UpdateAlias", FunctionName=fn, Name="prod", FunctionVersion=v2)
    moved = time.time()
    deadline = time.monotonic() + 20
    while not [r for r in by("alias") if tick_secs(r["event"]) > moved + 1]:
        assert time.monotonic() < deadline, by("alias")
        time.sleep(0.3)
    after = [r for r in by("alias") if tick_secs(r["event"]) > moved + 1]
    assert {(r["version"], r["code"]) for r in after} == {(v2, "B")}, after
    for t in ("on-version", "on-alias", "on-latest"):
        tscf.call("DeleteTrigger", FunctionName=fn, Type="timer", TriggerName=t)


def metric(srv: StratusServer, name: str) -> float:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{srv.url}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_missed_tick_fires_once_late_within_the_window_and_is_skipped_beyond_it(stratus):
    late_secs = 6
    srv = stratus(env={**TIMER_ENV, "STRATUS_EVENT_TIMER_LATE_SECS": str(late_secs)})
    scf = Scf(srv.client(), srv, srv.creds)
    fn = scf.create_function(zip_bytes=code("A"))
    timer(scf, fn, "every-ten", desc="*/10 * * * * * *")
    first = wait_results(scf, fn, 1, timeout=25)[0]
    t0 = tick_secs(first["event"])
    # Down from just after t0 until t0 + 10 is older than the window: that tick is skipped.
    srv.stop()
    time.sleep(max(0.0, t0 + 10 + late_secs + 2 - time.time()))
    srv.restart()
    scf = Scf(srv.client(), srv, srv.creds)
    runs = wait_results(scf, fn, 2, timeout=25)
    assert [tick_secs(r["event"]) for r in runs[:2]] == [t0, t0 + 20], runs
    assert metric(srv, 'stratus_timer_ticks_total{outcome="skipped"}') == 1
    assert "timer ticks skipped" in srv.stderr_tail()
    # Down from just after t0 + 20 until t0 + 30 is 1.5 s old: it fires once, late, at the restart.
    srv.stop()
    time.sleep(max(0.0, t0 + 31.5 - time.time()))
    srv.restart()
    scf = Scf(srv.client(), srv, srv.creds)
    runs = wait_results(scf, fn, 3, timeout=15)
    ticks = [tick_secs(r["event"]) for r in runs]
    assert ticks[:3] == [t0, t0 + 20, t0 + 30], ticks
    assert ticks.count(t0 + 30) == 1
    events = timer_events(scf, fn)
    assert len(events) == len(runs), (events, runs)
