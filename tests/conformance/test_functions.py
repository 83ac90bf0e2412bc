"""The $LATEST lifecycle of lifecycle.md, every transition and every rejection of its table, through the SDK; plus
synchronous validation and ListFunctions.

Deterministic transitional statuses: a dedicated server started with FAILPOINTS="<point>=1*sleep(3000)" holds the
first operation of that kind in its transitional status for 3 s. Assumption: the failpoints are evaluated in the
asynchronous step, outside any open database transaction, and support the `fail` crate's `sleep(ms)` action (it
only delays; the step then goes on normally). The hold must stay well under the operation lease (5 s): a longer one
lets another worker take the operation over and finish it while the first still sleeps."""

from __future__ import annotations

import re
import secrets
import string
import threading

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from harness import zips
from harness.api import FUNCTION_TERMINAL, Scf, status_message, unique

PY = zips.PY_RUNTIME
H = zips.PY_HANDLER
B64 = zips.b64
TIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")  # as in the API examples: "2024-12-17 17:52:48"
HOLD = "1*sleep(3000)"  # below the server's 5 s operation lease, so the held worker keeps its operation
STATUS_ERROR = "FailedOperation.FunctionStatusError"


def create_params(name: str, data: bytes | None = None, **kw) -> dict:
    p = {"FunctionName": name, "Runtime": PY, "Handler": H, "Code": {"ZipFile": B64(data or zips.python_hello())}}
    p.update(kw)
    return p


def assert_not_stored(scf: Scf, name: str, namespace: str | None = None) -> None:
    p = {"FunctionName": name}
    if namespace:
        p["Namespace"] = namespace
    scf.error("ResourceNotFound.Function", "GetFunction", p)


def reasons_text(fn: dict) -> str:
    return " ".join(f"{r['ErrorCode']} {r['ErrorMessage']}" for r in fn["StatusReasons"] or [])


def assert_reasons(fn: dict, needle: str | None = None) -> None:
    reasons = fn["StatusReasons"]
    assert reasons, f"{fn['Status']} without StatusReasons: {fn}"
    for r in reasons:
        assert isinstance(r["ErrorCode"], str) and r["ErrorCode"], reasons
        assert isinstance(r["ErrorMessage"], str) and r["ErrorMessage"], reasons
    if needle is not None:
        assert any(needle in r["ErrorMessage"] for r in reasons), f"no reason names {needle!r}: {reasons}"


def assert_no_reasons(fn: dict) -> None:
    # lifecycle.md: empty when the last operation succeeded. The API examples show [].
    assert fn["StatusReasons"] == [], fn["StatusReasons"]


# ---------------------------------------------------------------------------------------------------------------
# Creating -> Active


def test_create_returns_at_once_then_becomes_active_with_the_config(scf):
    name = unique()
    data = zips.python_hello("create")
    r = scf.call(
        "CreateFunction",
        create_params(
            name,
            data,
            MemorySize=256,
            Timeout=10,
            Description="first function",
            Environment={"Variables": [{"Key": "GREETING", "Value": "hello"}, {"Key": "EMPTY", "Value": ""}]},
        ),
    )
    assert r["RequestId"]
    assert scf.get(name)["Status"] in ("Creating", "Active")
    fn = scf.wait(name)
    assert fn["FunctionName"] == name
    assert fn["Namespace"] == "default"
    assert fn["Runtime"] == PY and fn["Handler"] == H
    assert fn["MemorySize"] == 256 and fn["Timeout"] == 10
    assert fn["Description"] == "first function"
    assert fn["Environment"]["Variables"] == [{"Key": "GREETING", "Value": "hello"}, {"Key": "EMPTY", "Value": ""}]
    assert fn["Qualifier"] == "$LATEST" and fn["FunctionVersion"] == "$LATEST"
    assert fn["AvailableStatus"] == "Available"
    assert_no_reasons(fn)
    # Assumption: CodeSize is the zip's size in bytes.
    assert fn["CodeSize"] == len(data)
    assert TIME_FORMAT.match(fn["AddTime"]) and TIME_FORMAT.match(fn["ModTime"]), (fn["AddTime"], fn["ModTime"])


def test_create_defaults(scf):
    # Assumption: SCF's documented defaults: MemorySize 128, Timeout 3, Type Event, no description, no variables.
    name = scf.create_function()
    fn = scf.get(name)
    assert fn["MemorySize"] == 128 and fn["Timeout"] == 3
    assert fn["Type"] == "Event"
    assert fn["Description"] in ("", None)
    assert not (fn["Environment"] or {}).get("Variables")
    assert fn["Layers"] in ([], None)


