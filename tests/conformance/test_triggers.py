"""Triggers (events.md "Triggers", "Timers"): CreateTrigger, UpdateTrigger, UpdateTriggerStatus, DeleteTrigger,
ListTriggers and GetFunction's Triggers, through the official SDK. Timer triggers only: firing them is not part of
this milestone, so these tests check the model and its management, not ticks."""

from __future__ import annotations

import json
import re

import pytest

from harness.api import Scf, unique

TIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
EVERY_5_MIN = "0 */5 * * * * *"
HOLD = "1*sleep(3000)"  # below the server's 5 s operation lease, so the held worker keeps its operation


def timer(scf: Scf, fn: str, name: str | None = None, desc: str = EVERY_5_MIN, **params) -> dict:
    """CreateTrigger of a timer; returns its TriggerInfo."""
    p = {"FunctionName": fn, "TriggerName": name or unique("t"), "Type": "timer", "TriggerDesc": desc, **params}
    info = scf.call("CreateTrigger", p)["TriggerInfo"]
    assert info["TriggerName"] == p["TriggerName"], info
    return info


def listed(scf: Scf, fn: str, **params) -> tuple[list[str], int]:
    r = scf.call("ListTriggers", FunctionName=fn, **params)
    return [t["TriggerName"] for t in r["Triggers"]], r["TotalCount"]


def one(scf: Scf, fn: str, name: str) -> dict:
    r = scf.call("ListTriggers", FunctionName=fn, Filters=[{"Name": "TriggerName", "Values": [name]}])
    assert r["TotalCount"] == 1 and len(r["Triggers"]) == 1, r
    return r["Triggers"][0]


def cron(info: dict) -> str:
    return json.loads(info["TriggerDesc"])["cron"]


def test_create_a_timer_and_read_it_back_three_ways(scf):
    fn = scf.create_function()
    info = timer(scf, fn, "every-5", CustomArgument='{"job": "report"}', Description="the report")
    # SCF stores and shows a timer's TriggerDesc as {"cron": "..."} (the CreateTrigger example).
    assert info["TriggerDesc"] == '{"cron":"0 */5 * * * * *"}'
    assert (info["Type"], info["Qualifier"], info["Enable"]) == ("timer", "$LATEST", 1)
    assert (info["CustomArgument"], info["Description"]) == ('{"job": "report"}', "the report")
    assert TIME_FORMAT.match(info["AddTime"]) and TIME_FORMAT.match(info["ModTime"]), info
    assert info["AvailableStatus"] == "Available" and info["BindStatus"] and info["ResourceId"], info
    assert fn in info["ResourceId"] and "every-5" in info["ResourceId"]

    # ListTriggers (TriggerInfo) and GetFunction (Trigger) show the same trigger.
    item = one(scf, fn, "every-5")
    got = scf.get(fn)["Triggers"]
    assert len(got) == 1, got
    for shown in (item, got[0]):
        for k in ("TriggerName", "Type", "TriggerDesc", "Qualifier", "Enable", "CustomArgument", "Description",
                  "AddTime", "ModTime", "ResourceId", "AvailableStatus"):
            assert shown[k] == info[k], (k, shown, info)


def test_trigger_desc_as_json_and_defaults(scf):
    fn = scf.create_function()
    info = timer(scf, fn, "json-desc", desc=json.dumps({"cron": "0 0 12 * * MON-FRI *"}))
    assert info["TriggerDesc"] == '{"cron":"0 0 12 * * MON-FRI *"}'
    # No CustomArgument or Description: empty; Enable CLOSE: 0.
    assert (info["CustomArgument"], info["Description"]) == ("", "")
    closed = timer(scf, fn, "closed", Enable="CLOSE")
    assert closed["Enable"] == 0 and one(scf, fn, "closed")["Enable"] == 0


