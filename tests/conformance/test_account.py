"""GetAccount, and tenancy: a second account never sees or touches the first one's functions, layers and namespaces;
it gets ResourceNotFound.* as if they did not exist."""

from __future__ import annotations

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from harness import zips
from harness.api import Scf, unique

LAYER_MISSING = ("ResourceNotFound.Layer", "ResourceNotFound.LayerVersion")


def test_get_account_of_a_fresh_account(fresh_scf):
    r = fresh_scf.call("GetAccount")
    usage, limit = r["AccountUsage"], r["AccountLimit"]
    assert usage["NamespacesCount"] == 1
    assert [u["Namespace"] for u in usage["Namespace"]] == ["default"]
    assert usage["Namespace"][0]["FunctionsCount"] == 0
    assert usage["Namespace"][0]["Functions"] in ([], None)
    assert isinstance(limit["NamespacesCount"], int) and limit["NamespacesCount"] >= 1
    lim = {n["Namespace"]: n for n in limit["Namespace"]}
    assert "default" in lim
    # The limits of model::Limits' defaults that the API can show. Assumption: shown per namespace as SCF does.
    assert lim["default"]["TimeoutLimit"] == 900
    assert lim["default"]["InitTimeoutLimit"] == 300
    assert isinstance(lim["default"]["FunctionsCount"], int) and lim["default"]["FunctionsCount"] > 0
    assert isinstance(lim["default"]["ConcurrentExecutions"], int) and lim["default"]["ConcurrentExecutions"] > 0


def test_get_account_counts_functions(fresh_scf):
    scf = fresh_scf
    names = {scf.create_function() for _ in range(2)}
    failed = scf.create_function(zip_bytes=zips.not_a_zip(), wait="CreateFailed")
    ns = scf.call("GetAccount")["AccountUsage"]["Namespace"]
    default = next(u for u in ns if u["Namespace"] == "default")
    # Assumption: every existing function counts, whatever its status.
    assert default["FunctionsCount"] == 3
    assert set(default["Functions"]) == names | {failed}
    scf.call("DeleteFunction", FunctionName=failed)
    scf.wait_gone(failed)
    default = next(u for u in scf.call("GetAccount")["AccountUsage"]["Namespace"] if u["Namespace"] == "default")
    assert default["FunctionsCount"] == 2


@pytest.fixture
def owner_and_stranger(server_log):
    """Account A with a function (two versions, an alias), a namespace with a function, and a layer; and a fresh
    account B on the same server."""
    a = Scf(server_log.client(server_log.create_account()), server_log)
    b = Scf(server_log.client(server_log.create_account()), server_log)
    fn = a.create_function("shared-name-fn", Description="owned by A", MemorySize=256)
    a.publish_version(fn)
    a.call("CreateAlias", FunctionName=fn, Name="live", FunctionVersion="1")
    ns = "team-ns"
    a.call("CreateNamespace", Namespace=ns, Description="A's namespace")
    nsfn = a.create_function("ns-fn", namespace=ns)
    layer, lv = a.publish_layer("shared-layer")
    return a, b, {"fn": fn, "ns": ns, "nsfn": nsfn, "layer": layer, "lv": lv}