def test_create_custom_runtime_with_executable_scf_bootstrap(scf):
    scf.create_function(zip_bytes=zips.custom_runtime(), runtime="CustomRuntime", handler=None)


def test_create_custom_runtime_with_executable_bootstrap(scf):
    # lifecycle.md: `scf_bootstrap` or `bootstrap`.
    scf.create_function(zip_bytes=zips.custom_runtime(bootstrap_name="bootstrap"), runtime="CustomRuntime", handler=None)


def test_create_handler_in_a_subdirectory(scf):
    name = scf.create_function(zip_bytes=zips.python_in_subdir(), handler="src/index.main_handler")
    assert scf.get(name)["Handler"] == "src/index.main_handler"


def test_symlink_inside_the_package_is_fine(scf):
    scf.create_function(zip_bytes=zips.symlink_inside())


def assert_active_or_runtime_unavailable(fn: dict, runtime: str) -> None:
    # A valid SCF runtime that this host cannot run fails preparation with a reason naming it (lifecycle.md
    # "Preparation"); anything else must be Active.
    if fn["Status"] == "CreateFailed":
        assert_reasons(fn, runtime)
    else:
        assert fn["Status"] == "Active", fn


def test_create_nodejs_function(scf):
    name = unique()
    scf.call("CreateFunction", create_params(name, zips.node_hello(), Runtime="Nodejs18.15", Handler=zips.NODE_HANDLER))
    assert_active_or_runtime_unavailable(scf.wait(name, FUNCTION_TERMINAL), "Nodejs18.15")


@pytest.mark.parametrize(
    "runtime",
    ["Python3.6", "Python3.7", "Python3.9", "Python3.10", "Nodejs12.16", "Nodejs14.18", "Nodejs16.13", "Nodejs18.15"],
)
def test_every_documented_runtime_is_accepted(scf, runtime):
    name = unique()
    data = zips.node_hello() if runtime.startswith("Nodejs") else zips.python_hello()
    scf.call("CreateFunction", create_params(name, data, Runtime=runtime))
    fn = scf.wait(name, FUNCTION_TERMINAL)
    assert fn["Runtime"] == runtime
    assert_active_or_runtime_unavailable(fn, runtime)


# ---------------------------------------------------------------------------------------------------------------
# Creating -> CreateFailed


@pytest.mark.parametrize("case", sorted(zips.BAD_PACKAGES))
def test_bad_package_ends_in_create_failed(scf, case):
    builder, runtime, handler, needle = zips.BAD_PACKAGES[case]
    name = unique("bad")
    scf.call("CreateFunction", create_params(name, builder(), Runtime=runtime, Handler=handler))
    fn = scf.wait(name, {"CreateFailed"}, timeout=60)
    assert_reasons(fn, needle)
    # The record stays, visible and deletable.
    assert name in {f["FunctionName"] for f in scf.call("ListFunctions", SearchKey=name)["Functions"]}
    scf.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)


def test_runtime_not_installed_fails_preparation_with_a_reason(scf):
    # Go1 is a valid SCF runtime that hosts of this project do not carry (product.md, out of scope).
    name = unique()
    # The package has the executable `index` that Handler index.main_handler names, so only the runtime can fail.
    scf.call("CreateFunction", create_params(name, zips.go_binary(), Runtime="Go1"))
    fn = scf.wait(name, FUNCTION_TERMINAL)
    if fn["Status"] != "Active":
        assert fn["Status"] == "CreateFailed"
        assert_reasons(fn, "Go1")


def test_create_failed_accepts_only_delete(scf):
    name = unique("cf")
    scf.call("CreateFunction", create_params(name, zips.missing_handler_file()))
    scf.wait(name, {"CreateFailed"})
    scf.rejected("FailedOperation.UpdateFunctionCode", "CreateFailed", "UpdateFunctionCode",
                 FunctionName=name, ZipFile=B64(zips.python_hello()))
    scf.rejected("FailedOperation.UpdateFunctionConfiguration", "CreateFailed", "UpdateFunctionConfiguration",
                 FunctionName=name, MemorySize=256)
    scf.rejected("FailedOperation.PublishVersion", "CreateFailed", "PublishVersion", FunctionName=name)
    scf.error("ResourceInUse.Function", "CreateFunction", create_params(name))
    fn = scf.get(name)
    assert fn["Status"] == "CreateFailed" and fn["MemorySize"] == 128
    scf.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)
    # Delete and create again: the documented way out of CreateFailed.
    scf.create_function(name)


