"""API keys: generated once, shown once, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX_LIVE = "sk_live_"


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_api_key(key: str) -> str:
    return hash_secret(key)


def new_api_key() -> str:
    return KEY_PREFIX_LIVE + secrets.token_urlsafe(32)


def bearer_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None when the header is not of that form."""
    if not authorization:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 256 or not key.isascii() or not key.isprintable():
        return None
    if any(ch.isspace() for ch in key):
        return None
    return key
