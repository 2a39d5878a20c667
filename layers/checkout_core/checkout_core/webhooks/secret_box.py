"""Endpoint secrets at rest: never in clear in the table (nor in its stream, its backups or a local
snapshot), opened only by the code that signs.

Deployed (ENDPOINT_SECRETS_KMS_KEY_ID set): envelope encryption with KMS. Each secret is sealed under a data
key of its own (GenerateDataKey, AES-256); the item keeps the sealed secret and the data key as KMS
encrypted it, bound to the endpoint by the encryption context, so a table reader holds nothing KMS will open
for them, and a sealed secret copied onto another endpoint does not open. Locally the key is derived from
the server key (a file in LOCAL_STATE_DIR). The seal itself is sealing.py's encrypt-then-MAC."""

from __future__ import annotations

import base64
import os
from typing import Any

from checkout_core import aws
from checkout_core.sealing import open_with_key, seal_with_key
from checkout_core.server_key import derived_key

_data_keys: dict[str, bytes] = {}  # KMS-encrypted data key -> the data key, for this environment
MAX_KEPT_DATA_KEYS = 1024


def _context(endpoint_id: str) -> dict[str, str]:
    return {"purpose": "webhook endpoint secret", "endpointId": endpoint_id}


def seal_secret(secret: str, endpoint_id: str) -> dict[str, Any]:
    """The stored form of an endpoint secret."""
    key_id = os.environ.get("ENDPOINT_SECRETS_KMS_KEY_ID", "")
    if not key_id:
        return {"sealed": seal_with_key(secret, _local_key(endpoint_id))}
    answer = aws.client("kms").generate_data_key(
        KeyId=key_id, KeySpec="AES_256", EncryptionContext=_context(endpoint_id)
    )
    wrapped = base64.b64encode(answer["CiphertextBlob"]).decode("ascii")
    return {"sealed": seal_with_key(secret, bytes(answer["Plaintext"])), "dataKey": wrapped}


def open_secret(stored: dict[str, Any] | str, endpoint_id: str) -> str:
    """The secret of its stored form (SealBroken if it was altered or belongs to another endpoint). A
    secret kept in clear by an earlier version is returned as it is (rotating it seals the new one)."""
    if isinstance(stored, str):
        return stored
    wrapped = stored.get("dataKey")
    if wrapped is None:
        return open_with_key(str(stored["sealed"]), _local_key(endpoint_id))
    key = _data_keys.get(wrapped)
    if key is None:
        answer = aws.client("kms").decrypt(
            CiphertextBlob=base64.b64decode(wrapped), EncryptionContext=_context(endpoint_id)
        )
        key = bytes(answer["Plaintext"])
        if len(_data_keys) >= MAX_KEPT_DATA_KEYS:
            _data_keys.clear()
        _data_keys[wrapped] = key
    return open_with_key(str(stored["sealed"]), key)


def _local_key(endpoint_id: str) -> bytes:
    import hashlib
    import hmac

    return hmac.new(derived_key("webhook endpoint secrets"), endpoint_id.encode(), hashlib.sha256).digest()