# ---------------------------------------------------------------------------------------------------------------
# Updates


def test_update_code_top_level_zipfile_and_handler(scf):
    name = scf.create_function()
    new = zips.python_hello("v2", handler_file="app.py")
    scf.call("UpdateFunctionCode", FunctionName=name, Handler="app.main_handler", ZipFile=B64(new))
    fn = scf.wait(name)
    assert fn["Handler"] == "app.main_handler" and fn["CodeSize"] == len(new)
    assert_no_reasons(fn)


def test_update_code_with_code_object(scf):
    name = scf.create_function()
    new = zips.python_hello("v2-with-a-longer-marker")
    scf.call("UpdateFunctionCode", FunctionName=name, Code={"ZipFile": B64(new)})
    fn = scf.wait(name)
    assert fn["CodeSize"] == len(new) and fn["Handler"] == H


def test_update_configuration(scf):
    name = scf.create_function(Description="before", Environment={"Variables": [{"Key": "A", "Value": "1"}]})
    scf.call(
        "UpdateFunctionConfiguration",
        FunctionName=name,
        MemorySize=512,
        Timeout=30,
        Description="after",
        Environment={"Variables": [{"Key": "B", "Value": "2"}]},
    )
    fn = scf.wait(name)
    assert (fn["MemorySize"], fn["Timeout"], fn["Description"]) == (512, 30, "after")
    # Environment is replaced as a whole, as SCF does.
    assert fn["Environment"]["Variables"] == [{"Key": "B", "Value": "2"}]


def test_partial_configuration_update_keeps_other_fields(scf):
    # Assumption: fields left out of UpdateFunctionConfiguration keep their values.
    name = scf.create_function(MemorySize=256, Timeout=7, Description="keep me")
    scf.call("UpdateFunctionConfiguration", FunctionName=name, Description="changed")
    fn = scf.wait(name)
    assert (fn["MemorySize"], fn["Timeout"], fn["Description"]) == (256, 7, "changed")


def _serving(fn: dict) -> tuple:
    return (fn["Handler"], fn["CodeSize"], fn["MemorySize"], fn["Timeout"], fn["Description"], fn["Runtime"])


@pytest.mark.parametrize("case", ["missing-handler-file", "not-a-zip", "dotdot-entry", "symlink-to-etc", "fifo-entry"])
def test_bad_code_update_ends_in_update_failed_and_serving_is_untouched(scf, case):
    builder, _, _, needle = zips.BAD_PACKAGES[case]
    name = scf.create_function(Description="serving")
    before = _serving(scf.get(name))
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(builder()))
    fn = scf.wait(name, {"UpdateFailed"})
    assert_reasons(fn, needle)
    assert _serving(fn) == before


def test_update_to_a_handler_missing_from_the_zip_fails_and_keeps_the_old_handler(scf):
    name = scf.create_function()
    before = _serving(scf.get(name))
    scf.call("UpdateFunctionCode", FunctionName=name, Handler="other.main_handler", ZipFile=B64(zips.python_hello("x")))
    fn = scf.wait(name, {"UpdateFailed"})
    assert_reasons(fn, "other.py")
    assert _serving(fn) == before and fn["Handler"] == H


def test_update_failed_accepts_updates_and_delete_but_not_publish(scf):
    name = scf.create_function()
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.missing_handler_file()))
    scf.wait(name, {"UpdateFailed"})
    scf.rejected("FailedOperation.PublishVersion", "UpdateFailed", "PublishVersion", FunctionName=name)
    scf.error("ResourceInUse.Function", "CreateFunction", create_params(name))
    # Retry with configuration: allowed from UpdateFailed.
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    fn = scf.wait(name)
    assert fn["MemorySize"] == 256
    assert_no_reasons(fn)
    # And again into UpdateFailed, then a good code update repairs it.
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.not_a_zip()))
    scf.wait(name, {"UpdateFailed"})
    good = zips.python_hello("repaired")
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(good))
    fn = scf.wait(name)
    assert fn["CodeSize"] == len(good)
    assert_no_reasons(fn)
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.not_a_zip()))
    scf.wait(name, {"UpdateFailed"})
    scf.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)


