"""The harness checks itself, without a server: the TC3 signer against PROTOCOL.md's worked example and the SDK's
signer, the zip builders against what they claim to build, and the wait/error helpers against a fake client."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.sign import Sign

from harness import api, tc3, zips

# PROTOCOL.md section 3, worked example.
EX_ID = "AKIDcaptureTestId000000000000000000"
EX_KEY = "testSecretKeyForCaptureOnly0000"
EX_BODY = b'{"FunctionName": "demo", "Namespace": "default"}'
EX_HOST = "127.0.0.1:18080"
EX_TS = 1700000000


def test_tc3_worked_example_intermediate_values():
    assert len(EX_BODY) == 48
    assert tc3.sha256_hex(EX_BODY) == "d7e2f021bfb75ecb11b52c9e7747e6aa4e3d1d4d0661624e6265d507440141c0"
    s = tc3.sign(EX_ID, EX_KEY, EX_BODY, EX_HOST, EX_TS)
    assert s.canonical_request == (
        "POST\n/\n\ncontent-type:application/json\nhost:127.0.0.1:18080\n\ncontent-type;host\n"
        "d7e2f021bfb75ecb11b52c9e7747e6aa4e3d1d4d0661624e6265d507440141c0"
    )
    assert tc3.sha256_hex(s.canonical_request.encode()) == (
        "65729dcf378baee0300e249bb5586762e3a3e7260eded9b739d5ffa1fc1c6df1"
    )
    assert s.string_to_sign == (
        "TC3-HMAC-SHA256\n1700000000\n2023-11-14/scf/tc3_request\n"
        "65729dcf378baee0300e249bb5586762e3a3e7260eded9b739d5ffa1fc1c6df1"
    )
    assert s.k_date.hex() == "ba0aac0e8c48aa2624e5cd0becc5df98513e42f9a634f324f0be243df7f6a4d7"
    assert s.k_service.hex() == "76768f410ce42938fd775e45e009ec3e7dbcb6c525d19eb038a65e29dd308011"
    assert s.k_signing.hex() == "2e22993bd08641e79ae680e7a85debf115e2169302946df59c45ef89e43726fd"


def test_tc3_worked_example_signature_and_header():
    s = tc3.sign(EX_ID, EX_KEY, EX_BODY, EX_HOST, EX_TS)
    assert s.signature == "e4cf10a259966c4ebe05c3c77f625afe9f9c3db9a78ba645d1f806b3348e5ccc"
    assert s.authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDcaptureTestId000000000000000000/2023-11-14/scf/tc3_request, "
        "SignedHeaders=content-type;host, Signature=e4cf10a259966c4ebe05c3c77f625afe9f9c3db9a78ba645d1f806b3348e5ccc"
    )


def test_tc3_node_style_host_without_port():
    s = tc3.sign(EX_ID, EX_KEY, EX_BODY, "127.0.0.1", EX_TS)
    assert s.signature == "fc1e10fc819908001be3a41851f71c75a2c61ff20aa1c08d00a249388b5eaa1d"


@pytest.mark.parametrize("service", ["scf", "127", "localhost:9000"])
@pytest.mark.parametrize("unsigned", [False, True])
def test_tc3_agrees_with_the_sdk_signer(service, unsigned):
    s = tc3.sign(EX_ID, EX_KEY, EX_BODY, EX_HOST, EX_TS, service=service, unsigned_payload=unsigned)
    assert s.signature == Sign.sign_tc3(EX_KEY, "2023-11-14", service, s.string_to_sign)
    payload_hash = s.canonical_request.rsplit("\n", 1)[1]
    expected = hashlib.sha256(b"UNSIGNED-PAYLOAD" if unsigned else EX_BODY).hexdigest()
    assert payload_hash == expected


def test_tc3_scope_date_is_the_utc_date_of_the_timestamp():
    # 2023-11-14T23:59:59Z and one second later.
    assert tc3.utc_date(1700006399) == "2023-11-14"
    assert tc3.utc_date(1700006400) == "2023-11-15"


# ---------------------------------------------------------------------------------------------------------------
# Zip builders


def _infos(data: bytes) -> dict[str, zipfile.ZipInfo]:
    return {i.filename: i for i in zipfile.ZipFile(io.BytesIO(data)).infolist()}


def test_python_hello_has_the_handler_file():
    zf = zipfile.ZipFile(io.BytesIO(zips.python_hello("m1")))
    src = zf.read("index.py").decode()
    assert "def main_handler(event, context):" in src and "'m1'" in src
    assert zips.python_hello("a") != zips.python_hello("b")


def test_node_hello_has_index_js():
    src = zipfile.ZipFile(io.BytesIO(zips.node_hello())).read("index.js").decode()
    assert "exports.main_handler" in src


def test_custom_runtime_bootstrap_modes():
    good = _infos(zips.custom_runtime())["scf_bootstrap"]
    assert stat.S_ISREG(good.external_attr >> 16) and (good.external_attr >> 16) & 0o111 == 0o111
    bad = _infos(zips.custom_runtime(executable=False))["scf_bootstrap"]
    assert (bad.external_attr >> 16) & 0o111 == 0
    assert "bootstrap" in _infos(zips.custom_runtime(bootstrap_name="bootstrap"))


def test_unsafe_entries_are_really_in_the_archives():
    assert "../escape.py" in _infos(zips.dotdot_entry())
    assert "/stratus-absolute.py" in _infos(zips.absolute_entry())
    link = _infos(zips.symlink_escape())["etc_link"]
    assert stat.S_ISLNK(link.external_attr >> 16)
    assert zipfile.ZipFile(io.BytesIO(zips.symlink_escape())).read("etc_link") == b"/etc"
    assert stat.S_ISFIFO(_infos(zips.fifo_entry())["a_fifo"].external_attr >> 16)
    assert stat.S_ISCHR(_infos(zips.device_entry())["a_device"].external_attr >> 16)


def test_zip_bomb_is_small_on_the_wire_and_huge_unpacked():
    data = zips.zip_bomb()
    assert len(data) < 4 << 20
    assert sum(i.file_size for i in _infos(data).values()) >= zips.BOMB_UNPACKED


def test_not_a_zip_is_not_a_zip():
    assert not zipfile.is_zipfile(io.BytesIO(zips.not_a_zip()))
    assert zipfile.is_zipfile(io.BytesIO(zips.empty_zip()))


def test_missing_handler_file_package_lacks_index_py():
    assert "index.py" not in _infos(zips.missing_handler_file())


def test_large_package_size():
    data = zips.python_large(3 << 20)
    assert len(data) > 3 << 20 and "index.py" in _infos(data)


# ---------------------------------------------------------------------------------------------------------------
# Helpers against a fake client


class FakeClient:
    """Answers GetFunction from a scripted list of statuses (or exceptions)."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def GetFunction(self, req):  # noqa: N802 - the SDK's method name
        self.calls += 1
        item = self.script[min(self.calls - 1, len(self.script) - 1)]
        if isinstance(item, Exception):
            raise item
        resp = type("Resp", (), {})()
        resp.to_json_string = lambda: '{"Status": "%s", "StatusReasons": []}' % item
        return resp


