"""Calling Stratus through the official Python SDK exactly as a user would, plus the polling and error helpers
every test uses. All loops are bounded by a deadline."""

from __future__ import annotations

import json
import time
import uuid
import warnings
from typing import Callable, Iterable

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models, scf_client

from . import zips

REGION = "ap-guangzhou"
FUNCTION_TRANSITIONAL = frozenset({"Creating", "Updating", "Publishing", "Deleting"})
FUNCTION_TERMINAL = frozenset({"Active", "CreateFailed", "UpdateFailed", "PublishFailed", "DeleteFailed"})
LAYER_TRANSITIONAL = frozenset({"Publishing", "Deleting"})
LAYER_TERMINAL = frozenset({"Active", "PublishFailed", "DeleteFailed", "Deleted"})
DEFAULT_TIMEOUT = 15.0


def make_client(
    endpoint: str,
    creds,
    *,
    region: str | None = REGION,
    protocol: str | None = "http",
    unsigned_payload: bool = False,
    sign_method: str | None = None,
    language: str | None = None,
) -> scf_client.ScfClient:
    """An ScfClient pointed at `endpoint` ("127.0.0.1:PORT", or with a scheme, as PROTOCOL.md section 1 shows)."""
    hp = HttpProfile(endpoint=endpoint, protocol=protocol, reqTimeout=60)
    kw = {"httpProfile": hp}
    if sign_method:
        kw["signMethod"] = sign_method
    if language:
        kw["language"] = language
    cp = ClientProfile(**kw)
    cp.unsignedPayload = unsigned_payload
    return scf_client.ScfClient(credential.Credential(creds.secret_id, creds.secret_key), region, cp)


def unique(prefix: str = "f") -> str:
    """A fresh, valid function/layer/alias name (starts with a letter, ends with a hex digit)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------------------------------------
# Calls


def build_request(action: str, params: dict):
    req = getattr(models, action + "Request")()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        req._deserialize(json.loads(json.dumps(params)))
    useless = [str(w.message) for w in caught if "useless" in str(w.message)]
    if useless:
        # The model silently drops keys it does not know: a typo in a test must not become a silent pass.
        raise ValueError(f"{action}Request has no such field(s): {useless}")
    return req


def call(client, action: str, params: dict | None = None, **kw) -> dict:
    """Run `action` through the SDK's typed method (request model -> client.Action -> response model) and return
    the response model as a dict (every field the SDK knows, None when the server left it out)."""
    p = dict(params or {})
    p.update(kw)
    resp = getattr(client, action)(build_request(action, p))
    return json.loads(resp.to_json_string())


def call_json(client, action: str, params: dict) -> dict:
    """Send `params` as they are (SDK-signed) and return the raw `Response` object. For requests the typed models
    cannot express: unknown keys, wrong JSON types."""
    return client.call_json(action, params)["Response"]


def matches(code: str, patterns: Iterable[str]) -> bool:
    for p in patterns:
        if p.endswith("*"):
            if code.startswith(p[:-1]):
                return True
        elif code == p:
            return True
    return False


def expect_error(codes: str | Iterable[str], fn: Callable, *args, message: str | None = None, **kwargs):
    """Call fn and require a TencentCloudSDKException whose code is one of `codes` (exact, or a prefix when it ends
    with `*`). Every API error must carry a RequestId and a message. Returns the exception."""
    patterns = (codes,) if isinstance(codes, str) else tuple(codes)
    try:
        result = fn(*args, **kwargs)
    except TencentCloudSDKException as e:
        assert matches(str(e.code), patterns), f"expected error {patterns}, got {e.code}: {e.message}"
        assert e.requestId, f"error {e.code} came without a RequestId"
        assert e.message, f"error {e.code} came with an empty message"
        if message is not None:
            assert e.message == message, f"{e.code}: expected message {message!r}, got {e.message!r}"
        return e
    raise AssertionError(f"expected error {patterns}, but the call succeeded: {result}")


def status_message(status: str, action: str) -> str:
    """lifecycle.md: the message of a call refused because of the record's status."""
    return f"Function status {status} is not allowed to do {action}."


