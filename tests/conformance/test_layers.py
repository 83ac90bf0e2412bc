"""Layer versions (lifecycle.md "Layer versions") and binding them to functions."""

from __future__ import annotations

import hashlib
import re

import pytest

from harness import zips
from harness.api import Scf, unique

PY = zips.PY_RUNTIME
TIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
HOLD = "1*sleep(3000)"  # below the server's 5 s operation lease, so the held worker keeps its operation
LAYER_MISSING = ("ResourceNotFound.Layer", "ResourceNotFound.LayerVersion")


def bound(fn: dict) -> list[tuple[str, int]]:
    return [(lv["LayerName"], lv["LayerVersion"]) for lv in fn["Layers"] or []]


def layer_ref(name: str, version: int) -> dict:
    return {"LayerName": name, "LayerVersion": version}


def versions_listed(scf: Scf, layer: str, **kw) -> list[int]:
    return sorted(lv["LayerVersion"] for lv in scf.call("ListLayerVersions", LayerName=layer, **kw)["LayerVersions"])


def test_publish_layer_version(scf):
    content = zips.layer_content("mylib.py")
    name = unique("layer")
    r = scf.call("PublishLayerVersion", LayerName=name, CompatibleRuntimes=[PY, "Nodejs18.15"],
                 Content={"ZipFile": zips.b64(content)}, Description="shared code", LicenseInfo="MIT")
    assert r["LayerVersion"] == 1
    first = scf.call("GetLayerVersion", LayerName=name, LayerVersion=1)
    assert first["Status"] in ("Publishing", "Active")
    lv = scf.wait_layer(name, 1)
    assert (lv["LayerName"], lv["LayerVersion"]) == (name, 1)
    assert lv["CompatibleRuntimes"] == [PY, "Nodejs18.15"]
    assert (lv["Description"], lv["LicenseInfo"]) == ("shared code", "MIT")
    # Assumption: CodeSha256 is the lowercase hex sha256 of the uploaded zip.
    assert lv["CodeSha256"] == hashlib.sha256(content).hexdigest()
    assert TIME_FORMAT.match(lv["AddTime"]), lv["AddTime"]


def test_layer_version_numbers_grow_and_are_never_reused(scf):
    name, v1 = scf.publish_layer()
    _, v2 = scf.publish_layer(name)
    assert (v1, v2) == (1, 2)
    scf.call("DeleteLayerVersion", LayerName=name, LayerVersion=2)
    scf.wait_layer(name, 2, {"Deleted"})
    _, v3 = scf.publish_layer(name)
    assert v3 == 3


@pytest.mark.parametrize("case", ["not-a-zip", "dotdot-entry", "absolute-entry", "symlink-to-etc", "fifo-entry",
                                  "zip-bomb"])
def test_bad_layer_content_ends_in_publish_failed(scf, case):
    builder = zips.BAD_PACKAGES[case][0]
    name, v = scf.publish_layer(content=builder(), wait=None)
    scf.wait_layer(name, v, {"PublishFailed"}, timeout=60)
    # PublishFailed may be deleted.
    scf.call("DeleteLayerVersion", LayerName=name, LayerVersion=v)
    scf.wait_layer(name, v, {"Deleted"})


def test_delete_layer_version_leaves_a_tombstone(scf):
    name, _ = scf.publish_layer(Description="to be deleted")
    scf.publish_layer(name)
    scf.call("DeleteLayerVersion", LayerName=name, LayerVersion=1)
    tomb = scf.wait_layer(name, 1, {"Deleted"})
    assert (tomb["LayerName"], tomb["LayerVersion"], tomb["Description"]) == (name, 1, "to be deleted")
    assert versions_listed(scf, name) == [2]


def test_list_layers_shows_the_newest_non_deleted_version(fresh_scf):
    scf = fresh_scf
    a, _ = scf.publish_layer("alpha-layer", runtimes=[PY])
    scf.publish_layer(a, runtimes=[PY], Description="alpha two")
    b, _ = scf.publish_layer("beta-layer", runtimes=["Nodejs18.15"])
    r = scf.call("ListLayers")
    assert r["TotalCount"] == 2
    assert {(lv["LayerName"], lv["LayerVersion"]) for lv in r["Layers"]} == {(a, 2), (b, 1)}
    r = scf.call("ListLayers", CompatibleRuntime="Nodejs18.15")
    assert [(lv["LayerName"], lv["LayerVersion"]) for lv in r["Layers"]] == [(b, 1)]
    r = scf.call("ListLayers", SearchKey="alph")
    assert [lv["LayerName"] for lv in r["Layers"]] == [a]
    scf.call("DeleteLayerVersion", LayerName=a, LayerVersion=2)
    scf.wait_layer(a, 2, {"Deleted"})
    assert {(lv["LayerName"], lv["LayerVersion"]) for lv in scf.call("ListLayers")["Layers"]} == {(a, 1), (b, 1)}
    scf.call("DeleteLayerVersion", LayerName=a, LayerVersion=1)
    scf.wait_layer(a, 1, {"Deleted"})
    r = scf.call("ListLayers")
    assert [(lv["LayerName"], lv["LayerVersion"]) for lv in r["Layers"]] == [(b, 1)] and r["TotalCount"] == 1