@pytest.mark.parametrize("desc,field", [
    ("0 61 * * * * *", "minute"),
    ("0 0 25 * * * *", "hour"),
    ("0 0 0 32 * * *", "day"),
    ("0 0 0 * 13 * *", "month"),
    ("0 0 0 ? * 8 *", "weekday"),
    ("0 0 0 * * * 1969", "year"),
    ("0 0 0 * * * 2100", "year"),
    ("*/5 * * * *", "seven"),  # the legacy five fields only on UpdateTrigger
    ("", "cron"),
    ('{"schedule": "0 * * * * * *"}', "cron"),
])
def test_a_bad_cron_is_refused_naming_the_field(scf, desc, field):
    fn = scf.create_function()
    e = scf.error("InvalidParameterValue.TriggerDesc", "CreateTrigger", FunctionName=fn, TriggerName="bad",
                  Type="timer", TriggerDesc=desc)
    assert field in e.message, e.message
    assert listed(scf, fn) == ([], 0)


def test_cron_dialect_is_accepted(scf):
    fn = scf.create_function()
    for i, desc in enumerate(["0 0 10,14,16 * * * *", "0 */30 9-17 * * * *", "0 0 12 ? * WED *",
                              "0 15 10 L * ? *", "0 15 10 ? * 6#3 2026-2030", "0 0 1 15W * ? *"]):
        assert cron(timer(scf, fn, f"ok{i}", desc=desc)) == desc


@pytest.mark.parametrize("bad", ["1abc", "-x", "a b", "a.b", "x" * 101, "名字"])
def test_invalid_trigger_name(scf, bad):
    fn = scf.create_function()
    scf.error("InvalidParameterValue.TriggerName", "CreateTrigger", FunctionName=fn, TriggerName=bad,
              Type="timer", TriggerDesc=EVERY_5_MIN)


def test_invalid_parameters(scf):
    fn = scf.create_function()
    base = {"FunctionName": fn, "TriggerName": "p", "Type": "timer", "TriggerDesc": EVERY_5_MIN}
    scf.error("InvalidParameterValue.Enable", "CreateTrigger", {**base, "Enable": "ON"})
    scf.error("InvalidParameterValue.CustomArgument", "CreateTrigger", {**base, "CustomArgument": "x" * 4097})
    scf.error("InvalidParameterValue.Description", "CreateTrigger", {**base, "Description": "d" * 1001})
    scf.error("MissingParameter*", "CreateTrigger", {"FunctionName": fn, "Type": "timer"})
    assert listed(scf, fn) == ([], 0)
    # The 4 KB bound is inclusive.
    assert len(timer(scf, fn, "full", CustomArgument="x" * 4096)["CustomArgument"]) == 4096


@pytest.mark.parametrize("ty,needle", [
    ("cos", "Cloud Object Storage"),
    ("cls", "Cloud Log Service"),
    ("ckafka", "Kafka"),
    ("cmq", "Message Queue"),
    ("apigw", "API Gateway"),
])
def test_types_that_need_another_service_are_unsupported(scf, ty, needle):
    fn = scf.create_function()
    e = scf.error("UnsupportedOperation.Trigger", "CreateTrigger", FunctionName=fn, TriggerName="x", Type=ty,
                  TriggerDesc="{}")
    assert needle in e.message, e.message


def test_unknown_type(scf):
    fn = scf.create_function()
    for action, extra in (("CreateTrigger", {"TriggerDesc": EVERY_5_MIN}), ("DeleteTrigger", {}),
                          ("UpdateTriggerStatus", {"Enable": "OPEN"})):
        scf.error("InvalidParameterValue.Type", action, FunctionName=fn, TriggerName="x", Type="cron", **extra)


def test_names_are_unique_per_function_and_type(scf):
    fn = scf.create_function()
    timer(scf, fn, "dup", Description="first")
    scf.error("ResourceInUse.Trigger", "CreateTrigger", FunctionName=fn, TriggerName="dup", Type="timer",
              TriggerDesc="0 0 * * * * *", Description="second")
    assert one(scf, fn, "dup")["Description"] == "first"
    # Another function may use the name.
    other = scf.create_function()
    timer(scf, other, "dup")


