"""Published versions (lifecycle.md "Published versions"): PublishVersion, ListVersionByFunction, GetFunction with a
Qualifier, immutability, DeleteFunctionVersion / DeleteFunction with Qualifier, numbers never reused,
UpdateFunctionConfiguration Publish=TRUE."""

from __future__ import annotations

from harness import zips
from harness.api import Scf, status_message

B64 = zips.b64
HOLD = "1*sleep(3000)"  # below the server's 5 s operation lease, so the held worker keeps its operation


def versions_of(scf: Scf, name: str) -> dict[str, dict]:
    r = scf.call("ListVersionByFunction", FunctionName=name)
    by_version = {v["Version"]: v for v in r["Versions"]}
    assert r["FunctionVersion"] == list(by_version), r  # the two lists agree, in the same order
    assert r["TotalCount"] == len(by_version), r
    return by_version


def test_publish_version_copies_latest(scf):
    data = zips.python_hello("v1")
    name = scf.create_function(zip_bytes=data, MemorySize=256, Timeout=9, Description="function description",
                               Environment={"Variables": [{"Key": "A", "Value": "1"}]})
    r = scf.call("PublishVersion", FunctionName=name, Description="first release")
    assert r["FunctionVersion"] == "1"
    # Assumption: the reply echoes the published configuration (fields of PublishVersionResponse).
    assert (r["Handler"], r["MemorySize"], r["Timeout"], r["Runtime"]) == (zips.PY_HANDLER, 256, 9, zips.PY_RUNTIME)
    assert r["Namespace"] == "default"
    # $LATEST stays Active while the version is published.
    assert scf.get(name)["Status"] == "Active"
    v1 = scf.wait(name, qualifier="1")
    assert v1["Qualifier"] == "1" and v1["FunctionVersion"] == "1"
    assert (v1["Handler"], v1["MemorySize"], v1["Timeout"], v1["CodeSize"]) == (zips.PY_HANDLER, 256, 9, len(data))
    assert v1["Environment"]["Variables"] == [{"Key": "A", "Value": "1"}]
    assert v1["StatusReasons"] == []
    listed = versions_of(scf, name)
    assert list(listed) == ["$LATEST", "1"]  # Assumption: $LATEST listed first, then versions ascending
    assert listed["1"]["Status"] == "Active" and listed["$LATEST"]["Status"] == "Active"
    assert listed["1"]["Description"] == "first release"


def test_version_keeps_its_config_after_latest_changes(scf):
    old = zips.python_hello("old")
    name = scf.create_function(zip_bytes=old, MemorySize=128, Description="old")
    v = scf.publish_version(name)
    new = zips.python_hello("a much newer marker", handler_file="app.py")
    scf.call("UpdateFunctionCode", FunctionName=name, Handler="app.main_handler", ZipFile=B64(new))
    scf.wait(name)
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=1024, Description="new",
             Environment={"Variables": [{"Key": "NEW", "Value": "1"}]})
    latest = scf.wait(name)
    assert (latest["Handler"], latest["CodeSize"], latest["MemorySize"]) == ("app.main_handler", len(new), 1024)
    pinned = scf.get(name, qualifier=v)
    assert pinned["Status"] == "Active"
    assert (pinned["Handler"], pinned["CodeSize"], pinned["MemorySize"]) == (zips.PY_HANDLER, len(old), 128)
    assert not (pinned["Environment"] or {}).get("Variables")
    # A failed update of $LATEST does not touch the version either.
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.not_a_zip()))
    scf.wait(name, {"UpdateFailed"})
    pinned_again = scf.get(name, qualifier=v)
    assert pinned_again["Status"] == "Active" and pinned_again["CodeSize"] == len(old)


def test_second_version_has_the_new_config(scf):
    name = scf.create_function(MemorySize=128)
    v1 = scf.publish_version(name)
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    scf.wait(name)
    v2 = scf.publish_version(name)
    assert (v1, v2) == ("1", "2")
    assert scf.get(name, qualifier="1")["MemorySize"] == 128
    assert scf.get(name, qualifier="2")["MemorySize"] == 256


def test_unknown_version(scf):
    name = scf.create_function()
    scf.error("ResourceNotFound*", "GetFunction", FunctionName=name, Qualifier="7")
    scf.error("ResourceNotFound*", "DeleteFunctionVersion", FunctionName=name, Qualifier="7")
    scf.error("ResourceNotFound*", "DeleteFunction", FunctionName=name, Qualifier="7")


def test_delete_function_version(scf):
    name = scf.create_function()
    for _ in range(3):
        scf.publish_version(name)
    scf.call("DeleteFunctionVersion", FunctionName=name, Qualifier="2")
    scf.wait_gone(name, qualifier="2")
    assert list(versions_of(scf, name)) == ["$LATEST", "1", "3"]
    assert scf.get(name)["Status"] == "Active"
    assert scf.get(name, qualifier="1")["Status"] == "Active"
    assert scf.get(name, qualifier="3")["Status"] == "Active"


def test_delete_function_with_qualifier_deletes_only_that_version(scf):
    name = scf.create_function()
    scf.publish_version(name)
    scf.publish_version(name)
    scf.call("DeleteFunction", FunctionName=name, Qualifier="1")
    scf.wait_gone(name, qualifier="1")
    assert list(versions_of(scf, name)) == ["$LATEST", "2"]
    assert scf.get(name)["Status"] == "Active"


