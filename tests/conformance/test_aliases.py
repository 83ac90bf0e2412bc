"""Aliases: $DEFAULT, CreateAlias/GetAlias/UpdateAlias/ListAliases/DeleteAlias, RoutingConfig validation, and the
rule that a version an alias routes to cannot be deleted (UnsupportedOperation.AliasBind)."""

from __future__ import annotations

import re

import pytest

from harness.api import Scf

TIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
WEIGHT_CODES = (
    # Assumption: a bad weight is one of SCF's routing codes.
    "InvalidParameterValue.AdditionalVersionWeights",
    "InvalidParameterValue.RoutingConfig",
    "InvalidParameter.RoutingConfig",
)


@pytest.fixture
def fn3(scf) -> tuple[Scf, str]:
    """A function with versions 1, 2 and 3."""
    name = scf.create_function()
    for _ in range(3):
        scf.publish_version(name)
    return scf, name


def weights(alias: dict) -> list[tuple[str, float]]:
    rc = alias["RoutingConfig"] or {}
    return [(w["Version"], w["Weight"]) for w in rc.get("AdditionalVersionWeights") or []]


def alias_names(scf: Scf, name: str, **kw) -> list[str]:
    r = scf.call("ListAliases", FunctionName=name, **kw)
    assert r["TotalCount"] == len(r["Aliases"]), r
    return [a["Name"] for a in r["Aliases"]]


def test_default_alias_exists_and_cannot_be_deleted(scf):
    name = scf.create_function()
    a = scf.call("GetAlias", FunctionName=name, Name="$DEFAULT")
    assert a["Name"] == "$DEFAULT" and a["FunctionVersion"] == "$LATEST"
    # Assumption: ListAliases shows $DEFAULT like any other alias.
    assert "$DEFAULT" in alias_names(scf, name)
    # Assumption: InvalidParameterValue.Alias ("不支持删除默认别名" in SCF's codes); the other two also accepted.
    scf.error(("InvalidParameterValue.Alias", "UnsupportedOperation*", "FailedOperation.DeleteAlias"),
              "DeleteAlias", FunctionName=name, Name="$DEFAULT")
    assert scf.call("GetAlias", FunctionName=name, Name="$DEFAULT")["FunctionVersion"] == "$LATEST"


def test_create_get_alias(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="prod", FunctionVersion="1", Description="production")
    a = scf.call("GetAlias", FunctionName=name, Name="prod")
    assert (a["Name"], a["FunctionVersion"], a["Description"]) == ("prod", "1", "production")
    assert weights(a) == []
    assert TIME_FORMAT.match(a["AddTime"]) and TIME_FORMAT.match(a["ModTime"])
    assert "prod" in alias_names(scf, name)


def test_alias_to_latest(scf):
    name = scf.create_function()
    scf.call("CreateAlias", FunctionName=name, Name="edge", FunctionVersion="$LATEST")
    assert scf.call("GetAlias", FunctionName=name, Name="edge")["FunctionVersion"] == "$LATEST"


def test_alias_with_weights(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="canary", FunctionVersion="1",
             RoutingConfig={"AdditionalVersionWeights": [{"Version": "2", "Weight": 0.3}]})
    a = scf.call("GetAlias", FunctionName=name, Name="canary")
    assert a["FunctionVersion"] == "1" and weights(a) == [("2", pytest.approx(0.3))]


@pytest.mark.parametrize("weight", [1.5, -0.1, 2])
def test_weight_out_of_range(fn3, weight):
    scf, name = fn3
    scf.error(WEIGHT_CODES, "CreateAlias", FunctionName=name, Name="w1", FunctionVersion="1",
              RoutingConfig={"AdditionalVersionWeights": [{"Version": "2", "Weight": weight}]})
    scf.error("ResourceNotFound.Alias", "GetAlias", FunctionName=name, Name="w1")