def test_at_most_ten_timers_per_function(scf):
    fn = scf.create_function()
    for i in range(10):
        timer(scf, fn, f"t{i}")
    scf.error("LimitExceeded.Trigger", "CreateTrigger", FunctionName=fn, TriggerName="t10", Type="timer",
              TriggerDesc=EVERY_5_MIN)
    assert listed(scf, fn)[1] == 10
    # The limit GetAccount shows.
    limits = scf.call("GetAccount")["AccountLimit"]["Namespace"]
    default = next(n for n in limits if n["Namespace"] == "default")
    assert default["Trigger"]["Timer"] == 10 and default["Trigger"]["Total"] >= 10, default["Trigger"]
    # Freeing one makes room again.
    scf.call("DeleteTrigger", FunctionName=fn, TriggerName="t3", Type="timer")
    timer(scf, fn, "t10")


def test_bound_to_a_version_an_alias_and_default(scf):
    fn = scf.create_function()
    v = scf.publish_version(fn)
    scf.call("CreateAlias", FunctionName=fn, Name="prod", FunctionVersion=v)
    assert timer(scf, fn, "on-version", Qualifier=v)["Qualifier"] == v
    assert timer(scf, fn, "on-alias", Qualifier="prod")["Qualifier"] == "prod"
    assert timer(scf, fn, "on-default", Qualifier="$DEFAULT")["Qualifier"] == "$DEFAULT"
    assert timer(scf, fn, "on-latest")["Qualifier"] == "$LATEST"
    # The qualifier must exist.
    scf.error("ResourceNotFound.Version", "CreateTrigger", FunctionName=fn, TriggerName="x", Type="timer",
              TriggerDesc=EVERY_5_MIN, Qualifier="42")
    scf.error("ResourceNotFound.Qualifier", "CreateTrigger", FunctionName=fn, TriggerName="x", Type="timer",
              TriggerDesc=EVERY_5_MIN, Qualifier="staging")
    # ListTriggers filters by qualifier; GetFunction shows the triggers of the qualifier it reads.
    assert sorted(listed(scf, fn, Filters=[{"Name": "Qualifier", "Values": [v, "prod"]}])[0]) == \
        ["on-alias", "on-version"]
    assert [t["TriggerName"] for t in scf.get(fn)["Triggers"]] == ["on-latest"]
    assert [t["TriggerName"] for t in scf.get(fn, qualifier=v)["Triggers"]] == ["on-version"]
    assert [t["TriggerName"] for t in scf.get(fn, qualifier="prod")["Triggers"]] == ["on-alias"]
    assert [t["TriggerName"] for t in scf.get(fn, qualifier="$DEFAULT")["Triggers"]] == ["on-default"]


def test_update_trigger(scf):
    fn = scf.create_function()
    before = timer(scf, fn, "u", CustomArgument="arg", Description="desc")
    # The legacy five fields are accepted on update; what is not given is kept.
    scf.call("UpdateTrigger", FunctionName=fn, TriggerName="u", Type="timer", TriggerDesc="*/10 * * * *")
    t = one(scf, fn, "u")
    assert cron(t) == "*/10 * * * *"
    assert (t["CustomArgument"], t["Description"], t["Enable"], t["AddTime"]) == \
        ("arg", "desc", 1, before["AddTime"])
    assert t["ModTime"] >= before["ModTime"]
    # Enable, Description and CustomArgument; an empty CustomArgument clears it.
    scf.call("UpdateTrigger", FunctionName=fn, TriggerName="u", Type="timer", Enable="CLOSE",
             Description="changed", CustomArgument="")
    t = one(scf, fn, "u")
    assert (t["Enable"], t["Description"], t["CustomArgument"], cron(t)) == (0, "changed", "", "*/10 * * * *")
    # The seven-field form, as JSON.
    scf.call("UpdateTrigger", FunctionName=fn, TriggerName="u", Type="timer",
             TriggerDesc='{"cron":"0 0 3 * * * *"}')
    assert one(scf, fn, "u")["TriggerDesc"] == '{"cron":"0 0 3 * * * *"}'