INVALID_UPDATES = {
    "MemorySize": ({"MemorySize": 100}, "InvalidParameterValue.MemorySize"),
    "Timeout": ({"Timeout": 901}, "InvalidParameterValue.Timeout"),
    "Environment-reserved": (
        {"Environment": {"Variables": [{"Key": "SCF_RUNTIME", "Value": "x"}]}},
        "InvalidParameterValue.EnvironmentSystemProtect",
    ),
    "Description": ({"Description": "d" * 1001}, "InvalidParameterValue.Description"),
}


@pytest.mark.parametrize("case", sorted(INVALID_UPDATES))
def test_invalid_configuration_update_is_refused_and_changes_nothing(scf, case):
    params, code = INVALID_UPDATES[case]
    name = scf.create_function(Description="unchanged")
    before = _serving(scf.get(name))
    scf.error(code, "UpdateFunctionConfiguration", FunctionName=name, **params)
    fn = scf.get(name)
    assert fn["Status"] == "Active" and _serving(fn) == before


def test_invalid_base64_code_update_is_refused_and_changes_nothing(scf):
    name = scf.create_function()
    before = _serving(scf.get(name))
    scf.error("InvalidParameterValue.ZipFile", "UpdateFunctionCode", FunctionName=name, ZipFile="%%%not base64%%%")
    fn = scf.get(name)
    assert fn["Status"] == "Active" and _serving(fn) == before