# ---------------------------------------------------------------------------------------------------------------
# Waiting


def _reasons(fn: dict) -> str:
    return json.dumps(fn.get("StatusReasons"), ensure_ascii=False)


def wait_status(
    client,
    name: str,
    want: Iterable[str] = ("Active",),
    qualifier: str | None = None,
    namespace: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict:
    """Poll GetFunction until the record's Status is in `want`; return that GetFunction reply. Fails at once on a
    terminal status outside `want` (it would never change by itself) and on a record that vanished."""
    want = frozenset(want)
    params = {"FunctionName": name}
    if qualifier is not None:
        params["Qualifier"] = qualifier
    if namespace is not None:
        params["Namespace"] = namespace
    deadline = time.monotonic() + timeout
    pause = 0.05
    seen = []
    while True:
        fn = call(client, "GetFunction", params)
        status = fn["Status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in want:
            return fn
        if status in FUNCTION_TERMINAL:
            raise AssertionError(
                f"{name}@{qualifier or '$LATEST'}: wanted {sorted(want)}, reached terminal {status} "
                f"(statuses seen: {seen}); StatusReasons={_reasons(fn)}"
            )
        if status not in FUNCTION_TRANSITIONAL:
            raise AssertionError(f"{name}@{qualifier or '$LATEST'}: unknown status {status!r}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name}@{qualifier or '$LATEST'}: still {status} after {timeout:.0f} s (seen: {seen}); "
                f"wanted {sorted(want)}"
            )
        time.sleep(pause)
        pause = min(pause * 1.5, 0.3)


def wait_gone(
    client,
    name: str,
    qualifier: str | None = None,
    namespace: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> TencentCloudSDKException:
    """Poll GetFunction until the function (or the version `qualifier`) is gone: ResourceNotFound.*. Fails at once
    if it lands in DeleteFailed."""
    params = {"FunctionName": name}
    if qualifier is not None:
        params["Qualifier"] = qualifier
    if namespace is not None:
        params["Namespace"] = namespace
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        try:
            fn = call(client, "GetFunction", params)
        except TencentCloudSDKException as e:
            assert str(e.code).startswith("ResourceNotFound"), f"while waiting for deletion: {e}"
            return e
        if fn["Status"] == "DeleteFailed":
            raise AssertionError(f"{name}@{qualifier or '$LATEST'}: DeleteFailed; StatusReasons={_reasons(fn)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}@{qualifier or '$LATEST'}: still there ({fn['Status']}) after {timeout:.0f} s")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.3)


def wait_layer_status(
    client, layer: str, version: int, want: Iterable[str] = ("Active",), timeout: float = DEFAULT_TIMEOUT
) -> dict:
    want = frozenset(want)
    deadline = time.monotonic() + timeout
    pause = 0.05
    seen = []
    while True:
        lv = call(client, "GetLayerVersion", LayerName=layer, LayerVersion=version)
        status = lv["Status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in want:
            return lv
        if status in LAYER_TERMINAL:
            raise AssertionError(f"layer {layer} v{version}: wanted {sorted(want)}, reached terminal {status} (seen {seen})")
        if status not in LAYER_TRANSITIONAL:
            raise AssertionError(f"layer {layer} v{version}: unknown status {status!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"layer {layer} v{version}: still {status} after {timeout:.0f} s (seen {seen})")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.3)


# ---------------------------------------------------------------------------------------------------------------
# A client with the common steps of the tests


class Scf:
    """One account's SDK client on one server, with shortcuts. Every method goes through the official SDK."""

    def __init__(self, client, server=None, creds=None):
        self.client = client
        self.server = server
        self.creds = creds

    def call(self, action: str, params: dict | None = None, **kw) -> dict:
        return call(self.client, action, params, **kw)

    def call_json(self, action: str, params: dict) -> dict:
        return call_json(self.client, action, params)

    def error(self, codes, action: str, params: dict | None = None, *, message: str | None = None, **kw):
        return expect_error(codes, call, self.client, action, params, message=message, **kw)

    def rejected(self, code: str, status: str, action: str, params: dict | None = None, **kw):
        """A call refused because of the record's status: the code given and lifecycle.md's exact message."""
        return self.error(code, action, params, message=status_message(status, action), **kw)

    def wait(self, name, want=("Active",), qualifier=None, namespace=None, timeout=DEFAULT_TIMEOUT) -> dict:
        return wait_status(self.client, name, want, qualifier=qualifier, namespace=namespace, timeout=timeout)

    def wait_gone(self, name, qualifier=None, namespace=None, timeout=DEFAULT_TIMEOUT):
        return wait_gone(self.client, name, qualifier=qualifier, namespace=namespace, timeout=timeout)

    def wait_layer(self, layer, version, want=("Active",), timeout=DEFAULT_TIMEOUT) -> dict:
        return wait_layer_status(self.client, layer, version, want, timeout=timeout)

    def get(self, name: str, qualifier: str | None = None, namespace: str | None = None) -> dict:
        p = {"FunctionName": name}
        if qualifier is not None:
            p["Qualifier"] = qualifier
        if namespace is not None:
            p["Namespace"] = namespace
        return self.call("GetFunction", p)

    def create_function(
        self,
        name: str | None = None,
        *,
        zip_bytes: bytes | None = None,
        runtime: str = zips.PY_RUNTIME,
        handler: str | None = zips.PY_HANDLER,
        namespace: str | None = None,
        wait: str | None = "Active",
        timeout: float = DEFAULT_TIMEOUT,
        **params,
    ) -> str:
        name = name or unique("f")
        p = {
            "FunctionName": name,
            "Code": {"ZipFile": zips.b64(zip_bytes if zip_bytes is not None else zips.python_hello())},
            "Runtime": runtime,
        }
        if handler is not None:
            p["Handler"] = handler
        if namespace is not None:
            p["Namespace"] = namespace
        p.update(params)
        self.call("CreateFunction", p)
        if wait:
            self.wait(name, {wait}, namespace=namespace, timeout=timeout)
        return name

    def publish_version(self, name: str, *, namespace: str | None = None, wait: bool = True, **params) -> str:
        p = {"FunctionName": name, **params}
        if namespace is not None:
            p["Namespace"] = namespace
        v = self.call("PublishVersion", p)["FunctionVersion"]
        assert v and v.isdigit(), f"PublishVersion returned FunctionVersion={v!r}"
        if wait:
            self.wait(name, {"Active"}, qualifier=v, namespace=namespace)
        return v

    def publish_layer(
        self,
        name: str | None = None,
        *,
        runtimes: Iterable[str] = (zips.PY_RUNTIME,),
        content: bytes | None = None,
        wait: str | None = "Active",
        **params,
    ) -> tuple[str, int]:
        name = name or unique("layer")
        r = self.call(
            "PublishLayerVersion",
            LayerName=name,
            CompatibleRuntimes=list(runtimes),
            Content={"ZipFile": zips.b64(content if content is not None else zips.layer_content())},
            **params,
        )
        version = r["LayerVersion"]
        assert isinstance(version, int) and version >= 1, f"PublishLayerVersion returned LayerVersion={version!r}"
        if wait:
            self.wait_layer(name, version, {wait})
        return name, version

    def function_names(self, namespace: str | None = None) -> set[str]:
        """Every function name of the namespace, through ListFunctions paging (bounded)."""
        names: set[str] = set()
        offset = 0
        for _ in range(1000):
            p = {"Offset": offset, "Limit": 100}
            if namespace is not None:
                p["Namespace"] = namespace
            r = self.call("ListFunctions", p)
            page = r["Functions"] or []
            names.update(f["FunctionName"] for f in page)
            offset += len(page)
            if not page or offset >= r["TotalCount"]:
                return names
        raise AssertionError("ListFunctions paging did not end")