def test_update_trigger_refusals(scf):
    fn = scf.create_function()
    timer(scf, fn, "u")
    base = {"FunctionName": fn, "TriggerName": "u", "Type": "timer"}
    e = scf.error("InvalidParameterValue.TriggerDesc", "UpdateTrigger", {**base, "TriggerDesc": "* * * *"})
    assert "fields" in e.message, e.message
    scf.error("InvalidParameterValue.TriggerDesc", "UpdateTrigger", {**base, "TriggerDesc": "0 0 0 * * 9 *"})
    scf.error("InvalidParameterValue.Enable", "UpdateTrigger", {**base, "Enable": ""})
    scf.error("InvalidParameterValue.CustomArgument", "UpdateTrigger", {**base, "CustomArgument": "x" * 5000})
    scf.error("ResourceNotFound.Trigger", "UpdateTrigger", {**base, "TriggerName": "nobody", "Enable": "OPEN"})
    # A Qualifier names the binding the trigger was created with.
    scf.error("ResourceNotFound.Trigger", "UpdateTrigger", {**base, "Qualifier": "$DEFAULT", "Enable": "CLOSE"})
    scf.call("UpdateTrigger", {**base, "Qualifier": "$LATEST", "Description": "ok"})
    # Only timer, ckafka and http triggers are updatable in SCF.
    scf.error("InvalidParameterValue.Type", "UpdateTrigger", {**base, "Type": "cos", "Enable": "OPEN"})
    t = one(scf, fn, "u")
    assert (cron(t), t["Enable"], t["Description"]) == (EVERY_5_MIN, 1, "ok")


def test_update_trigger_status_close_and_open(scf):
    fn = scf.create_function()
    timer(scf, fn, "s")
    scf.call("UpdateTriggerStatus", FunctionName=fn, TriggerName="s", Type="timer", Enable="CLOSE")
    assert one(scf, fn, "s")["Enable"] == 0
    assert scf.get(fn)["Triggers"][0]["Enable"] == 0
    # SCF: "same as the current state, no change needed".
    scf.error("FailedOperation.UpdateTriggerStatus", "UpdateTriggerStatus", FunctionName=fn, TriggerName="s",
              Type="timer", Enable="CLOSE")
    scf.call("UpdateTriggerStatus", FunctionName=fn, TriggerName="s", Type="timer", Enable="OPEN")
    assert one(scf, fn, "s")["Enable"] == 1
    scf.error("InvalidParameterValue.Enable", "UpdateTriggerStatus", FunctionName=fn, TriggerName="s",
              Type="timer", Enable="off")
    scf.error("ResourceNotFound.Trigger", "UpdateTriggerStatus", FunctionName=fn, TriggerName="nobody",
              Type="timer", Enable="OPEN")


def test_delete_trigger(scf):
    fn = scf.create_function()
    timer(scf, fn, "d", Qualifier="$DEFAULT")
    timer(scf, fn, "kept")
    scf.error("ResourceNotFound.Trigger", "DeleteTrigger", FunctionName=fn, TriggerName="d", Type="timer",
              Qualifier="$LATEST")
    scf.call("DeleteTrigger", FunctionName=fn, TriggerName="d", Type="timer")
    assert listed(scf, fn) == (["kept"], 1)
    scf.error("ResourceNotFound.Trigger", "DeleteTrigger", FunctionName=fn, TriggerName="d", Type="timer")
    scf.error("ResourceNotFound.Trigger", "DeleteTrigger", FunctionName=fn, TriggerName="kept", Type="cos")
    # The name is free again.
    timer(scf, fn, "d")


