"""TC3-HMAC-SHA256 as the official clients apply it (PROTOCOL.md section 3), written independently of any client so
that the protocol tests can build requests the SDK would never send: wrong keys, skewed clocks, Node's port-less
host line, a foreign service in the scope, UNSIGNED-PAYLOAD, broken Authorization headers."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Signed:
    """Every intermediate value, so that the self-test can check each against the worked example."""

    canonical_request: str
    string_to_sign: str
    k_date: bytes
    k_service: bytes
    k_signing: bytes
    signature: str
    authorization: str


def canonical_request(
    body: bytes,
    host: str,
    *,
    method: str = "POST",
    query: str = "",
    content_type: str = "application/json",
    payload_hash: str | None = None,
) -> str:
    if payload_hash is None:
        payload_hash = sha256_hex(body)
    return "\n".join(
        [
            method,
            "/",
            query,
            f"content-type:{content_type}\nhost:{host}\n",
            SIGNED_HEADERS,
            payload_hash,
        ]
    )


def sign(
    secret_id: str,
    secret_key: str,
    body: bytes,
    host: str,
    timestamp: int,
    *,
    service: str = "scf",
    date: str | None = None,
    method: str = "POST",
    query: str = "",
    content_type: str = "application/json",
    unsigned_payload: bool = False,
) -> Signed:
    """Sign one request. `date` defaults to the UTC date of `timestamp`; pass another to forge a bad scope."""
    if date is None:
        date = utc_date(timestamp)
    payload_hash = sha256_hex(UNSIGNED_PAYLOAD.encode()) if unsigned_payload else None
    creq = canonical_request(
        body, host, method=method, query=query, content_type=content_type, payload_hash=payload_hash
    )
    scope = f"{date}/{service}/tc3_request"
    sts = "\n".join([ALGORITHM, str(timestamp), scope, sha256_hex(creq.encode("utf-8"))])
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    signature = hmac.new(k_signing, sts.encode("utf-8"), hashlib.sha256).hexdigest()
    authorization = (
        f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
    )
    return Signed(creq, sts, k_date, k_service, k_signing, signature, authorization)
