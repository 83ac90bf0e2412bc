"""The live status stream (`GET /stratus/v1/stream`, server-sent events), a Stratus extension beside the SCF API.

The changes are made with the official SDK; the stream is read with a plain signed HTTP GET (TC3 over the empty
body, service scf, signed by the harness's independent TC3 helper). Each event carries the database's commit time,
which is compared with the time it arrived here (one machine, one clock)."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time

import pytest

from harness import tc3
from harness.api import Scf, make_client, unique

PATH = "/stratus/v1/stream"
LATENCY_MS = 100


class Stream:
    """One open stream; a reader thread timestamps every event as it arrives."""

    def __init__(self, endpoint: str, creds, *, last_event_id: int | None = None, query: str = ""):
        self.conn = http.client.HTTPConnection(endpoint, timeout=30)
        ts = int(time.time())
        signed = tc3.sign(creds.secret_id, creds.secret_key, b"", endpoint, ts, method="GET", query=query,
                          content_type="application/x-www-form-urlencoded")
        headers = {"Host": endpoint, "Content-Type": "application/x-www-form-urlencoded",
                   "X-TC-Timestamp": str(ts), "Authorization": signed.authorization, "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", PATH + (f"?{query}" if query else ""), headers=headers)
        self.resp = self.conn.getresponse()
        self.events: queue.Queue = queue.Queue()
        self.last_id = last_event_id
        if self.resp.status == 200:
            assert self.resp.getheader("Content-Type", "").startswith("text/event-stream")
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        block: dict = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                if line == "":
                    if "data" in block:
                        self.events.put((time.time() * 1000, block))
                    block = {}
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                block[field] = value
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass
        self.events.put(None)

    def next(self, timeout: float = 20.0):
        """(arrival_ms, id, event, data) of the next event, or None when none came in time."""
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            return None
        arrived, block = item
        self.last_id = int(block["id"]) if "id" in block else self.last_id
        return arrived, self.last_id, block.get("event"), json.loads(block["data"])

    def until(self, pred, timeout: float = 30.0) -> list:
        """Events until one satisfies `pred` (included)."""
        deadline = time.monotonic() + timeout
        out = []
        while time.monotonic() < deadline:
            e = self.next(max(0.05, deadline - time.monotonic()))
            if e is None:
                break
            out.append(e)
            if pred(e[3]):
                return out
        raise AssertionError(f"no matching event within {timeout}s; got {[x[3] for x in out]}")

    def close(self):
        self.conn.close()


def _fn_events(events, name):
    return [(e[3]["Kind"], e[3].get("Qualifier"), e[3]["Status"]) for e in events if e[3].get("FunctionName") == name]


def _latencies(events):
    return [e[0] - e[3]["CommitTimeMs"] for e in events]


def test_a_client_sees_creating_then_active_within_100ms_of_each_commit(fresh_scf):
    srv, creds = fresh_scf.server, fresh_scf.creds
    s = Stream(srv.endpoint, creds)
    try:
        name = unique("st")
        fresh_scf.create_function(name, wait=None)
        got = s.until(lambda d: d.get("FunctionName") == name and d["Status"] == "Active")
        assert _fn_events(got, name) == [("function", "$LATEST", "Creating"), ("function", "$LATEST", "Active")]
        lat = _latencies(got)
        print(f"stream latency after commit (ms): {[round(x, 1) for x in lat]}")
        assert all(x < LATENCY_MS for x in lat), lat
        # Polling clients keep working unchanged and agree with the stream.
        assert fresh_scf.get(name)["Status"] == "Active"
        ids = [e[1] for e in got]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        # A publish and a delete follow, each status in order.
        v = fresh_scf.publish_version(name, wait=False)
        got = s.until(lambda d: d.get("Qualifier") == v and d["Status"] == "Active")
        assert _fn_events(got, name)[-2:] == [("version", v, "Publishing"), ("version", v, "Active")]
        assert all(x < LATENCY_MS for x in _latencies(got)), _latencies(got)
    finally:
        s.close()


def test_the_stream_resumes_after_a_disconnect_without_gaps(fresh_scf):
    srv, creds = fresh_scf.server, fresh_scf.creds
    s = Stream(srv.endpoint, creds)
    a = unique("st")
    fresh_scf.create_function(a, wait=None)
    first = s.until(lambda d: d.get("FunctionName") == a and d["Status"] == "Active")
    start_id = first[0][1] - 1
    resume_from = s.last_id
    s.close()
    # While nobody listens: another function, a version, an asynchronous event.
    b = fresh_scf.create_function(unique("st"))
    v = fresh_scf.publish_version(a)
    fresh_scf.call("Invoke", FunctionName=a, InvocationType="Event", ClientContext="{}")
    again = Stream(srv.endpoint, creds, last_event_id=resume_from)
    try:
        rest = again.until(lambda d: d["Kind"] == "async_event" and d["Status"] != "RUNNING", timeout=60)
    finally:
        again.close()
    assert all(e[1] > resume_from for e in rest)
    seen = [(e[3]["Kind"], e[3].get("FunctionName"), e[3].get("Qualifier"), e[3]["Status"]) for e in rest]
    assert seen[:2] == [("function", b, "$LATEST", "Creating"), ("function", b, "$LATEST", "Active")], seen
    assert ("version", a, v, "Publishing") in seen and ("version", a, v, "Active") in seen, seen
    assert [x[3] for x in seen if x[0] == "async_event"] == ["RUNNING", "FINISHED"], seen
    # The same history read in one go from before the first change (`since`, as a browser without
    # Last-Event-ID would) is exactly the first part followed by the resumed part: nothing lost, nothing twice.
    whole = Stream(srv.endpoint, creds, query=f"since={start_id}")
    try:
        everything = whole.until(lambda d: d["Kind"] == "async_event" and d["Status"] != "RUNNING", timeout=30)
    finally:
        whole.close()
    assert [e[1] for e in everything] == [e[1] for e in first] + [e[1] for e in rest]
    assert [e[3] for e in everything] == [e[3] for e in first] + [e[3] for e in rest]


def test_another_accounts_changes_are_never_seen(server_log):
    srv = server_log
    mine_creds, theirs_creds = srv.create_account(), srv.create_account()
    mine = Scf(srv.client(mine_creds), srv, mine_creds)
    theirs = Scf(srv.client(theirs_creds), srv, theirs_creds)
    s = Stream(srv.endpoint, mine_creds)
    try:
        # The other account works first (same function name too), then this one.
        shared = unique("st")
        theirs.create_function(shared)
        theirs.create_function(unique("st"))
        theirs.publish_version(shared)
        mine.create_function(shared)
        got = s.until(lambda d: d.get("FunctionName") == shared and d["Status"] == "Active")
    finally:
        s.close()
    assert _fn_events(got, shared) == [("function", "$LATEST", "Creating"), ("function", "$LATEST", "Active")]
    assert len(got) == 2, [e[3] for e in got]


def test_an_unsigned_or_badly_signed_stream_is_refused(server_log):
    srv = server_log
    conn = http.client.HTTPConnection(srv.endpoint, timeout=10)
    conn.request("GET", PATH)
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 401 and body["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure", body
    conn.close()
    ts = int(time.time())
    wrong = tc3.sign(srv.creds.secret_id, "not-the-key", b"", srv.endpoint, ts, method="GET",
                     content_type="application/x-www-form-urlencoded")
    conn = http.client.HTTPConnection(srv.endpoint, timeout=10)
    conn.request("GET", PATH, headers={"Host": srv.endpoint, "Content-Type": "application/x-www-form-urlencoded",
                                       "X-TC-Timestamp": str(ts), "Authorization": wrong.authorization})
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 401 and body["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure", body
    conn.close()


@pytest.fixture
def two_nodes(stratus, backend):
    if backend.name != "postgres":
        pytest.skip("two nodes share a PostgreSQL database")
    from test_cluster import SecondNode

    first = stratus()
    second = SecondNode(first.database_url)
    try:
        yield first, second
    finally:
        second.stop()


def test_on_two_postgresql_nodes_a_change_through_one_arrives_through_the_other(two_nodes):
    first, second = two_nodes
    through_first = Scf(first.client(), first, first.creds)
    s = Stream(f"127.0.0.1:{second.port}", first.creds)
    try:
        name = unique("st")
        through_first.create_function(name, wait=None)
        got = s.until(lambda d: d.get("FunctionName") == name and d["Status"] == "Active")
    finally:
        s.close()
    assert _fn_events(got, name) == [("function", "$LATEST", "Creating"), ("function", "$LATEST", "Active")]
    lat = _latencies(got)
    print(f"cross-node stream latency after commit (ms): {[round(x, 1) for x in lat]}")
    assert all(x < LATENCY_MS for x in lat), lat
    # And the other way round: a stream on the first node sees a change made through the second.
    through_second = Scf(make_client(f"127.0.0.1:{second.port}", first.creds), None, first.creds)
    s = Stream(first.endpoint, first.creds)
    try:
        other = unique("st")
        through_second.create_function(other, wait=None)
        got = s.until(lambda d: d.get("FunctionName") == other and d["Status"] == "Active")
    finally:
        s.close()
    assert _fn_events(got, other) == [("function", "$LATEST", "Creating"), ("function", "$LATEST", "Active")]
