"""Namespaces: `default` always exists, functions are scoped by namespace, unknown namespace is
ResourceNotFound.Namespace. Each test uses a fresh account: namespaces count against a per-account limit."""

from __future__ import annotations

import secrets

import pytest

from harness import zips
from harness.api import Scf

DEFAULT_DELETE_CODES = ("FailedOperation.DeleteNamespace", "InvalidParameterValue.Namespace")
# Assumption: SCF has both codes for a duplicate namespace; either is accepted.
DUPLICATE_CODES = ("ResourceInUse.Namespace", "FailedOperation.Namespace")


def ns_name() -> str:
    return "ns-" + secrets.token_hex(4)


def namespaces(scf: Scf) -> dict[str, dict]:
    r = scf.call("ListNamespaces", Limit=100)
    assert r["TotalCount"] == len(r["Namespaces"]), r
    return {n["Name"]: n for n in r["Namespaces"]}


def test_default_namespace_always_exists(fresh_scf):
    listed = namespaces(fresh_scf)
    assert list(listed) == ["default"]
    fresh_scf.error(DEFAULT_DELETE_CODES, "DeleteNamespace", Namespace="default")
    assert "default" in namespaces(fresh_scf)


def test_create_update_delete_namespace(fresh_scf):
    scf = fresh_scf
    ns = ns_name()
    scf.call("CreateNamespace", Namespace=ns, Description="team a")
    listed = namespaces(scf)
    assert set(listed) == {"default", ns}
    assert listed[ns]["Description"] == "team a"
    scf.call("UpdateNamespace", Namespace=ns, Description="team b")
    assert namespaces(scf)[ns]["Description"] == "team b"
    scf.call("DeleteNamespace", Namespace=ns)
    assert set(namespaces(scf)) == {"default"}
    scf.error("ResourceNotFound.Namespace", "DeleteNamespace", Namespace=ns)
    scf.error("ResourceNotFound.Namespace", "CreateFunction", FunctionName="after-delete",
              Runtime=zips.PY_RUNTIME, Handler=zips.PY_HANDLER, Namespace=ns,
              Code={"ZipFile": zips.b64(zips.python_hello())})


def test_duplicate_namespace(fresh_scf):
    ns = ns_name()
    fresh_scf.call("CreateNamespace", Namespace=ns)
    fresh_scf.error(DUPLICATE_CODES, "CreateNamespace", Namespace=ns)
    fresh_scf.error(DUPLICATE_CODES, "CreateNamespace", Namespace="default")


@pytest.mark.parametrize("bad", ["-lead", "a b", "a" * 31, "ns.dot", "名字"])
def test_invalid_namespace_name(fresh_scf, bad):
    fresh_scf.error(("InvalidParameterValue.Namespace", "InvalidParameterValue.NamespaceInvalid"),
                    "CreateNamespace", Namespace=bad)
    assert set(namespaces(fresh_scf)) == {"default"}


def test_unknown_namespace(fresh_scf):
    scf = fresh_scf
    scf.error("ResourceNotFound.Namespace", "UpdateNamespace", Namespace="ghost-ns", Description="x")
    scf.error("ResourceNotFound.Namespace", "ListFunctions", Namespace="ghost-ns")
    scf.error("ResourceNotFound.Namespace", "GetFunction", FunctionName="anything", Namespace="ghost-ns")
    scf.error("ResourceNotFound.Namespace", "CreateFunction", FunctionName="anything", Namespace="ghost-ns",
              Runtime=zips.PY_RUNTIME, Handler=zips.PY_HANDLER, Code={"ZipFile": zips.b64(zips.python_hello())})


def test_functions_are_scoped_by_namespace(fresh_scf):
    scf = fresh_scf
    ns = ns_name()
    scf.call("CreateNamespace", Namespace=ns)
    name = "same-name-1"
    scf.create_function(name, Description="in default", MemorySize=128)
    scf.create_function(name, namespace=ns, Description="in ns", MemorySize=256)
    d = scf.get(name)
    n = scf.get(name, namespace=ns)
    assert (d["Namespace"], d["Description"], d["MemorySize"]) == ("default", "in default", 128)
    assert (n["Namespace"], n["Description"], n["MemorySize"]) == (ns, "in ns", 256)
    only_ns = scf.create_function(namespace=ns)
    scf.error("ResourceNotFound.Function", "GetFunction", FunctionName=only_ns)
    assert scf.function_names(ns) == {name, only_ns}
    assert scf.function_names() == {name}
    # Versions and updates are per namespace too.
    scf.call("UpdateFunctionConfiguration", FunctionName=name, Namespace=ns, Timeout=33)
    scf.wait(name, namespace=ns)
    assert scf.get(name)["Timeout"] == 3 and scf.get(name, namespace=ns)["Timeout"] == 33
    assert scf.publish_version(name, namespace=ns) == "1"
    scf.error("ResourceNotFound*", "GetFunction", FunctionName=name, Qualifier="1")
    # Deleting in one namespace leaves the other.
    scf.call("DeleteFunction", FunctionName=name, Namespace=ns)
    scf.wait_gone(name, namespace=ns)
    assert scf.get(name)["Status"] == "Active"


def test_namespace_limit(fresh_scf):
    # Assumption: GetAccount's AccountLimit.NamespacesCount is the cap, default included; going over it is
    # LimitExceeded.Namespace.
    scf = fresh_scf
    cap = scf.call("GetAccount")["AccountLimit"]["NamespacesCount"]
    assert isinstance(cap, int) and 1 <= cap <= 50, cap
    for _ in range(cap - 1):
        scf.call("CreateNamespace", Namespace=ns_name())
    assert len(namespaces(scf)) == cap
    scf.error("LimitExceeded.Namespace", "CreateNamespace", Namespace=ns_name())
    assert len(namespaces(scf)) == cap


def test_account_usage_counts_namespaces(fresh_scf):
    scf = fresh_scf
    ns = ns_name()
    scf.call("CreateNamespace", Namespace=ns)
    scf.create_function(namespace=ns)
    usage = scf.call("GetAccount")["AccountUsage"]
    assert usage["NamespacesCount"] == 2
    per_ns = {u["Namespace"]: u for u in usage["Namespace"]}
    assert per_ns[ns]["FunctionsCount"] == 1 and per_ns["default"]["FunctionsCount"] == 0