def test_list_layer_versions(scf):
    name, _ = scf.publish_layer(runtimes=[PY])
    scf.publish_layer(name, runtimes=["Nodejs18.15"])
    scf.publish_layer(name, runtimes=[PY, "Nodejs18.15"])
    assert versions_listed(scf, name) == [1, 2, 3]
    assert versions_listed(scf, name, CompatibleRuntime=["Nodejs18.15"]) == [2, 3]
    scf.call("DeleteLayerVersion", LayerName=name, LayerVersion=3)
    scf.wait_layer(name, 3, {"Deleted"})
    assert versions_listed(scf, name) == [1, 2]
    for lv in scf.call("ListLayerVersions", LayerName=name)["LayerVersions"]:
        assert lv["LayerName"] == name and lv["Status"] == "Active"


def test_unknown_layer(scf):
    scf.error(LAYER_MISSING, "GetLayerVersion", LayerName="no-such-layer-x", LayerVersion=1)
    scf.error(LAYER_MISSING, "DeleteLayerVersion", LayerName="no-such-layer-x", LayerVersion=1)
    name, _ = scf.publish_layer()
    scf.error("ResourceNotFound.LayerVersion", "GetLayerVersion", LayerName=name, LayerVersion=9)
    scf.error("ResourceNotFound.LayerVersion", "DeleteLayerVersion", LayerName=name, LayerVersion=9)


@pytest.mark.parametrize("bad", ["1layer", "-layer", "layer-", "a" * 65, "la yer"])
def test_invalid_layer_name(scf, bad):
    scf.error("InvalidParameterValue.LayerName", "PublishLayerVersion", LayerName=bad, CompatibleRuntimes=[PY],
              Content={"ZipFile": zips.b64(zips.layer_content())})


@pytest.mark.parametrize("runtimes", [["Cobol85"], [PY, "python3.9"]], ids=["unknown", "one-unknown"])
def test_invalid_compatible_runtimes(scf, runtimes):
    name = unique("layer")
    scf.error("InvalidParameterValue.CompatibleRuntimes", "PublishLayerVersion", LayerName=name,
              CompatibleRuntimes=runtimes, Content={"ZipFile": zips.b64(zips.layer_content())})
    scf.error(LAYER_MISSING, "GetLayerVersion", LayerName=name, LayerVersion=1)


def test_invalid_layer_base64(scf):
    name = unique("layer")
    # Assumption: InvalidParameterValue.ZipFile as for functions; .Content also accepted.
    scf.error(("InvalidParameterValue.ZipFile", "InvalidParameterValue.Content"), "PublishLayerVersion",
              LayerName=name, CompatibleRuntimes=[PY], Content={"ZipFile": "%%%"})
    scf.error(LAYER_MISSING, "GetLayerVersion", LayerName=name, LayerVersion=1)


# ---------------------------------------------------------------------------------------------------------------
# Binding


def test_bind_layers_on_create_keeps_their_order(scf):
    a, av = scf.publish_layer()
    b, bv = scf.publish_layer()
    name = scf.create_function(Layers=[layer_ref(b, bv), layer_ref(a, av)])
    fn = scf.get(name)
    assert bound(fn) == [(b, bv), (a, av)]
    for lv in fn["Layers"]:
        assert PY in lv["CompatibleRuntimes"]


def test_bind_at_most_five_layers(scf):
    layers = [scf.publish_layer() for _ in range(6)]
    name = unique()
    scf.error("InvalidParameterValue.Layers", "CreateFunction", FunctionName=name, Runtime=PY,
              Handler=zips.PY_HANDLER, Code={"ZipFile": zips.b64(zips.python_hello())},
              Layers=[layer_ref(n, v) for n, v in layers])
    scf.error("ResourceNotFound.Function", "GetFunction", FunctionName=name)
    ok = scf.create_function(Layers=[layer_ref(n, v) for n, v in layers[:5]])
    assert len(bound(scf.get(ok))) == 5


def test_bind_incompatible_layer(scf):
    n, v = scf.publish_layer(runtimes=["Nodejs18.15"])
    name = unique()
    scf.error("InvalidParameterValue.Layers", "CreateFunction", FunctionName=name, Runtime=PY,
              Handler=zips.PY_HANDLER, Code={"ZipFile": zips.b64(zips.python_hello())}, Layers=[layer_ref(n, v)])
    scf.error("ResourceNotFound.Function", "GetFunction", FunctionName=name)