@pytest.mark.parametrize("weight", [0, 1])
def test_weight_bounds_are_inclusive(fn3, weight):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name=f"b{weight}", FunctionVersion="1",
             RoutingConfig={"AdditionalVersionWeights": [{"Version": "2", "Weight": weight}]})
    assert weights(scf.call("GetAlias", FunctionName=name, Name=f"b{weight}")) == [("2", weight)]


def test_additional_version_must_exist(fn3):
    scf, name = fn3
    # Assumption: a missing version is ResourceNotFound.* (Version/FunctionVersion/Qualifier); the routing codes
    # are also accepted.
    scf.error(("ResourceNotFound*",) + WEIGHT_CODES, "CreateAlias", FunctionName=name, Name="ghost",
              FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": [{"Version": "9", "Weight": 0.5}]})
    scf.error("ResourceNotFound.Alias", "GetAlias", FunctionName=name, Name="ghost")


def test_additional_version_cannot_be_the_primary(fn3):
    # The API doc: the additional version must not be the alias's primary version.
    scf, name = fn3
    scf.error(WEIGHT_CODES, "CreateAlias", FunctionName=name, Name="self", FunctionVersion="1",
              RoutingConfig={"AdditionalVersionWeights": [{"Version": "1", "Weight": 0.5}]})


def test_primary_version_must_exist(fn3):
    scf, name = fn3
    scf.error("ResourceNotFound*", "CreateAlias", FunctionName=name, Name="nowhere", FunctionVersion="42")
    scf.error("ResourceNotFound.Alias", "GetAlias", FunctionName=name, Name="nowhere")


def test_duplicate_alias(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="dup", FunctionVersion="1")
    scf.error("ResourceInUse.Alias", "CreateAlias", FunctionName=name, Name="dup", FunctionVersion="2")
    assert scf.call("GetAlias", FunctionName=name, Name="dup")["FunctionVersion"] == "1"


@pytest.mark.parametrize("bad", ["1abc", "a b", "$LATEST", "7", "a" * 65, "-x"])
def test_invalid_alias_name(fn3, bad):
    scf, name = fn3
    # Assumption: InvalidParameterValue.Name (the model's field for alias names); .Alias also accepted.
    scf.error(("InvalidParameterValue.Name", "InvalidParameterValue.Alias"), "CreateAlias",
              FunctionName=name, Name=bad, FunctionVersion="1")


def test_alias_on_unknown_function(scf):
    scf.error("ResourceNotFound.Function", "CreateAlias", FunctionName="no-such-fn-for-alias", Name="a",
              FunctionVersion="1")
    scf.error("ResourceNotFound.Function", "ListAliases", FunctionName="no-such-fn-for-alias")
    scf.error("ResourceNotFound.Function", "GetAlias", FunctionName="no-such-fn-for-alias", Name="a")


def test_update_alias(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="moving", FunctionVersion="1", Description="v1")
    scf.call("UpdateAlias", FunctionName=name, Name="moving", FunctionVersion="2", Description="v2",
             RoutingConfig={"AdditionalVersionWeights": [{"Version": "3", "Weight": 0.1}]})
    a = scf.call("GetAlias", FunctionName=name, Name="moving")
    assert (a["FunctionVersion"], a["Description"]) == ("2", "v2")
    assert weights(a) == [("3", pytest.approx(0.1))]
    # An empty weight list removes the additional version.
    scf.call("UpdateAlias", FunctionName=name, Name="moving", FunctionVersion="3",
             RoutingConfig={"AdditionalVersionWeights": []})
    a = scf.call("GetAlias", FunctionName=name, Name="moving")
    assert a["FunctionVersion"] == "3" and weights(a) == []


def test_update_alias_validation(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="strict", FunctionVersion="1")
    scf.error("ResourceNotFound.Alias", "UpdateAlias", FunctionName=name, Name="nosuch", FunctionVersion="1")
    scf.error("ResourceNotFound*", "UpdateAlias", FunctionName=name, Name="strict", FunctionVersion="99")
    scf.error(WEIGHT_CODES, "UpdateAlias", FunctionName=name, Name="strict", FunctionVersion="1",
              RoutingConfig={"AdditionalVersionWeights": [{"Version": "2", "Weight": 7}]})
    a = scf.call("GetAlias", FunctionName=name, Name="strict")
    assert a["FunctionVersion"] == "1" and weights(a) == []


def test_list_aliases_filtered_by_version(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="one", FunctionVersion="1")
    scf.call("CreateAlias", FunctionName=name, Name="two", FunctionVersion="2")
    scf.call("CreateAlias", FunctionName=name, Name="split", FunctionVersion="3",
             RoutingConfig={"AdditionalVersionWeights": [{"Version": "1", "Weight": 0.5}]})
    assert {"one", "two", "split"} <= set(alias_names(scf, name))
    only1 = set(alias_names(scf, name, FunctionVersion="1"))
    assert "one" in only1 and "two" not in only1
    # "Only aliases associated with that version": an additional version counts. Assumption.
    assert "split" in only1
    assert set(alias_names(scf, name, FunctionVersion="2")) == {"two"}


def test_list_aliases_offset_and_limit_are_strings(fn3):
    # In this API ListAliases.Offset and .Limit are strings; the SDK sends them as such.
    scf, name = fn3
    for i in range(3):
        scf.call("CreateAlias", FunctionName=name, Name=f"page{i}", FunctionVersion="1")
    r = scf.call("ListAliases", FunctionName=name, Offset="0", Limit="2")
    assert len(r["Aliases"]) == 2 and r["TotalCount"] >= 3


def test_delete_alias(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="temp", FunctionVersion="2")
    scf.call("DeleteAlias", FunctionName=name, Name="temp")
    scf.error("ResourceNotFound.Alias", "GetAlias", FunctionName=name, Name="temp")
    assert "temp" not in alias_names(scf, name)
    scf.error("ResourceNotFound.Alias", "DeleteAlias", FunctionName=name, Name="temp")


def test_version_routed_by_an_alias_cannot_be_deleted(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="primary", FunctionVersion="1")
    scf.call("CreateAlias", FunctionName=name, Name="extra", FunctionVersion="3",
             RoutingConfig={"AdditionalVersionWeights": [{"Version": "2", "Weight": 0.2}]})
    for v in ("1", "2", "3"):
        scf.error("UnsupportedOperation.AliasBind", "DeleteFunctionVersion", FunctionName=name, Qualifier=v)
        scf.error("UnsupportedOperation.AliasBind", "DeleteFunction", FunctionName=name, Qualifier=v)
        assert scf.get(name, qualifier=v)["Status"] == "Active"
    # Unbinding makes them deletable.
    scf.call("DeleteAlias", FunctionName=name, Name="primary")
    scf.call("DeleteFunctionVersion", FunctionName=name, Qualifier="1")
    scf.wait_gone(name, qualifier="1")
    scf.call("UpdateAlias", FunctionName=name, Name="extra", FunctionVersion="3",
             RoutingConfig={"AdditionalVersionWeights": []})
    scf.call("DeleteFunctionVersion", FunctionName=name, Qualifier="2")
    scf.wait_gone(name, qualifier="2")
    scf.error("UnsupportedOperation.AliasBind", "DeleteFunctionVersion", FunctionName=name, Qualifier="3")


def test_whole_function_delete_takes_its_aliases(fn3):
    scf, name = fn3
    scf.call("CreateAlias", FunctionName=name, Name="bound", FunctionVersion="1")
    scf.call("DeleteFunction", FunctionName=name)  # aliases do not block deleting the whole function
    scf.wait_gone(name)
    scf.error("ResourceNotFound.Function", "GetAlias", FunctionName=name, Name="bound")
