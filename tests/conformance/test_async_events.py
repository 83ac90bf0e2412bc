"""Asynchronous invocation through the official SDK (events.md): `Invoke` with `InvocationType=Event` answers at
once with the request id and the function runs later; the event ends FINISHED (and its attempt is in
GetFunctionLogs), or, for a failing function, is retried RetryNum times (second-scale delays here) and ends FAILED
with every attempt recorded under its RetryNum; an oversized event and a missing function or qualifier are refused
as for a synchronous call; GetAsyncEventStatus and ListAsyncEvents (every filter, order and paging) stay within the
caller's account; TerminateAsyncEvent stops a running event, at once or gracefully (SIGTERM, SCF's `[PLATFORM]
Signal …` log line, the kill after the grace period); a failed event is handed to its `DeadLetterConfig` function
(CMQ types are stored and shown back); a function's retry settings apply; a throttled event fails at its MsgTTL;
and a `kill -9` with events queued loses none of them, on one node and on a cluster."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from harness.api import Scf, make_client, unique
from harness.server import StratusServer, binary, child_env
from harness.zips import Entry, build

# Second-scale retries, a quick poll and a short lease (the crash test's takeover).
EVENT_ENV = {
    "STRATUS_EVENT_RETRY_DELAYS": "1,2",
    "STRATUS_EVENT_POLL_MS": "100",
    "STRATUS_EVENT_LEASE_SECS": "2",
    "STRATUS_EVENT_GRACE_SHUTDOWN_SECS": "2",
}
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


@pytest.fixture(scope="module")
def events_server(backend):
    srv = StratusServer(backend, env=EVENT_ENV)
    try:
        srv.start()
        yield srv
    finally:
        srv.destroy()


@pytest.fixture
def escf(request, events_server) -> Scf:
    since = events_server.stderr_size()
    yield Scf(events_server.client(), events_server, events_server.creds)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(events_server.diagnostics(since))


def _zip(body: str) -> bytes:
    return build([Entry("index.py", body.encode(), mode=stat.S_IFREG | 0o644)])


def unique_name() -> str:
    return unique("ev")


def function(scf: Scf, body: str, **kw) -> str:
    return scf.create_function(zip_bytes=_zip(body), **kw)


def send(scf: Scf, name: str, event=None, **kw) -> str:
    params = {"FunctionName": name, "InvocationType": "Event",
              "ClientContext": json.dumps(event if event is not None else {})}
    params.update(kw)
    result = scf.call("Invoke", params)["Result"]
    assert result["RetMsg"] == "" and result["ErrMsg"] == "" and result["Log"] == "", result
    return result["FunctionRequestId"]


def status(scf: Scf, rid: str) -> dict:
    return scf.call("GetAsyncEventStatus", {"InvokeRequestId": rid})["Result"]


def wait_ended(scf: Scf, rid: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = status(scf, rid)
        if s["Status"] != "RUNNING":
            return s
        assert time.monotonic() < deadline, f"event {rid} still RUNNING after {timeout} s: {s}"
        time.sleep(0.1)


def logs(scf: Scf, name: str, rid: str, want: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        data = scf.call("GetFunctionLogs", {"FunctionName": name, "FunctionRequestId": rid, "Limit": 100,
                                            "Order": "asc"})["Data"]
        if len(data) >= want:
            return data
        assert time.monotonic() < deadline, f"{len(data)} of {want} records of {rid}: {data}"
        time.sleep(0.2)


SLOW = "import time\ndef main_handler(event, context):\n    time.sleep(3)\n    return {'got': event}\n"
QUICK = "def main_handler(event, context):\n    return {'got': event, 'rid': context['request_id']}\n"
FAILS = "def main_handler(event, context):\n    raise ValueError('nope')\n"


def test_the_reply_returns_before_a_slow_function_ends_and_the_event_finishes(escf):
    name = function(escf, SLOW, Timeout=10)
    started = time.monotonic()
    rid = send(escf, name, {"n": 1})
    assert time.monotonic() - started < 1.5, "the reply does not wait for the function"
    s = status(escf, rid)
    assert s == {"Status": "RUNNING", "StatusCode": s["StatusCode"], "InvokeRequestId": rid}
    ended = wait_ended(escf, rid)
    assert ended["Status"] == "FINISHED" and ended["StatusCode"] == 200, ended
    assert time.monotonic() - started >= 3, "it ran the function"
    (rec,) = logs(escf, name, rid, 1)
    assert rec["RequestId"] == rid and rec["RetCode"] == 0 and rec["RetryNum"] == 0
    assert json.loads(rec["RetMsg"]) == {"got": {"n": 1}}
    st = escf.call("GetRequestStatus", {"FunctionName": name, "FunctionRequestId": rid})["Data"]
    assert [d["RetryNum"] for d in st] == [0]


def test_the_function_sees_the_event_request_id(escf):
    name = function(escf, QUICK)
    rid = send(escf, name, {"k": "v"})
    assert wait_ended(escf, rid)["Status"] == "FINISHED"
    (rec,) = logs(escf, name, rid, 1)
    assert json.loads(rec["RetMsg"]) == {"got": {"k": "v"}, "rid": rid}


def test_a_failing_function_is_retried_with_its_retry_number_then_fails(escf):
    name = function(escf, FAILS)
    started = time.monotonic()
    rid = send(escf, name)
    ended = wait_ended(escf, rid, timeout=60)
    elapsed = time.monotonic() - started
    assert ended["Status"] == "FAILED" and ended["StatusCode"] == 430, ended
    assert elapsed >= 3, f"two retries 1 s and 2 s apart, ended after {elapsed:.1f} s"
    records = logs(escf, name, rid, 3)
    assert sorted(r["RetryNum"] for r in records) == [0, 1, 2], records
    assert all(r["RequestId"] == rid and r["RetCode"] == 430 for r in records)
    time.sleep(1.5)
    assert len(logs(escf, name, rid, 3)) == 3, "no attempt after the last retry"


def test_an_oversized_event_is_refused_and_128_kb_is_accepted(escf):
    name = function(escf, QUICK)
    big = json.dumps({"pad": "x" * (128 * 1024)})
    escf.error("InvalidParameter.RequestTooLarge", "Invoke",
               {"FunctionName": name, "InvocationType": "Event", "ClientContext": big})
    fits = json.dumps({"pad": "x" * (128 * 1024 - 20)})
    assert len(fits) <= 128 * 1024
    assert wait_ended(escf, send(escf, name, json.loads(fits)))["Status"] == "FINISHED"


def test_a_missing_function_or_qualifier_is_refused_as_for_a_synchronous_call(escf):
    escf.error("ResourceNotFound.Function", "Invoke",
               {"FunctionName": "no-such-function", "InvocationType": "Event"})
    name = function(escf, QUICK)
    for q in ("no-such-alias", "7"):
        escf.error("ResourceNotFound.Qualifier", "Invoke",
                   {"FunctionName": name, "InvocationType": "Event", "Qualifier": q})
    escf.error("InvalidParameterValue.InvokeType", "Invoke",
               {"FunctionName": name, "InvocationType": "Later"})


def test_status_of_an_unknown_or_foreign_event(escf, events_server):
    escf.error("ResourceNotFound.AsyncEvent", "GetAsyncEventStatus", {"InvokeRequestId": "no-such-request"})
    name = function(escf, QUICK)
    rid = send(escf, name)
    other = Scf(events_server.client(events_server.create_account()))
    other.error("ResourceNotFound.AsyncEvent", "GetAsyncEventStatus", {"InvokeRequestId": rid})
    other.error("ResourceNotFound.Function", "ListAsyncEvents", {"FunctionName": name})


def _utc(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def test_list_async_events_filters_order_and_paging(escf):
    name = function(escf, QUICK)
    before = datetime.now(timezone.utc) - timedelta(seconds=2)
    latest = [send(escf, name, {"i": i}) for i in range(5)]
    version = escf.publish_version(name)
    pinned = [send(escf, name, {"i": i}, Qualifier=version) for i in range(2)]
    for rid in latest + pinned:
        assert wait_ended(escf, rid)["Status"] == "FINISHED"
    after = datetime.now(timezone.utc) + timedelta(seconds=2)

    def ls(**kw) -> dict:
        return escf.call("ListAsyncEvents", {"FunctionName": name, **kw})

    everything = ls()
    assert everything["TotalCount"] == 7
    events = everything["EventList"]
    assert {e["InvokeRequestId"] for e in events} == set(latest + pinned)
    for e in events:
        assert e["InvokeType"] == "Event" and e["Status"] == "FINISHED"
        assert EVENT_TIME.match(e["StartTime"]) and EVENT_TIME.match(e["EndTime"]), e
    starts = [e["StartTime"] for e in events]
    assert starts == sorted(starts, reverse=True), "DESC by StartTime by default"
    asc = ls(Order="ASC")["EventList"]
    assert [e["StartTime"] for e in asc] == sorted(starts)
    by_end = ls(Orderby="EndTime", Order="ASC")["EventList"]
    assert [e["EndTime"] for e in by_end] == sorted(e["EndTime"] for e in events)
    assert ls(Qualifier=version)["TotalCount"] == 2
    assert {e["Qualifier"] for e in ls(Qualifier=version)["EventList"]} == {version}
    assert ls(Qualifier="$LATEST")["TotalCount"] == 5
    assert ls(Status=["FINISHED", "FAILED"])["TotalCount"] == 7
    assert ls(Status=["RUNNING"])["TotalCount"] == 0
    assert ls(InvokeType=["Event"])["TotalCount"] == 7
    assert ls(InvokeType=["Timer"])["TotalCount"] == 0
    one = ls(InvokeRequestId=pinned[0])
    assert one["TotalCount"] == 1 and one["EventList"][0]["InvokeRequestId"] == pinned[0]
    window = {"Start": _utc(before), "End": _utc(after)}
    assert ls(StartTimeInterval=window)["TotalCount"] == 7
    assert ls(EndTimeInterval=window)["TotalCount"] == 7
    past = {"Start": _utc(before - timedelta(hours=1)), "End": _utc(before)}
    assert ls(StartTimeInterval=past)["TotalCount"] == 0
    # Left-closed, right-open: an interval ending at the first start excludes it.
    first = asc[0]["StartTime"]
    upto_first = {"Start": _utc(before), "End": first}
    assert ls(StartTimeInterval=upto_first)["TotalCount"] == 0
    from_first = {"Start": first, "End": _utc(after)}
    assert ls(StartTimeInterval=from_first)["TotalCount"] == 7
    pages = [ls(Order="ASC", Offset=o, Limit=3) for o in (0, 3, 6)]
    assert [len(p["EventList"]) for p in pages] == [3, 3, 1]
    assert all(p["TotalCount"] == 7 for p in pages)
    assert [e["InvokeRequestId"] for p in pages for e in p["EventList"]] == [e["InvokeRequestId"] for e in asc]
    assert len(ls()["EventList"]) == 7 and ls(Limit=100)["TotalCount"] == 7
    escf.error("InvalidParameterValue.Limit", "ListAsyncEvents", {"FunctionName": name, "Limit": 101})
    escf.error("InvalidParameterValue.Order", "ListAsyncEvents", {"FunctionName": name, "Order": "UP"})
    escf.error("InvalidParameterValue.Orderby", "ListAsyncEvents", {"FunctionName": name, "Orderby": "Name"})
    escf.error("InvalidParameterValue.Status", "ListAsyncEvents", {"FunctionName": name, "Status": ["DONE"]})
    escf.error("InvalidParameterValue.StartTimeInterval", "ListAsyncEvents",
               {"FunctionName": name, "StartTimeInterval": {"Start": "yesterday", "End": _utc(after)}})


def test_terminate_stops_a_running_event(escf):
    name = function(escf, "import time\ndef main_handler(event, context):\n    time.sleep(8)\n    return 1\n",
                    Timeout=20)
    rid = send(escf, name)
    time.sleep(1.0)
    assert status(escf, rid)["Status"] == "RUNNING"
    started = time.monotonic()
    escf.call("TerminateAsyncEvent", {"FunctionName": name, "InvokeRequestId": rid})
    ended = wait_ended(escf, rid, timeout=10)
    assert ended == {"Status": "ABORTED", "StatusCode": 439, "InvokeRequestId": rid}, ended
    assert time.monotonic() - started < 3, "stopped at once, not at the function's end"
    escf.error("FailedOperation.AsyncEventStatus", "TerminateAsyncEvent", {"FunctionName": name, "InvokeRequestId": rid})
    escf.error("ResourceNotFound.AsyncEvent", "TerminateAsyncEvent",
               {"FunctionName": name, "InvokeRequestId": "no-such-request"})
    escf.error("ResourceNotFound.Function", "TerminateAsyncEvent",
               {"FunctionName": "no-such-function", "InvokeRequestId": rid})
    assert escf.call("ListAsyncEvents", {"FunctionName": name, "Status": ["ABORTED"]})["TotalCount"] == 1
    # The function still runs: a new event runs to its end.
    again = send(escf, name)
    assert wait_ended(escf, again, timeout=30)["Status"] == "FINISHED"
    # An event waiting for its attempt ends at once, gracefully or not.
    busy = send(escf, name)
    time.sleep(0.5)
    escf.call("TerminateAsyncEvent", {"FunctionName": name, "InvokeRequestId": busy, "GraceShutdown": True})
    assert wait_ended(escf, busy, timeout=10)["Status"] == "ABORTED"
    escf.error("FailedOperation.AsyncEventStatus", "TerminateAsyncEvent",
               {"FunctionName": name, "InvokeRequestId": busy, "GraceShutdown": True})


def _log_of(scf: Scf, name: str, rid: str) -> dict:
    (rec,) = logs(scf, name, rid, 1)
    return rec


def test_grace_shutdown_sends_sigterm_and_a_function_without_a_handler_exits(escf):
    name = function(escf, "import time\ndef main_handler(event, context):\n    print('working')\n"
                          "    time.sleep(8)\n    return 1\n", Timeout=20)
    rid = send(escf, name)
    time.sleep(1.5)
    assert status(escf, rid)["Status"] == "RUNNING"
    started = time.monotonic()
    escf.call("TerminateAsyncEvent", {"FunctionName": name, "InvokeRequestId": rid, "GraceShutdown": True})
    ended = wait_ended(escf, rid, timeout=10)
    assert ended == {"Status": "ABORTED", "StatusCode": 439, "InvokeRequestId": rid}, ended
    assert time.monotonic() - started < 1.5, "the default SIGTERM handler ends the process at once"
    rec = _log_of(escf, name, rid)
    assert "[PLATFORM] Signal received successfully." in rec["Log"], rec["Log"]
    assert "working" in rec["Log"] and rec["RetCode"] == 439, rec


def test_grace_shutdown_lets_a_handler_run_then_kills_after_the_grace_period(escf):
    body = (
        "import signal, time\n"
        "def main_handler(event, context):\n"
        "    signal.signal(signal.SIGTERM, lambda s, f: print('got SIGTERM, cleaning up', flush=True))\n"
        "    time.sleep(10)\n"
        "    return 'not reached'\n"
    )
    name = function(escf, body, Timeout=30)
    rid = send(escf, name)
    time.sleep(1.5)
    started = time.monotonic()
    escf.call("TerminateAsyncEvent", {"FunctionName": name, "InvokeRequestId": rid, "GraceShutdown": True})
    ended = wait_ended(escf, rid, timeout=15)
    elapsed = time.monotonic() - started
    assert ended["Status"] == "ABORTED", ended
    assert 1.8 <= elapsed < 6, f"killed after the 2 s grace period, not at once nor at the end: {elapsed:.1f} s"
    rec = _log_of(escf, name, rid)
    log = rec["Log"]
    assert "[PLATFORM] Signal received successfully." in log and "got SIGTERM, cleaning up" in log, log
    assert log.index("[PLATFORM] Signal received successfully.") < log.index("got SIGTERM"), log


def test_grace_shutdown_of_a_function_that_returns_meanwhile_still_aborts(escf):
    body = (
        "import signal, time\n"
        "stop = []\n"
        "def main_handler(event, context):\n"
        "    stop.clear()\n"
        "    signal.signal(signal.SIGTERM, lambda s, f: stop.append(1))\n"
        "    while not stop:\n"
        "        time.sleep(0.05)\n"
        "    print('Graceful shutdown.')\n"
        "    return 'END'\n"
    )
    name = function(escf, body, Timeout=30)
    rid = send(escf, name)
    time.sleep(1.5)
    escf.call("TerminateAsyncEvent", {"FunctionName": name, "InvokeRequestId": rid, "GraceShutdown": True})
    ended = wait_ended(escf, rid, timeout=10)
    assert ended["Status"] == "ABORTED", ended
    rec = _log_of(escf, name, rid)
    assert "Graceful shutdown." in rec["Log"] and json.loads(rec["RetMsg"]) == "END", rec
    # The instance served its invocation to the end and serves the next one.
    again = send(escf, name)
    time.sleep(1.0)
    escf.call("TerminateAsyncEvent", {"FunctionName": name, "InvokeRequestId": again, "GraceShutdown": True})
    assert wait_ended(escf, again, timeout=10)["Status"] == "ABORTED"


def dead_letters(scf: Scf, name: str, want: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        got = scf.call("ListAsyncEvents", {"FunctionName": name, "InvokeType": ["DeadLetter"], "Order": "ASC",
                                           "Limit": 100})["EventList"]
        if len(got) >= want:
            return got
        assert time.monotonic() < deadline, f"{len(got)} of {want} dead letters for {name}"
        time.sleep(0.1)


ECHO = "def main_handler(event, context):\n    return event\n"


def test_a_failed_event_is_handed_to_its_dead_letter_function(escf):
    dlq = function(escf, ECHO)
    name = function(escf, FAILS, DeadLetterConfig={"Type": "function", "Name": dlq})
    shown = escf.get(name)["DeadLetterConfig"]
    assert shown["Type"] == "function" and shown["Name"] == dlq, shown
    set_config(escf, name, 1, 600)
    rid = send(escf, name, {"order": 42})
    ended = wait_ended(escf, rid)
    assert ended["Status"] == "FAILED" and ended["StatusCode"] == 430, ended
    (letter,) = dead_letters(escf, dlq, 1)
    assert letter["InvokeType"] == "DeadLetter" and letter["Qualifier"] == "$LATEST", letter
    assert wait_ended(escf, letter["InvokeRequestId"])["Status"] == "FINISHED"
    got = json.loads(_log_of(escf, dlq, letter["InvokeRequestId"])["RetMsg"])
    assert got == {"RequestID": rid, "ErrorCode": 430, "ErrorMessage": "nope", "Event": {"order": 42},
                   "FunctionName": name, "Namespace": "default", "Qualifier": "$LATEST"}, got
    assert sorted(r["RetryNum"] for r in logs(escf, name, rid, 2)) == [0, 1], "the retries ran first"
    # A finished event is not dead-lettered.
    ok = function(escf, QUICK, DeadLetterConfig={"Type": "function", "Name": dlq})
    assert wait_ended(escf, send(escf, ok))["Status"] == "FINISHED"
    time.sleep(0.5)
    assert len(dead_letters(escf, dlq, 1)) == 1


def test_a_dead_letter_that_fails_is_not_dead_lettered_again(escf):
    name = unique_name()
    function(escf, FAILS, name=name, DeadLetterConfig={"Type": "function", "Name": name})
    set_config(escf, name, 0, 600)
    rid = send(escf, name)
    assert wait_ended(escf, rid)["Status"] == "FAILED"
    (letter,) = dead_letters(escf, name, 1)
    assert wait_ended(escf, letter["InvokeRequestId"])["Status"] == "FAILED"
    time.sleep(1.0)
    everything = escf.call("ListAsyncEvents", {"FunctionName": name, "Limit": 100})
    assert everything["TotalCount"] == 2, everything


def test_a_missing_dead_letter_function_is_noted_and_nothing_is_sent(escf, events_server):
    since = events_server.stderr_size()
    name = function(escf, FAILS, DeadLetterConfig={"Type": "function", "Name": "no-such-dlq"})
    set_config(escf, name, 0, 600)
    rid = send(escf, name)
    ended = wait_ended(escf, rid)
    assert ended["Status"] == "FAILED" and ended["StatusCode"] == 430, ended
    deadline = time.monotonic() + 10
    while "the dead-letter function does not exist" not in events_server.stderr_tail(since):
        assert time.monotonic() < deadline, "the missing dead-letter function is logged"
        time.sleep(0.1)


def test_cmq_dead_letter_configs_are_stored_and_shown_back_and_bad_ones_refused(escf):
    cmq = {"Type": "CMQ-QUEUE", "Name": "my-queue", "FilterType": ""}
    name = function(escf, QUICK, DeadLetterConfig=cmq)
    assert escf.get(name)["DeadLetterConfig"] == cmq
    topic = {"Type": "topic", "Name": "my-topic", "FilterType": "TAG"}
    escf.call("UpdateFunctionConfiguration", {"FunctionName": name, "DeadLetterConfig": topic})
    escf.wait(name)
    assert escf.get(name)["DeadLetterConfig"] == topic
    for bad in ({"Type": "sqs", "Name": "q"}, {"Type": "function", "Name": "-bad"}, {"Type": "function"}):
        escf.error("InvalidParameterValue.DeadLetterConfig", "CreateFunction", {
            "FunctionName": unique_name(), "Runtime": "Python3.9", "Handler": "index.main_handler",
            "Code": {"ZipFile": __import__("base64").b64encode(_zip(QUICK)).decode()}, "DeadLetterConfig": bad})
        escf.error("InvalidParameterValue.DeadLetterConfig", "UpdateFunctionConfiguration",
                   {"FunctionName": name, "DeadLetterConfig": bad})
    assert escf.get(name)["DeadLetterConfig"] == topic


def config(scf: Scf, name: str, **kw) -> dict:
    return scf.call("GetFunctionEventInvokeConfig", {"FunctionName": name, **kw})["AsyncTriggerConfig"]


def set_config(scf: Scf, name: str, retry_num, msg_ttl):
    return scf.call("UpdateFunctionEventInvokeConfig", {
        "FunctionName": name, "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": retry_num}], "MsgTTL": msg_ttl}})


def test_event_invoke_config_sets_the_retries_within_the_account_limits(escf):
    name = function(escf, FAILS)
    assert config(escf, name) == {"RetryConfig": [{"RetryNum": 2}], "MsgTTL": 21600}, "SCF's defaults"
    limits = escf.call("GetAccount")["AccountLimit"]["Namespace"][0]
    assert (limits["RetryNumLimit"], limits["MinMsgTTL"], limits["MaxMsgTTL"]) == (2, 60, 21600)
    set_config(escf, name, 0, 600)
    assert config(escf, name) == {"RetryConfig": [{"RetryNum": 0}], "MsgTTL": 600}
    assert config(escf, name, Qualifier="$LATEST") == config(escf, name)
    escf.error("ResourceNotFound.Qualifier", "GetFunctionEventInvokeConfig", {"FunctionName": name, "Qualifier": "9"})
    for bad in (-1, 3):
        escf.error("LimitExceeded.RetryNum", "UpdateFunctionEventInvokeConfig", {
            "FunctionName": name, "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": bad}], "MsgTTL": 600}})
    for bad in (59, 21601):
        escf.error("LimitExceeded.MsgTTL", "UpdateFunctionEventInvokeConfig", {
            "FunctionName": name, "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}], "MsgTTL": bad}})
    escf.error("ResourceNotFound.Function", "UpdateFunctionEventInvokeConfig", {
        "FunctionName": "no-such-function", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}], "MsgTTL": 600}})
    assert config(escf, name)["RetryConfig"] == [{"RetryNum": 0}], "refused updates change nothing"
    # RetryNum 0: the failing function runs once and the event fails.
    rid = send(escf, name)
    ended = wait_ended(escf, rid)
    assert ended["Status"] == "FAILED" and ended["StatusCode"] == 430, ended
    time.sleep(1.5)
    assert [r["RetryNum"] for r in logs(escf, name, rid, 1)] == [0]
    # Deleting the function deletes its settings: a new function of that name starts from the defaults.
    escf.call("DeleteFunction", {"FunctionName": name})
    escf.wait_gone(name)
    escf.create_function(name, zip_bytes=_zip(FAILS))
    assert config(escf, name)["RetryConfig"] == [{"RetryNum": 2}]


def test_an_event_whose_function_is_deleted_before_it_runs_fails_unretried(stratus):
    srv = stratus(env={**EVENT_ENV, "STRATUS_EVENT_SLOTS": "1"})
    scf = Scf(srv.client())
    slow = scf.create_function(zip_bytes=_zip(SLOW), Timeout=10)
    gone = scf.create_function(zip_bytes=_zip(QUICK))
    first = send(scf, slow)
    time.sleep(0.5)
    queued = send(scf, gone)
    assert status(scf, queued)["Status"] == "RUNNING"
    scf.call("DeleteFunction", {"FunctionName": gone})
    scf.wait_gone(gone)
    ended = wait_ended(scf, queued)
    assert ended["Status"] == "FAILED" and ended["StatusCode"] == 404, ended
    assert wait_ended(scf, first)["Status"] == "FINISHED"


def test_events_queued_at_a_kill_all_finish_after_the_restart(stratus):
    slots = 4
    srv = stratus(env={**EVENT_ENV, "STRATUS_EVENT_SLOTS": str(slots)})
    scf = Scf(srv.client())
    name = scf.create_function(zip_bytes=_zip(
        "import time\ndef main_handler(event, context):\n    time.sleep(0.2)\n    return event\n"), Timeout=10)
    acked = [send(scf, name, {"i": i}) for i in range(200)]
    srv.kill9()
    before = srv.stderr_size()
    srv.restart()
    scf = Scf(srv.client())
    deadline = time.monotonic() + 120
    for rid in acked:
        s = wait_ended(scf, rid, timeout=max(1.0, deadline - time.monotonic()))
        assert s["Status"] == "FINISHED", s
    assert scf.call("ListAsyncEvents", {"FunctionName": name, "Limit": 100})["TotalCount"] == 200
    ran = set()
    offset = 0
    while True:
        page = scf.call("GetFunctionLogs", {"FunctionName": name, "Limit": 100, "Offset": offset})["Data"]
        ran.update(r["RequestId"] for r in page)
        offset += len(page)
        if not page:
            break
    assert ran == set(acked), "every acknowledged event ran and was recorded"
    # Only the events running at the kill run again (their dispatcher's lease lapsed): at most one per slot.
    again = srv.stderr_tail(before, max_bytes=10_000_000).count("running an event again")
    print(f"events run twice after the kill: {again} of {len(acked)}")
    assert again <= slots, again



BANNER = re.compile(r"^stratus listening on http://127\.0\.0\.1:(\d+)$")


class OtherNode:
    """Another `stratus serve` on its own data dir and a given database (a second node of a cluster)."""

    def __init__(self, database_url: str, env: dict[str, str]):
        self.root = Path(tempfile.mkdtemp(prefix="stratus-events-node-"))
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


def test_events_of_a_node_killed_mid_run_finish_on_another(stratus, backend):
    if backend.name != "postgres":
        pytest.skip("a cluster shares a PostgreSQL database")
    first = stratus(env=EVENT_ENV)
    scf = Scf(first.client(), first, first.creds)
    name = scf.create_function(zip_bytes=_zip(
        "import time\ndef main_handler(event, context):\n    time.sleep(3)\n    return event\n"), Timeout=10)
    acked = [send(scf, name, {"i": i}) for i in range(4)]
    time.sleep(1.0)
    assert all(status(scf, rid)["Status"] == "RUNNING" for rid in acked)
    first.kill9()
    other = OtherNode(first.database_url, EVENT_ENV)
    try:
        survivor = Scf(make_client(f"127.0.0.1:{other.port}", first.creds), None, first.creds)
        for rid in acked:
            s = wait_ended(survivor, rid, timeout=40)
            assert s["Status"] == "FINISHED", s
        for rid in acked:
            (rec,) = logs(survivor, name, rid, 1)
            assert rec["RetCode"] == 0, "the other node ran it (the killed node never recorded its attempt)"
    finally:
        other.stop()


def test_an_event_accepted_by_one_node_wakes_another_at_once(stratus, backend):
    if backend.name != "postgres":
        pytest.skip("a cluster shares a PostgreSQL database")
    # The accepting node's only slot is busy, and neither node polls within the test: only the NOTIFY of the
    # accepting statement can start the second event on the other node in time.
    quiet = {**EVENT_ENV, "STRATUS_EVENT_POLL_MS": "60000", "STRATUS_EVENT_SLOTS": "1"}
    first = stratus(env=quiet)
    scf = Scf(first.client(), first, first.creds)
    name = scf.create_function(zip_bytes=_zip(
        "import time\ndef main_handler(event, context):\n    time.sleep(event['sleep'])\n    return event\n"),
        Timeout=30)
    busy = send(scf, name, {"sleep": 15})
    time.sleep(0.5)
    assert status(scf, busy)["Status"] == "RUNNING"
    # Started once the first node holds the busy event; its dispatcher claims nothing at its start.
    other = OtherNode(first.database_url, quiet)
    try:
        time.sleep(1.0)  # listening
        started = time.monotonic()
        quick = send(scf, name, {"sleep": 0})
        assert wait_ended(scf, quick, timeout=10)["Status"] == "FINISHED"
        assert time.monotonic() - started < 5, "woken by the notification, not by a poll"
        assert status(scf, busy)["Status"] == "RUNNING"
    finally:
        other.stop()