def test_bind_unknown_layer_version(scf):
    n, _ = scf.publish_layer()
    for ref in (layer_ref(n, 5), layer_ref("no-such-layer-y", 1)):
        name = unique()
        scf.error("ResourceNotFound.LayerVersion", "CreateFunction", FunctionName=name, Runtime=PY,
                  Handler=zips.PY_HANDLER, Code={"ZipFile": zips.b64(zips.python_hello())}, Layers=[ref])
        scf.error("ResourceNotFound.Function", "GetFunction", FunctionName=name)


def test_bind_publish_failed_or_deleted_layer(scf):
    failed, fv = scf.publish_layer(content=zips.not_a_zip(), wait="PublishFailed")
    gone, gv = scf.publish_layer()
    scf.call("DeleteLayerVersion", LayerName=gone, LayerVersion=gv)
    scf.wait_layer(gone, gv, {"Deleted"})
    scf.error("InvalidParameterValue.Layers", "CreateFunction", FunctionName=unique(), Runtime=PY,
              Handler=zips.PY_HANDLER, Code={"ZipFile": zips.b64(zips.python_hello())},
              Layers=[layer_ref(failed, fv)])
    # Assumption: a Deleted tombstone is "not Active" (InvalidParameterValue.Layers); ResourceNotFound.LayerVersion
    # is also accepted.
    scf.error(("InvalidParameterValue.Layers", "ResourceNotFound.LayerVersion"), "CreateFunction",
              FunctionName=unique(), Runtime=PY, Handler=zips.PY_HANDLER,
              Code={"ZipFile": zips.b64(zips.python_hello())}, Layers=[layer_ref(gone, gv)])


def test_bind_layers_on_configuration_update(scf):
    a, av = scf.publish_layer()
    name = scf.create_function()
    scf.call("UpdateFunctionConfiguration", FunctionName=name, Layers=[layer_ref(a, av)])
    assert bound(scf.wait(name)) == [(a, av)]
    incompatible, iv = scf.publish_layer(runtimes=["Nodejs18.15"])
    scf.error("InvalidParameterValue.Layers", "UpdateFunctionConfiguration", FunctionName=name,
              Layers=[layer_ref(incompatible, iv)])
    scf.error("ResourceNotFound.LayerVersion", "UpdateFunctionConfiguration", FunctionName=name,
              Layers=[layer_ref(a, 77)])
    fn = scf.get(name)
    assert fn["Status"] == "Active" and bound(fn) == [(a, av)]
    # Assumption: an empty list unbinds every layer.
    scf.call("UpdateFunctionConfiguration", FunctionName=name, Layers=[])
    assert bound(scf.wait(name)) == []


def test_function_keeps_a_layer_version_deleted_later(scf):
    n, v = scf.publish_layer()
    name = scf.create_function(Layers=[layer_ref(n, v)])
    ver = scf.publish_version(name)
    scf.call("DeleteLayerVersion", LayerName=n, LayerVersion=v)
    scf.wait_layer(n, v, {"Deleted"})
    fn = scf.get(name)
    assert fn["Status"] == "Active" and bound(fn) == [(n, v)]
    pinned = scf.get(name, qualifier=ver)
    assert pinned["Status"] == "Active" and bound(pinned) == [(n, v)]
    # But nothing new may bind it.
    scf.error(("InvalidParameterValue.Layers", "ResourceNotFound.LayerVersion"), "CreateFunction",
              FunctionName=unique(), Runtime=PY, Handler=zips.PY_HANDLER,
              Code={"ZipFile": zips.b64(zips.python_hello())}, Layers=[layer_ref(n, v)])


def test_layer_operation_conflicts(stratus):
    scf = Scf(stratus(failpoints=f"publish-layer-version={HOLD};delete-layer-version={HOLD}").client())
    name, v = scf.publish_layer(wait=None)
    assert scf.call("GetLayerVersion", LayerName=name, LayerVersion=v)["Status"] == "Publishing"
    scf.error("FailedOperation.OperationConflict", "DeleteLayerVersion", LayerName=name, LayerVersion=v)
    # Only Active layer versions bind.
    scf.error("InvalidParameterValue.Layers", "CreateFunction", FunctionName=unique(), Runtime=PY,
              Handler=zips.PY_HANDLER, Code={"ZipFile": zips.b64(zips.python_hello())},
              Layers=[layer_ref(name, v)])
    assert scf.call("GetLayerVersion", LayerName=name, LayerVersion=v)["Status"] == "Publishing", "hold ended early"
    scf.wait_layer(name, v)
    scf.call("DeleteLayerVersion", LayerName=name, LayerVersion=v)
    assert scf.call("GetLayerVersion", LayerName=name, LayerVersion=v)["Status"] == "Deleting"
    scf.error("FailedOperation.OperationConflict", "DeleteLayerVersion", LayerName=name, LayerVersion=v)
    assert scf.call("GetLayerVersion", LayerName=name, LayerVersion=v)["Status"] == "Deleting", "hold ended early"
    scf.wait_layer(name, v, {"Deleted"})