def test_list_triggers_filters_order_and_paging(scf):
    fn = scf.create_function()
    for name, desc in (("a0", "nightly report"), ("a1", "hourly sync"), ("a2", "nightly backup"),
                       ("a3", "100% cpu check")):
        timer(scf, fn, name, Description=desc)
    scf.call("UpdateTrigger", FunctionName=fn, TriggerName="a0", Type="timer", Description="nightly report v2")
    # Defaults: by modification time, newest first.
    names, total = listed(scf, fn)
    assert total == 4 and names[0] == "a0" and names[1:] == ["a3", "a2", "a1"], names
    assert listed(scf, fn, OrderBy="add_time", Order="ASC")[0] == ["a0", "a1", "a2", "a3"]
    assert listed(scf, fn, OrderBy="add_time", Order="DESC")[0] == ["a3", "a2", "a1", "a0"]
    assert listed(scf, fn, OrderBy="mod_time", Order="ASC")[0] == ["a1", "a2", "a3", "a0"]
    # Paging keeps the total.
    assert listed(scf, fn, OrderBy="add_time", Order="ASC", Offset=1, Limit=2) == (["a1", "a2"], 4)
    assert listed(scf, fn, Offset=4) == ([], 4)
    # Filters: TriggerName exact, Description a substring, Qualifier exact; values OR-ed, filters AND-ed.
    assert listed(scf, fn, Filters=[{"Name": "TriggerName", "Values": ["a1", "a9"]}]) == (["a1"], 1)
    assert sorted(listed(scf, fn, Filters=[{"Name": "Description", "Values": ["nightly"]}])[0]) == ["a0", "a2"]
    assert listed(scf, fn, Filters=[{"Name": "Description", "Values": ["100%"]}]) == (["a3"], 1)
    assert listed(scf, fn, Filters=[{"Name": "Description", "Values": ["nightly"]},
                                    {"Name": "TriggerName", "Values": ["a2"]}]) == (["a2"], 1)
    assert listed(scf, fn, Filters=[{"Name": "Qualifier", "Values": ["$DEFAULT"]}]) == ([], 0)
    # Refusals.
    scf.error("InvalidParameterValue.Filters", "ListTriggers", FunctionName=fn,
              Filters=[{"Name": "Type", "Values": ["timer"]}])
    scf.error("InvalidParameterValue.OrderBy", "ListTriggers", FunctionName=fn, OrderBy="name")
    scf.error("InvalidParameterValue.Order", "ListTriggers", FunctionName=fn, Order="UP")
    scf.error("InvalidParameterValue.Limit", "ListTriggers", FunctionName=fn, Limit=101)
    assert len(scf.call("ListTriggers", FunctionName=fn, Limit=100)["Triggers"]) == 4


def test_unknown_function_and_other_accounts(scf, fresh_scf):
    missing = "no-such-fn-for-triggers"
    for action, extra in (("CreateTrigger", {"TriggerDesc": EVERY_5_MIN}), ("UpdateTrigger", {"Enable": "OPEN"}),
                          ("UpdateTriggerStatus", {"Enable": "OPEN"}), ("DeleteTrigger", {})):
        scf.error("ResourceNotFound.Function", action, FunctionName=missing, TriggerName="t", Type="timer", **extra)
    scf.error("ResourceNotFound.Function", "ListTriggers", FunctionName=missing)
    # Another account's function is simply not found, its triggers neither listed nor touched.
    fn = scf.create_function()
    timer(scf, fn, "mine")
    fresh_scf.error("ResourceNotFound.Function", "ListTriggers", FunctionName=fn)
    fresh_scf.error("ResourceNotFound.Function", "DeleteTrigger", FunctionName=fn, TriggerName="mine", Type="timer")
    assert listed(scf, fn) == (["mine"], 1)


def test_deleting_the_function_deletes_its_triggers(scf):
    fn = scf.create_function()
    v = scf.publish_version(fn)
    timer(scf, fn, "on-latest")
    timer(scf, fn, "on-version", Qualifier=v)
    scf.call("DeleteFunction", FunctionName=fn)
    scf.wait_gone(fn)
    scf.error("ResourceNotFound.Function", "ListTriggers", FunctionName=fn)
    # A new function of the same name starts with none.
    scf.create_function(fn)
    assert listed(scf, fn) == ([], 0)
    timer(scf, fn, "on-latest")


