"""Provider webhook signatures: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`."""

from __future__ import annotations

import hashlib
import hmac

from checkout_core.errors import InvalidSignature

TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str, header: str | None, body: bytes, now: int, tolerance: int = TOLERANCE_SECONDS
) -> None:
    """Raises InvalidSignature unless `header` signs `body` with `secret`, within `tolerance` of `now`."""
    if not header:
        raise InvalidSignature("Provider-Signature header is missing.")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature("Provider-Signature header is malformed.")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("Provider-Signature is stale.")
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates):
        raise InvalidSignature("Provider-Signature does not match.")