def test_stranger_cannot_see_or_touch_functions(owner_and_stranger):
    a, b, r = owner_and_stranger
    fn = r["fn"]
    assert b.call("ListFunctions")["TotalCount"] == 0
    b.error("ResourceNotFound.Function", "GetFunction", FunctionName=fn)
    b.error("ResourceNotFound.Function", "GetFunction", FunctionName=fn, Qualifier="1")
    b.error("ResourceNotFound.Function", "UpdateFunctionCode", FunctionName=fn, ZipFile=zips.b64(zips.python_hello()))
    b.error("ResourceNotFound.Function", "UpdateFunctionConfiguration", FunctionName=fn, MemorySize=1024)
    b.error("ResourceNotFound.Function", "PublishVersion", FunctionName=fn)
    b.error("ResourceNotFound.Function", "ListVersionByFunction", FunctionName=fn)
    b.error("ResourceNotFound.Function", "DeleteFunctionVersion", FunctionName=fn, Qualifier="1")
    b.error("ResourceNotFound.Function", "DeleteFunction", FunctionName=fn, Qualifier="1")
    b.error("ResourceNotFound.Function", "DeleteFunction", FunctionName=fn)
    b.error("ResourceNotFound.Function", "GetAlias", FunctionName=fn, Name="live")
    b.error("ResourceNotFound.Function", "ListAliases", FunctionName=fn)
    b.error("ResourceNotFound.Function", "CreateAlias", FunctionName=fn, Name="mine", FunctionVersion="1")
    b.error("ResourceNotFound.Function", "UpdateAlias", FunctionName=fn, Name="live", FunctionVersion="$LATEST")
    b.error("ResourceNotFound.Function", "DeleteAlias", FunctionName=fn, Name="live")
    # B may use the same name for its own function; A's is untouched.
    b.create_function(fn, Description="owned by B")
    assert b.get(fn)["Description"] == "owned by B"
    mine = a.get(fn)
    assert (mine["Description"], mine["MemorySize"], mine["Status"]) == ("owned by A", 256, "Active")
    assert a.get(fn, qualifier="1")["Status"] == "Active"
    assert a.call("GetAlias", FunctionName=fn, Name="live")["FunctionVersion"] == "1"
    # And B deleting its own does not delete A's.
    b.call("DeleteFunction", FunctionName=fn)
    b.wait_gone(fn)
    assert a.get(fn)["Status"] == "Active"


def test_stranger_cannot_see_or_touch_namespaces(owner_and_stranger):
    a, b, r = owner_and_stranger
    ns = r["ns"]
    assert [n["Name"] for n in b.call("ListNamespaces")["Namespaces"]] == ["default"]
    b.error("ResourceNotFound.Namespace", "ListFunctions", Namespace=ns)
    b.error("ResourceNotFound.Namespace", "GetFunction", FunctionName=r["nsfn"], Namespace=ns)
    b.error("ResourceNotFound.Namespace", "UpdateNamespace", Namespace=ns, Description="hijacked")
    b.error("ResourceNotFound.Namespace", "DeleteNamespace", Namespace=ns)
    # B can have a namespace of the same name; A's keeps its description and function.
    b.call("CreateNamespace", Namespace=ns, Description="B's namespace")
    a_ns = {n["Name"]: n for n in a.call("ListNamespaces")["Namespaces"]}
    assert a_ns[ns]["Description"] == "A's namespace"
    assert a.function_names(ns) == {r["nsfn"]}
    assert b.function_names(ns) == set()


def test_stranger_cannot_see_or_touch_layers(owner_and_stranger):
    a, b, r = owner_and_stranger
    layer, lv = r["layer"], r["lv"]
    assert b.call("ListLayers")["TotalCount"] == 0
    b.error(LAYER_MISSING, "GetLayerVersion", LayerName=layer, LayerVersion=lv)
    b.error(LAYER_MISSING, "DeleteLayerVersion", LayerName=layer, LayerVersion=lv)
    try:
        listed = b.call("ListLayerVersions", LayerName=layer)["LayerVersions"]
        assert not listed, listed
    except TencentCloudSDKException as e:  # ResourceNotFound.Layer is as good as an empty list
        assert str(e.code).startswith("ResourceNotFound"), e
    b.error("ResourceNotFound.LayerVersion", "CreateFunction", FunctionName=unique(), Runtime=zips.PY_RUNTIME,
            Handler=zips.PY_HANDLER, Code={"ZipFile": zips.b64(zips.python_hello())},
            Layers=[{"LayerName": layer, "LayerVersion": lv}])
    # Layer version numbers are per account: B's first version of the same name is 1.
    _, bv = b.publish_layer(layer)
    assert bv == 1
    assert a.call("GetLayerVersion", LayerName=layer, LayerVersion=lv)["Status"] == "Active"
    _, av2 = a.publish_layer(layer)
    assert av2 == lv + 1


def test_stranger_usage_does_not_include_the_owner(owner_and_stranger):
    a, b, r = owner_and_stranger
    usage = b.call("GetAccount")["AccountUsage"]
    assert usage["NamespacesCount"] == 1
    assert all(u["FunctionsCount"] == 0 for u in usage["Namespace"])
    a_usage = a.call("GetAccount")["AccountUsage"]
    assert a_usage["NamespacesCount"] == 2


def test_dev_account_and_new_accounts_are_isolated(scf, fresh_scf):
    name = scf.create_function()
    fresh_scf.error("ResourceNotFound.Function", "GetFunction", FunctionName=name)
    assert name not in fresh_scf.function_names()