def test_deleting_a_version_or_an_alias_deletes_the_triggers_bound_to_it(scf):
    fn = scf.create_function()
    v1 = scf.publish_version(fn)
    v2 = scf.publish_version(fn)
    scf.call("CreateAlias", FunctionName=fn, Name="canary", FunctionVersion=v2)
    timer(scf, fn, "on-v1", Qualifier=v1)
    timer(scf, fn, "on-canary", Qualifier="canary")
    timer(scf, fn, "on-latest")
    scf.call("DeleteFunctionVersion", FunctionName=fn, Qualifier=v1)
    scf.wait_gone(fn, qualifier=v1)
    assert sorted(listed(scf, fn)[0]) == ["on-canary", "on-latest"]
    scf.call("DeleteAlias", FunctionName=fn, Name="canary")
    assert listed(scf, fn) == (["on-latest"], 1)


def test_trigger_writes_follow_the_function_status(stratus):
    # Creating and updating hold their worker 3 s (the fail point), so the transitional statuses last.
    srv = stratus(failpoints=f"update-function={HOLD}")
    scf = Scf(srv.client())
    fn = scf.create_function()
    timer(scf, fn, "kept")
    scf.call("UpdateFunctionConfiguration", FunctionName=fn, Description="held")
    assert scf.get(fn)["Status"] == "Updating"
    base = {"FunctionName": fn, "Type": "timer"}
    scf.rejected("FailedOperation.CreateTrigger", "Updating", "CreateTrigger",
                 {**base, "TriggerName": "new", "TriggerDesc": EVERY_5_MIN})
    scf.rejected("FailedOperation.CreateTrigger", "Updating", "UpdateTrigger",
                 {**base, "TriggerName": "kept", "Description": "x"})
    scf.rejected("FailedOperation.CreateTrigger", "Updating", "UpdateTriggerStatus",
                 {**base, "TriggerName": "kept", "Enable": "CLOSE"})
    scf.rejected("FailedOperation.CreateTrigger", "Updating", "DeleteTrigger", {**base, "TriggerName": "kept"})
    assert scf.get(fn)["Status"] == "Updating", "the hold ended too early: the test proves nothing"
    t = one(scf, fn, "kept")
    assert (t["Enable"], t["Description"]) == (1, "")
    scf.wait(fn)
    timer(scf, fn, "new")
    scf.call("UpdateTriggerStatus", **base, TriggerName="kept", Enable="CLOSE")


def test_no_triggers_on_a_function_that_failed_to_be_created(stratus):
    scf = Scf(stratus(failpoints="create-function=return").client())
    fn = scf.create_function(wait="CreateFailed")
    scf.rejected("FailedOperation.CreateTrigger", "CreateFailed", "CreateTrigger", FunctionName=fn,
                 TriggerName="t", Type="timer", TriggerDesc=EVERY_5_MIN)
    assert listed(scf, fn) == ([], 0)


def test_an_update_failed_function_keeps_taking_triggers(stratus):
    # UpdateFailed still serves its previous code: trigger writes are accepted (the acceptance table).
    scf = Scf(stratus(failpoints="update-function=return").client())
    fn = scf.create_function()
    scf.call("UpdateFunctionConfiguration", FunctionName=fn, Timeout=7)
    scf.wait(fn, {"UpdateFailed"})
    timer(scf, fn, "t")
    scf.call("UpdateTriggerStatus", FunctionName=fn, TriggerName="t", Type="timer", Enable="CLOSE")
    assert one(scf, fn, "t")["Enable"] == 0
    scf.call("DeleteTrigger", FunctionName=fn, TriggerName="t", Type="timer")
    assert listed(scf, fn) == ([], 0)
