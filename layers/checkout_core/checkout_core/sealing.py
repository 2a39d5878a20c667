"""Sealing what the idempotency store keeps: a create's answer holds the pay link, a secret that must never
rest in clear, yet a replay must return it (the client retried because it never saw it).

The key is derived, with the server key (server_key.py), from the raw Idempotency-Key, which is never stored
(the store's record id is a keyed digest of it too): opening what was sealed takes both the caller's key and
the server's, so neither a copy of the table nor guessing Idempotency-Keys opens it. Encrypt-then-MAC from
the standard library:
a SHAKE-256 keystream over (key, random nonce) and an HMAC-SHA256 tag over nonce and ciphertext. No AEAD
library is in the Lambda layer (the usual one would take most of its 15 MB budget), and this construction
needs none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

NONCE_BYTES = 16
TAG_BYTES = 32


class SealBroken(Exception):
    """The sealed text was not sealed with this key, or was altered."""


def _keys(material: str) -> tuple[bytes, bytes]:
    from checkout_core.server_key import derived_key

    root = hmac.new(derived_key("idempotency seal"), material.encode(), hashlib.sha256).digest()
    return _split(root)


def _split(root: bytes) -> tuple[bytes, bytes]:
    return hashlib.sha256(b"encrypt" + root).digest(), hashlib.sha256(b"authenticate" + root).digest()


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    return hashlib.shake_256(key + nonce).digest(length)


def seal(plaintext: str, material: str) -> str:
    return seal_with_key(plaintext, _keys(material))


def seal_with_key(plaintext: str, keys: tuple[bytes, bytes] | bytes) -> str:
    """Seals under a key of 32 bytes (or its (encrypt, authenticate) pair)."""
    encrypt_key, mac_key = _split(keys) if isinstance(keys, bytes) else keys
    nonce = secrets.token_bytes(NONCE_BYTES)
    data = plaintext.encode()
    ciphertext = bytes(a ^ b for a, b in zip(data, _keystream(encrypt_key, nonce, len(data)), strict=True))
    tag = hmac.new(mac_key, nonce + ciphertext, hashlib.sha256).digest()
    return base64.b64encode(nonce + ciphertext + tag).decode("ascii")


def open_sealed(sealed: str, material: str) -> str:
    return open_with_key(sealed, _keys(material))


def open_with_key(sealed: str, keys: tuple[bytes, bytes] | bytes) -> str:
    encrypt_key, mac_key = _split(keys) if isinstance(keys, bytes) else keys
    try:
        raw = base64.b64decode(sealed, validate=True)
    except ValueError as exc:
        raise SealBroken() from exc
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SealBroken()
    nonce, ciphertext, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
    expected = hmac.new(mac_key, nonce + ciphertext, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise SealBroken()
    data = bytes(
        a ^ b for a, b in zip(ciphertext, _keystream(encrypt_key, nonce, len(ciphertext)), strict=True)
    )
    return data.decode()
