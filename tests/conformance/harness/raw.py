"""Hand-made API requests over plain HTTP, signed with our own TC3 implementation, for the protocol tests."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import requests

from . import tc3

VERSION = "2018-04-16"
_session = requests.Session()
_session.trust_env = False  # never a proxy, never .netrc: loopback only


@dataclass
class Reply:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes
    sent_headers: dict = field(default_factory=dict)

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def response(self) -> dict:
        return self.json["Response"]

    @property
    def error_code(self) -> str | None:
        err = self.response.get("Error")
        return err["Code"] if err else None

    def __repr__(self) -> str:
        return f"Reply(HTTP {self.status}, {self.headers.get('Content-Type')!r}, {self.body[:400]!r})"


def post(
    endpoint: str,
    creds,
    action: str | None,
    body: bytes | dict | None = None,
    *,
    version: str | None = VERSION,
    region: str | None = "ap-guangzhou",
    timestamp: int | None = None,
    host_header: str | None = None,
    sign_host: str | None = None,
    service: str = "scf",
    date: str | None = None,
    content_type: str = "application/json",
    unsigned_payload: bool = False,
    secret_id: str | None = None,
    secret_key: str | None = None,
    authorization: str | None = None,
    omit_authorization: bool = False,
    extra_headers: dict | None = None,
    timeout: float = 120,
) -> Reply:
    """POST / to the server. By default the request is exactly what the Python SDK would send; each keyword bends
    one thing. `sign_host` is the host line that is signed (default: the Host header sent); `authorization`
    replaces the computed header verbatim."""
    if body is None:
        body = {}
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    if timestamp is None:
        timestamp = int(time.time())
    host = host_header if host_header is not None else endpoint
    signed = tc3.sign(
        secret_id or creds.secret_id,
        secret_key or creds.secret_key,
        body,
        sign_host if sign_host is not None else host,
        timestamp,
        service=service,
        date=date,
        content_type=content_type,
        unsigned_payload=unsigned_payload,
    )
    headers = {
        "X-TC-TraceId": str(uuid.uuid4()),
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Language": "zh-CN",
        "X-TC-RequestClient": "SDK_PYTHON_CONFORMANCE",
    }
    if action is not None:
        headers["X-TC-Action"] = action
    if version is not None:
        headers["X-TC-Version"] = version
    if region is not None:
        headers["X-TC-Region"] = region
    if unsigned_payload:
        headers["X-TC-Content-SHA256"] = tc3.UNSIGNED_PAYLOAD
    if not omit_authorization:
        headers["Authorization"] = authorization if authorization is not None else signed.authorization
    headers.update(extra_headers or {})
    r = _session.post(f"http://{endpoint}/", data=body, headers=headers, timeout=timeout)
    return Reply(r.status_code, r.headers, r.content, headers)


def get(endpoint: str, path: str, timeout: float = 10) -> requests.Response:
    return _session.get(f"http://{endpoint}{path}", timeout=timeout)
