"""Fault injection (FAILPOINTS, the `fail` crate's syntax): each failpoint makes that operation's asynchronous step
fail as an internal fault, so the record ends in the matching *Failed status with StatusReasons; and the retry paths
lifecycle.md allows out of each.

Assumption: a failpoint is evaluated once per execution of the operation's asynchronous step, so `1*return` fails
exactly the first such operation and `1*off->1*return` exactly the second."""

from __future__ import annotations

from harness import zips
from harness.api import Scf

B64 = zips.b64


def assert_reasons(fn: dict) -> None:
    assert fn["StatusReasons"], fn
    for r in fn["StatusReasons"]:
        assert r["ErrorCode"] and r["ErrorMessage"], fn["StatusReasons"]


def serving(fn: dict) -> tuple:
    return (fn["Handler"], fn["CodeSize"], fn["MemorySize"], fn["Timeout"], fn["Description"],
            (fn["Environment"] or {}).get("Variables"))


def version_list(scf: Scf, name: str) -> list[str]:
    return scf.call("ListVersionByFunction", FunctionName=name)["FunctionVersion"]


def test_create_fault_ends_in_create_failed(stratus):
    scf = Scf(stratus(failpoints="create-function=return").client())
    name = scf.create_function(wait="CreateFailed")
    assert_reasons(scf.get(name))
    scf.rejected("FailedOperation.UpdateFunctionConfiguration", "CreateFailed", "UpdateFunctionConfiguration",
                 FunctionName=name, Timeout=5)
    scf.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)


def test_update_fault_leaves_serving_untouched(stratus):
    scf = Scf(stratus(failpoints="update-function=return").client())
    code = zips.python_hello("serving")
    name = scf.create_function(zip_bytes=code, MemorySize=128, Description="serving",
                               Environment={"Variables": [{"Key": "K", "Value": "v"}]})
    before = serving(scf.get(name))
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=512, Timeout=60, Description="pending",
             Environment={"Variables": [{"Key": "K", "Value": "changed"}]})
    fn = scf.wait(name, {"UpdateFailed"})
    assert_reasons(fn)
    assert serving(fn) == before
    scf.call("UpdateFunctionCode", FunctionName=name, Handler="app.main_handler",
             ZipFile=B64(zips.python_hello("pending", handler_file="app.py")))
    fn = scf.wait(name, {"UpdateFailed"})
    assert_reasons(fn)
    assert serving(fn) == before and fn["CodeSize"] == len(code)
    scf.rejected("FailedOperation.PublishVersion", "UpdateFailed", "PublishVersion", FunctionName=name)
    scf.call("UpdateFunctionConfiguration", FunctionName=name, Description="and publish", Publish="TRUE")
    scf.wait(name, {"UpdateFailed"})
    assert version_list(scf, name) == ["$LATEST"]


def test_update_fault_once_then_retry_applies(stratus):
    scf = Scf(stratus(failpoints="update-function=1*return").client())
    name = scf.create_function(MemorySize=128)
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    fn = scf.wait(name, {"UpdateFailed"})
    assert fn["MemorySize"] == 128
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    fn = scf.wait(name)
    assert fn["MemorySize"] == 256 and fn["StatusReasons"] == []


def test_publish_fault_ends_in_publish_failed_and_spares_the_rest(stratus):
    scf = Scf(stratus(failpoints="publish-version=1*off->1*return").client())
    name = scf.create_function()
    assert scf.publish_version(name) == "1"
    assert scf.call("PublishVersion", FunctionName=name)["FunctionVersion"] == "2"
    v2 = scf.wait(name, {"PublishFailed"}, qualifier="2")
    assert_reasons(v2)
    assert scf.get(name)["Status"] == "Active"
    assert scf.get(name, qualifier="1")["Status"] == "Active"
    statuses = {v["Version"]: v["Status"] for v in scf.call("ListVersionByFunction", FunctionName=name)["Versions"]}
    assert statuses == {"$LATEST": "Active", "1": "Active", "2": "PublishFailed"}
    assert scf.publish_version(name) == "3"  # the failed number is not reused
    scf.call("DeleteFunctionVersion", FunctionName=name, Qualifier="2")
    scf.wait_gone(name, qualifier="2")
    assert version_list(scf, name) == ["$LATEST", "1", "3"]