def test_version_numbers_are_never_reused(scf):
    name = scf.create_function()
    assert [scf.publish_version(name) for _ in range(2)] == ["1", "2"]
    scf.call("DeleteFunctionVersion", FunctionName=name, Qualifier="2")
    scf.wait_gone(name, qualifier="2")
    assert scf.publish_version(name) == "3"
    for v in ("3", "1"):
        scf.call("DeleteFunctionVersion", FunctionName=name, Qualifier=v)
        scf.wait_gone(name, qualifier=v)
    assert list(versions_of(scf, name)) == ["$LATEST"]
    assert scf.publish_version(name) == "4"


def test_publish_rejected_unless_latest_is_active(scf):
    name = scf.create_function()
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.missing_handler_file()))
    scf.wait(name, {"UpdateFailed"})
    scf.rejected("FailedOperation.PublishVersion", "UpdateFailed", "PublishVersion", FunctionName=name)
    failed = scf.create_function(zip_bytes=zips.not_a_zip(), wait="CreateFailed")
    scf.rejected("FailedOperation.PublishVersion", "CreateFailed", "PublishVersion", FunctionName=failed)
    assert list(versions_of(scf, name)) == ["$LATEST"]


def test_publish_on_configuration_update(scf):
    name = scf.create_function(MemorySize=128)
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=384, Publish="TRUE")
    latest = scf.wait(name)
    assert latest["MemorySize"] == 384
    # The version is published after the change is applied, so it carries the new configuration.
    v = scf.wait(name, qualifier="1")
    assert v["MemorySize"] == 384
    assert list(versions_of(scf, name)) == ["$LATEST", "1"]


def test_no_publish_on_configuration_update_by_default(scf):
    name = scf.create_function()
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=384, Publish="FALSE")
    scf.wait(name)
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=512)
    scf.wait(name)
    assert list(versions_of(scf, name)) == ["$LATEST"]


def test_publish_on_code_update(scf):
    # UpdateFunctionCode has the same Publish flag; lifecycle.md: "with Publish=TRUE a version is then published".
    name = scf.create_function()
    new = zips.python_hello("published by code update")
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(new), Publish="TRUE")
    scf.wait(name)
    assert scf.wait(name, qualifier="1")["CodeSize"] == len(new)


def test_failed_update_with_publish_publishes_nothing(scf):
    name = scf.create_function()
    scf.call("UpdateFunctionConfiguration", FunctionName=name, MemorySize=256)
    scf.wait(name)
    scf.call("UpdateFunctionCode", FunctionName=name, ZipFile=B64(zips.missing_handler_file()), Publish="TRUE")
    scf.wait(name, {"UpdateFailed"})
    assert list(versions_of(scf, name)) == ["$LATEST"]


def test_list_versions_paging(scf):
    name = scf.create_function()
    for _ in range(3):
        scf.publish_version(name)
    # Assumption: $LATEST is one of the listed entries, so four in all; Limit/Offset page over them.
    r = scf.call("ListVersionByFunction", FunctionName=name, Limit=2, Offset=0)
    assert r["TotalCount"] == 4 and len(r["Versions"]) == 2
    r2 = scf.call("ListVersionByFunction", FunctionName=name, Limit=2, Offset=2)
    assert r2["TotalCount"] == 4 and len(r2["Versions"]) == 2
    both = [v["Version"] for v in r["Versions"] + r2["Versions"]]
    assert sorted(both) == sorted(["$LATEST", "1", "2", "3"])


def test_version_rejected_while_publishing(stratus):
    scf = Scf(stratus(failpoints=f"publish-version={HOLD}").client())
    name = scf.create_function()
    assert scf.call("PublishVersion", FunctionName=name)["FunctionVersion"] == "1"
    v = scf.get(name, qualifier="1")
    assert v["Status"] == "Publishing", v
    assert scf.get(name)["Status"] == "Active"  # $LATEST stays Active
    scf.rejected("FailedOperation.FunctionStatusError", "Publishing", "DeleteFunctionVersion",
                 FunctionName=name, Qualifier="1")
    # Assumption: DeleteFunction with a Qualifier is reported under its own action name.
    e = scf.error("FailedOperation.FunctionStatusError", "DeleteFunction", FunctionName=name, Qualifier="1")
    assert e.message in (status_message("Publishing", "DeleteFunction"),
                         status_message("Publishing", "DeleteFunctionVersion"))
    assert scf.get(name, qualifier="1")["Status"] == "Publishing", "the hold ended too early: the test proves nothing"
    scf.wait(name, qualifier="1")


def test_latest_cannot_be_deleted_as_a_version(scf):
    # Assumption: DeleteFunctionVersion targets published versions only; $LATEST is refused (any client error
    # code starting with InvalidParameterValue, UnsupportedOperation or FailedOperation) and the function stays.
    name = scf.create_function()
    scf.error(("InvalidParameterValue*", "UnsupportedOperation*", "FailedOperation*"),
              "DeleteFunctionVersion", FunctionName=name, Qualifier="$LATEST")
    assert scf.get(name)["Status"] == "Active"