def test_wait_status_returns_when_wanted():
    c = FakeClient(["Creating", "Creating", "Active"])
    assert api.wait_status(c, "f", timeout=5)["Status"] == "Active"
    assert c.calls == 3


def test_wait_status_fails_fast_on_an_unwanted_terminal_status():
    c = FakeClient(["Creating", "CreateFailed"])
    with pytest.raises(AssertionError, match="CreateFailed"):
        api.wait_status(c, "f", timeout=5)
    assert c.calls == 2


def test_wait_status_is_bounded():
    c = FakeClient(["Creating"])
    with pytest.raises(AssertionError, match="still Creating"):
        api.wait_status(c, "f", timeout=0.5)


def test_wait_gone():
    c = FakeClient(["Deleting", TencentCloudSDKException("ResourceNotFound.Function", "gone", "rid")])
    assert api.wait_gone(c, "f", timeout=5).code == "ResourceNotFound.Function"
    c = FakeClient(["Deleting", "DeleteFailed"])
    with pytest.raises(AssertionError, match="DeleteFailed"):
        api.wait_gone(c, "f", timeout=5)


def _raise(code, message="m", rid="rid"):
    raise TencentCloudSDKException(code, message, rid)


def test_expect_error_matching():
    assert api.expect_error("A.B", _raise, "A.B").code == "A.B"
    assert api.expect_error("ResourceNotFound*", _raise, "ResourceNotFound.Version").code
    assert api.expect_error(("X", "A.B"), _raise, "A.B").code == "A.B"
    with pytest.raises(AssertionError):
        api.expect_error("A.B", _raise, "A.BC")
    with pytest.raises(AssertionError):
        api.expect_error("A.B", lambda: {"ok": True})
    with pytest.raises(AssertionError, match="RequestId"):
        api.expect_error("A.B", _raise, "A.B", "m", None)
    with pytest.raises(AssertionError, match="expected message"):
        api.expect_error("A.B", _raise, "A.B", message="other")


def test_build_request_refuses_unknown_fields():
    with pytest.raises(ValueError, match="no such field"):
        api.build_request("GetFunction", {"FunctionNam": "typo"})
    req = api.build_request("CreateFunction", {"FunctionName": "f", "Code": {"ZipFile": "UEs="}})
    assert req.Code.ZipFile == "UEs="