def test_delete_fault_ends_in_delete_failed(stratus):
    srv = stratus(failpoints="delete-function=return")
    scf = Scf(srv.client())
    name = scf.create_function()
    scf.call("DeleteFunction", FunctionName=name)
    fn = scf.wait(name, {"DeleteFailed"})
    assert_reasons(fn)
    assert name in scf.function_names()
    for action, params in (("UpdateFunctionCode", {"ZipFile": B64(zips.python_hello("x"))}),
                           ("UpdateFunctionConfiguration", {"MemorySize": 256})):
        scf.rejected(f"FailedOperation.{action}", "DeleteFailed", action, FunctionName=name, **params)
    scf.rejected("FailedOperation.PublishVersion", "DeleteFailed", "PublishVersion", FunctionName=name)
    scf.error("ResourceInUse.Function", "CreateFunction", FunctionName=name, Runtime=zips.PY_RUNTIME,
              Handler=zips.PY_HANDLER, Code={"ZipFile": B64(zips.python_hello())})
    # Retrying is allowed; with the fault still on it fails again.
    scf.call("DeleteFunction", FunctionName=name)
    assert_reasons(scf.wait(name, {"DeleteFailed"}))
    # A terminal status survives a restart as it is; then, without the fault, the retry removes it.
    srv.restart(failpoints=None)
    scf = Scf(srv.client())
    assert scf.get(name)["Status"] == "DeleteFailed"
    scf.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)


def test_delete_fault_once_then_retry_removes(stratus):
    scf = Scf(stratus(failpoints="delete-function=1*return").client())
    name = scf.create_function()
    scf.publish_version(name)
    scf.call("DeleteFunction", FunctionName=name)
    assert_reasons(scf.wait(name, {"DeleteFailed"}))
    scf.call("DeleteFunction", FunctionName=name)
    scf.wait_gone(name)
    scf.error("ResourceNotFound*", "GetFunction", FunctionName=name, Qualifier="1")
    scf.create_function(name)


def test_delete_version_fault(stratus):
    scf = Scf(stratus(failpoints="delete-function-version=1*return").client())
    name = scf.create_function()
    scf.publish_version(name)
    scf.call("DeleteFunctionVersion", FunctionName=name, Qualifier="1")
    v = scf.wait(name, {"DeleteFailed"}, qualifier="1")
    assert_reasons(v)
    assert scf.get(name)["Status"] == "Active"
    scf.call("DeleteFunctionVersion", FunctionName=name, Qualifier="1")
    scf.wait_gone(name, qualifier="1")
    assert version_list(scf, name) == ["$LATEST"]


def test_publish_layer_fault(stratus):
    scf = Scf(stratus(failpoints="publish-layer-version=1*return").client())
    name, v1 = scf.publish_layer(wait="PublishFailed")
    # GetLayerVersion has no StatusReasons field in this API: the status is all a client can see.
    _, v2 = scf.publish_layer(name)
    assert (v1, v2) == (1, 2)
    listed = {lv["LayerVersion"]: lv["Status"] for lv in
              scf.call("ListLayerVersions", LayerName=name)["LayerVersions"]}
    assert listed.get(2) == "Active" and listed.get(1, "PublishFailed") == "PublishFailed"


def test_delete_layer_fault_then_retry(stratus):
    scf = Scf(stratus(failpoints="delete-layer-version=1*return").client())
    name, v = scf.publish_layer()
    scf.call("DeleteLayerVersion", LayerName=name, LayerVersion=v)
    scf.wait_layer(name, v, {"DeleteFailed"})
    scf.call("DeleteLayerVersion", LayerName=name, LayerVersion=v)
    scf.wait_layer(name, v, {"Deleted"})