def test_unknown_function(scf):
    name = unique("nope")
    scf.error("ResourceNotFound.Function", "GetFunction", FunctionName=name)
    scf.error("ResourceNotFound.Function", "UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.python_hello()))
    scf.error("ResourceNotFound.Function", "UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    scf.error("ResourceNotFound.Function", "PublishVersion", FunctionName=name)
    scf.error("ResourceNotFound.Function", "DeleteFunction", FunctionName=name)
    scf.error("ResourceNotFound.Function", "ListVersionByFunction", FunctionName=name)


# ---------------------------------------------------------------------------------------------------------------
# Delete


def test_delete_active_function(scf):
    name = scf.create_function()
    scf.call("DeleteFunction", FunctionName=name)
    try:
        assert scf.get(name)["Status"] == "Deleting"
    except TencentCloudSDKException as e:
        assert e.code == "ResourceNotFound.Function", e  # already gone
    e = scf.wait_gone(name)
    assert e.code == "ResourceNotFound.Function"
    scf.error("ResourceNotFound.Function", "DeleteFunction", FunctionName=name)
    scf.error("ResourceNotFound.Function", "UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    assert name not in {f["FunctionName"] for f in scf.call("ListFunctions", SearchKey=name)["Functions"]}


def test_deleted_name_can_be_created_again(scf):
    name = scf.create_function(Description="first life")
    scf.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)
    scf.create_function(name, MemorySize=256)
    fn = scf.get(name)
    assert fn["MemorySize"] == 256 and fn["Description"] in ("", None)


def test_delete_removes_versions_and_aliases(scf):
    name = scf.create_function()
    v = scf.publish_version(name)
    scf.call("CreateAlias", FunctionName=name, Name="live", FunctionVersion=v)
    scf.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)
    scf.error("ResourceNotFound*", "GetFunction", FunctionName=name, Qualifier=v)
    scf.error("ResourceNotFound.Function", "GetAlias", FunctionName=name, Name="live")
    scf.create_function(name)
    versions = scf.call("ListVersionByFunction", FunctionName=name)
    assert [x["Version"] for x in versions["Versions"]] == ["$LATEST"]
    assert "live" not in {a["Name"] for a in scf.call("ListAliases", FunctionName=name)["Aliases"] or []}


def test_same_name_is_in_use_while_active(scf):
    name = scf.create_function(Description="original")
    scf.error("ResourceInUse.Function", "CreateFunction", create_params(name, Description="impostor"))
    fn = scf.get(name)
    assert fn["Description"] == "original" and fn["Status"] == "Active"


def test_racing_creates_of_one_name_one_wins(scf):
    name = unique("race")
    results: list = [None] * 8
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        client = scf.server.client()
        barrier.wait(timeout=30)
        try:
            client.CreateFunction(_req("CreateFunction", create_params(name, Description=f"racer-{i}")))
            results[i] = "ok"
        except TencentCloudSDKException as e:
            results[i] = e.code

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results.count("ok") == 1, results
    assert all(r in ("ok", "ResourceInUse.Function") for r in results), results
    winner = results.index("ok")
    assert scf.wait(name)["Description"] == f"racer-{winner}"


def _req(action: str, params: dict):
    from harness.api import build_request

    return build_request(action, params)


# ---------------------------------------------------------------------------------------------------------------
# Transitional statuses, made deterministic with a sleeping failpoint


def test_calls_rejected_while_creating(stratus):
    scf = Scf(stratus(failpoints=f"create-function={HOLD}").client())
    name = scf.create_function(wait=None, Description="slow create")
    fn = scf.get(name)
    assert fn["Status"] == "Creating", fn
    scf.rejected(STATUS_ERROR, "Creating", "UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.python_hello("x")))
    scf.rejected(STATUS_ERROR, "Creating", "UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    scf.rejected(STATUS_ERROR, "Creating", "PublishVersion", FunctionName=name)
    scf.rejected(STATUS_ERROR, "Creating", "DeleteFunction", FunctionName=name)
    scf.error("ResourceInUse.Function", "CreateFunction", create_params(name))
    assert scf.get(name)["Status"] == "Creating", "the hold ended too early: the test proves nothing"
    assert name in scf.function_names()  # Get / List work in every status
    fn = scf.wait(name)
    assert fn["MemorySize"] == 128 and fn["Description"] == "slow create"
    assert scf.call("ListVersionByFunction", FunctionName=name)["TotalCount"] == 1


def test_calls_rejected_while_updating_and_serving_config_shown(stratus):
    scf = Scf(stratus(failpoints=f"update-function={HOLD}").client())
    name = scf.create_function(Description="old")
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=256, Description="new")
    fn = scf.get(name)
    assert fn["Status"] == "Updating", fn
    # GetFunction shows the serving configuration while the change is applied.
    assert fn["MemorySize"] == 128 and fn["Description"] == "old"
    scf.rejected(STATUS_ERROR, "Updating", "UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.python_hello("x")))
    scf.rejected(STATUS_ERROR, "Updating", "UpdateFunctionConfiguration", FunctionName=name, MemorySize=512)
    scf.rejected(STATUS_ERROR, "Updating", "PublishVersion", FunctionName=name)
    scf.rejected(STATUS_ERROR, "Updating", "DeleteFunction", FunctionName=name)
    scf.error("ResourceInUse.Function", "CreateFunction", create_params(name))
    assert scf.get(name)["Status"] == "Updating", "the hold ended too early: the test proves nothing"
    fn = scf.wait(name)
    assert fn["MemorySize"] == 256 and fn["Description"] == "new"
    assert scf.call("ListVersionByFunction", FunctionName=name)["TotalCount"] == 1  # nothing got published


def test_calls_rejected_while_deleting_and_delete_is_idempotent(stratus):
    scf = Scf(stratus(failpoints=f"delete-function={HOLD}").client())
    name = scf.create_function()
    scf.call("DeleteFunction", FunctionName=name)
    assert scf.get(name)["Status"] == "Deleting"
    scf.call("DeleteFunction", FunctionName=name)  # idempotent no-op
    scf.rejected(STATUS_ERROR, "Deleting", "UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.python_hello("x")))
    scf.rejected(STATUS_ERROR, "Deleting", "UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    scf.rejected(STATUS_ERROR, "Deleting", "PublishVersion", FunctionName=name)
    scf.error("ResourceInUse.Function", "CreateFunction", create_params(name))
    assert scf.get(name)["Status"] == "Deleting", "the hold ended too early: the test proves nothing"
    scf.wait_gone(name)
    scf.create_function(name)


def test_racing_updates_exactly_one_wins(stratus):
    srv = stratus(failpoints=f"update-function={HOLD}")
    scf = Scf(srv.client())
    name = scf.create_function(Description="start")
    n = 6
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        client = srv.client()
        barrier.wait(timeout=30)
        try:
            client.UpdateFunctionConfiguration(
                _req("UpdateFunctionConfiguration", {"FunctionName": name, "Description": f"racer-{i}"})
            )
            results[i] = "ok"
        except TencentCloudSDKException as e:
            results[i] = (e.code, e.message)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results.count("ok") == 1, results
    for r in results:
        if r != "ok":
            assert r == (STATUS_ERROR, status_message("Updating", "UpdateFunctionConfiguration")), r
    assert scf.wait(name)["Description"] == f"racer-{results.index('ok')}"


# Without failpoints: a big package makes preparation slow; a second call issued at once is either rejected with
# the transitional code, or accepted because the first operation had already finished. Never both applied wrongly.

BIG = 8 << 20


def _immediately(scf: Scf, status: str, action: str, **params) -> bool:
    """True if the call was accepted; False if refused because of `status`."""
    try:
        scf.call(action, **params)
        return True
    except TencentCloudSDKException as e:
        assert (e.code, e.message) == (STATUS_ERROR, status_message(status, action)), (e.code, e.message)
        return False


def test_update_right_after_a_slow_create(scf):
    name = scf.create_function(zip_bytes=zips.python_large(BIG), wait=None)
    accepted = _immediately(scf, "Creating", "UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    fn = scf.wait(name, timeout=60)
    assert fn["MemorySize"] == (256 if accepted else 128)


def test_delete_right_after_a_slow_create(scf):
    name = scf.create_function(zip_bytes=zips.python_large(BIG), wait=None)
    if _immediately(scf, "Creating", "DeleteFunction", FunctionName=name):
        scf.wait_gone(name, timeout=60)
    else:
        scf.wait(name, timeout=60)


def test_publish_right_after_a_slow_code_update(scf):
    name = scf.create_function()
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.python_large(BIG)))
    accepted = _immediately(scf, "Updating", "PublishVersion", FunctionName=name)
    scf.wait(name, timeout=60)
    versions = scf.call("ListVersionByFunction", FunctionName=name)["FunctionVersion"]
    assert ("1" in versions) == accepted, versions


def test_second_update_right_after_a_slow_code_update(scf):
    name = scf.create_function()
    big = zips.python_large(BIG)
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(big))
    accepted = _immediately(scf, "Updating", "UpdateFunctionConfiguration", FunctionName=name, Timeout=42)
    fn = scf.wait(name, timeout=60)
    assert fn["CodeSize"] == len(big)
    assert fn["Timeout"] == (42 if accepted else 3)


# ---------------------------------------------------------------------------------------------------------------
# Synchronous validation: an error, and nothing stored


def _rand(n: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


BAD_NAMES = ["a", "1abc", "abc-", "abc_", "ab c", "ab.c", "-abc", "_abc", "a" * 61, "héllo", "ab/c", "中文函数"]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=lambda s: repr(s)[:20])
def test_invalid_function_name(scf, bad):
    scf.error("InvalidParameterValue.FunctionName", "CreateFunction", create_params(bad))


def test_function_name_length_boundaries(scf):
    for name in ("z" + _rand(1), "f" + _rand(59)):
        scf.create_function(name)
        assert scf.get(name)["FunctionName"] == name


@pytest.mark.parametrize("mem", [0, 32, 63, 65, 100, 192, 200, 3100, 3200, 4096, -128])
def test_invalid_memory_size(scf, mem):
    name = unique()
    scf.error("InvalidParameterValue.MemorySize", "CreateFunction", create_params(name, MemorySize=mem))
    assert_not_stored(scf, name)


@pytest.mark.parametrize("mem", [64, 128, 384, 1024, 3072])
def test_valid_memory_size(scf, mem):
    name = scf.create_function(MemorySize=mem)
    assert scf.get(name)["MemorySize"] == mem


@pytest.mark.parametrize("timeout", [0, -1, 901, 100000])
def test_invalid_timeout(scf, timeout):
    name = unique()
    scf.error("InvalidParameterValue.Timeout", "CreateFunction", create_params(name, Timeout=timeout))
    assert_not_stored(scf, name)


@pytest.mark.parametrize("timeout", [1, 900])
def test_valid_timeout(scf, timeout):
    assert scf.get(scf.create_function(Timeout=timeout))["Timeout"] == timeout


@pytest.mark.parametrize("runtime", ["Python9.9", "python3.9", "Nodejs", "Java99", "Ruby2.7"])
def test_invalid_runtime(scf, runtime):
    name = unique()
    scf.error("InvalidParameterValue.Runtime", "CreateFunction", create_params(name, Runtime=runtime))
    assert_not_stored(scf, name)


@pytest.mark.parametrize("key", ["SCF_FOO", "QCLOUD_FOO", "TENCENTCLOUD_FOO", "SCF_"])
def test_reserved_environment_prefix(scf, key):
    name = unique()
    env = {"Variables": [{"Key": "OK", "Value": "1"}, {"Key": key, "Value": "x"}]}
    scf.error("InvalidParameterValue.EnvironmentSystemProtect", "CreateFunction", create_params(name, Environment=env))
    assert_not_stored(scf, name)


def test_environment_over_4kb(scf):
    name = unique()
    env = {"Variables": [{"Key": f"K{i}", "Value": "v" * 1000} for i in range(5)]}
    # Assumption: InvalidParameterValue.EnvironmentExceededLimit (the SCF code for it); .Environment also accepted.
    scf.error(
        ("InvalidParameterValue.EnvironmentExceededLimit", "InvalidParameterValue.Environment"),
        "CreateFunction",
        create_params(name, Environment=env),
    )
    assert_not_stored(scf, name)


def test_environment_under_4kb_is_kept_in_order(scf):
    variables = [{"Key": f"K{i}", "Value": "v" * 900} for i in range(4)]  # ~3.6 KB
    name = scf.create_function(Environment={"Variables": variables})
    assert scf.get(name)["Environment"]["Variables"] == variables


@pytest.mark.parametrize("variables", [[{"Key": "1ABC", "Value": "x"}], [{"Key": "A-B", "Value": "x"}],
                                       [{"Key": "A", "Value": "1"}, {"Key": "A", "Value": "2"}]],
                         ids=["leading-digit", "dash", "duplicate"])
def test_invalid_environment_keys(scf, variables):
    # Assumption: keys must be identifiers and unique: InvalidParameterValue.Environment.
    name = unique()
    scf.error("InvalidParameterValue.Environment", "CreateFunction",
              create_params(name, Environment={"Variables": variables}))
    assert_not_stored(scf, name)


def test_description_limit(scf):
    name = unique()
    scf.error("InvalidParameterValue.Description", "CreateFunction", create_params(name, Description="d" * 1001))
    assert_not_stored(scf, name)
    # 1000 characters are fine even when they are 3000 bytes.
    ok = scf.create_function(Description="函" * 1000)
    assert scf.get(ok)["Description"] == "函" * 1000


@pytest.mark.parametrize("handler", ["index", ".main_handler", "index.", "../index.main_handler", "/abs/index.main"])
def test_invalid_handler(scf, handler):
    # Assumption: the handler's shape ("file.function") is checked synchronously: InvalidParameterValue.Handler.
    name = unique()
    scf.error("InvalidParameterValue.Handler", "CreateFunction", create_params(name, Handler=handler))
    assert_not_stored(scf, name)


@pytest.mark.parametrize("bad", ["%%%not base64%%%", "QUJDR", "UEsDBA==!!"])
def test_invalid_base64_zipfile(scf, bad):
    name = unique()
    p = create_params(name)
    p["Code"] = {"ZipFile": bad}
    scf.error("InvalidParameterValue.ZipFile", "CreateFunction", p)
    assert_not_stored(scf, name)


def test_rejected_creates_store_nothing(fresh_scf):
    scf = fresh_scf
    scf.error("InvalidParameterValue.MemorySize", "CreateFunction", create_params(unique(), MemorySize=1))
    scf.error("InvalidParameterValue.Runtime", "CreateFunction", create_params(unique(), Runtime="Cobol85"))
    p = create_params(unique())
    p["Code"] = {"ZipFile": "***"}
    scf.error("InvalidParameterValue.ZipFile", "CreateFunction", p)
    assert scf.call("ListFunctions")["TotalCount"] == 0
    usage = scf.call("GetAccount")["AccountUsage"]
    assert all(ns["FunctionsCount"] == 0 for ns in usage["Namespace"] or [])


# ---------------------------------------------------------------------------------------------------------------
# ListFunctions


@pytest.fixture
def listed(fresh_scf):
    """Seven functions in a fresh account: six Active, one CreateFailed."""
    scf = fresh_scf
    tag = _rand(6)
    names = [f"lst-{tag}-{c}" for c in "abcdefg"]
    for i, n in enumerate(names):
        data = zips.missing_handler_file() if i == 3 else zips.python_hello()
        scf.call("CreateFunction", create_params(n, data, Description=f"marker-{i} of the list"))
    for i, n in enumerate(names):
        scf.wait(n, {"CreateFailed" if i == 3 else "Active"})
    return scf, names


def test_list_functions_total_and_fields(listed):
    scf, names = listed
    r = scf.call("ListFunctions")
    assert r["TotalCount"] == 7
    got = {f["FunctionName"]: f for f in r["Functions"]}
    assert set(got) == set(names)
    for i, n in enumerate(names):
        f = got[n]
        assert f["Namespace"] == "default" and f["Runtime"] == PY
        assert f["Status"] == ("CreateFailed" if i == 3 else "Active")
        assert f["Description"] == f"marker-{i} of the list"
        assert TIME_FORMAT.match(f["AddTime"]) and TIME_FORMAT.match(f["ModTime"])
        if i == 3:
            assert f["StatusReasons"], f
        else:
            assert f["StatusReasons"] == [], f


def test_list_functions_paging(listed):
    scf, names = listed
    seen = []
    for offset in (0, 3, 6):
        r = scf.call("ListFunctions", Offset=offset, Limit=3, Orderby="FunctionName", Order="ASC")
        assert r["TotalCount"] == 7
        assert len(r["Functions"]) == (3 if offset < 6 else 1)
        seen += [f["FunctionName"] for f in r["Functions"]]
    assert seen == sorted(names)
    r = scf.call("ListFunctions", Offset=50, Limit=3)
    assert r["Functions"] == [] and r["TotalCount"] == 7


def test_list_functions_order(listed):
    scf, names = listed
    asc = [f["FunctionName"] for f in scf.call("ListFunctions", Orderby="FunctionName", Order="ASC")["Functions"]]
    desc = [f["FunctionName"] for f in scf.call("ListFunctions", Orderby="FunctionName", Order="DESC")["Functions"]]
    assert asc == sorted(names) and desc == sorted(names, reverse=True)
    for key in ("AddTime", "ModTime"):
        a = [f[key] for f in scf.call("ListFunctions", Orderby=key, Order="ASC")["Functions"]]
        d = [f[key] for f in scf.call("ListFunctions", Orderby=key, Order="DESC")["Functions"]]
        assert a == sorted(a) and d == sorted(d, reverse=True)


def test_list_functions_search_key_and_description(listed):
    scf, names = listed
    r = scf.call("ListFunctions", SearchKey=names[4][2:])  # a substring of one name
    assert [f["FunctionName"] for f in r["Functions"]] == [names[4]] and r["TotalCount"] == 1
    r = scf.call("ListFunctions", Description="marker-5")
    assert [f["FunctionName"] for f in r["Functions"]] == [names[5]]
    r = scf.call("ListFunctions", SearchKey="no-such-function-anywhere")
    assert r["Functions"] == [] and r["TotalCount"] == 0


def test_list_functions_status_filter(listed):
    scf, names = listed
    r = scf.call("ListFunctions", Filters=[{"Name": "Status", "Values": ["CreateFailed"]}])
    assert [f["FunctionName"] for f in r["Functions"]] == [names[3]] and r["TotalCount"] == 1
    r = scf.call("ListFunctions", Filters=[{"Name": "Status", "Values": ["Active", "Creating"]}])
    assert {f["FunctionName"] for f in r["Functions"]} == set(names) - {names[3]}


def test_list_functions_bad_order_values(scf):
    scf.error("InvalidParameterValue.Order", "ListFunctions", Order="UP")
    # Assumption: the field is spelled Orderby in this action; either spelling of the code accepted.
    scf.error(("InvalidParameterValue.Orderby", "InvalidParameterValue.OrderBy"), "ListFunctions", Orderby="Colour")


def test_kept_integration_settings_are_bounded(scf):
    # Settings Stratus keeps without acting on them are capped (tags as SCF's tag service caps them), so what lives
    # in every snapshot stays small.
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    scf.error("InvalidParameterValue.LimitExceeded", "CreateFunction", create_params(unique("tags"), Tags=many))
    long_key = [{"Key": "k" * 128, "Value": "v"}]
    scf.error("InvalidParameterValue.LimitExceeded", "CreateFunction", create_params(unique("tags"), Tags=long_key))
    name = scf.create_function(Tags=[{"Key": "team", "Value": "core"}])
    huge = {"VpcId": "vpc-" + "a" * 20_000, "SubnetId": "subnet-1"}
    scf.error("InvalidParameterValue.LimitExceeded", "UpdateFunctionConfiguration",
              {"FunctionName": name, "VpcConfig": huge})
    assert scf.get(name)["Status"] == "Active"
