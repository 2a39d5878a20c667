"""What the idempotency table holds opens nothing without the server key: not the record of a guessed
Idempotency-Key, not the pay link sealed in it."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest

from checkout_core import server_key
from checkout_core.sealing import SealBroken, open_sealed
from tests.integration.flows import BODY
from tests.support import api_event, call


def test_a_guessed_idempotency_key_finds_no_record_and_opens_no_seal(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a create whose Idempotency-Key is easy to guess
    created = call(
        "create_session",
        api_event("create_session", "/v1/sessions", body=BODY, headers={"Idempotency-Key": "order-1042"}),
    )
    assert created.status == 201
    (record,) = aws.dynamodb.scan(TableName=os.environ["IDEMPOTENCY_TABLE_NAME"])["Items"]
    # When someone holding a copy of the table guesses the key: the record is not named after it
    scope = "demo /v1/sessions order-1042"
    guessed = hashlib.md5(json.dumps(scope, sort_keys=True).encode()).hexdigest()  # noqa: S324 - Powertools' own
    assert not record["id"]["S"].endswith(guessed)
    # And the sealed answer does not open with the key alone (another server's key)
    sealed = json.loads(record["data"]["S"])["body"]
    assert open_sealed(sealed, scope).startswith("{")  # with this server's key it opens
    monkeypatch.setenv("SERVER_KEY", "00" * 32)
    server_key.server_key.cache_clear()
    try:
        with pytest.raises(SealBroken):
            open_sealed(sealed, scope)
    finally:
        monkeypatch.undo()
        server_key.server_key.cache_clear()
    # And the client's retry still gets its answer
    again = call(
        "create_session",
        api_event("create_session", "/v1/sessions", body=BODY, headers={"Idempotency-Key": "order-1042"}),
    )
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == created.json()
