"""Payment attempts: one conditional write, at most 25 per session, only on OPEN sessions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.flows import create_session, event_types, get, start_transaction, transaction
from tests.support import api_event, call


def test_a_payment_attempt_is_recorded_with_its_event(aws: Any) -> None:
    session_id = create_session(amount=1234)["sessionId"]
    answer = start_transaction(session_id, "sandbox_card")
    assert answer.status == 201
    created = answer.json()
    assert created["status"] == "PROCESSING" and created["amount"] == 1234
    assert get(session_id)["transactions"] == [created]
    item = aws.session_item(session_id)
    assert (item["inFlight"], item["txCount"], item["version"]) == (1, 1, 2)
    assert event_types(session_id) == ["session.created", "transaction.created"]


def test_the_twenty_sixth_attempt_is_refused(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    for _ in range(25):
        transaction(session_id)
    answer = start_transaction(session_id)
    assert answer.status == 409 and answer.error["code"] == "transaction_limit_reached"
    assert len(get(session_id)["transactions"]) == 25


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"provider": "acme_pay"}, "provider"),
        ({}, "provider"),
        ({"provider": "sandbox_card", "amount": 5}, "amount"),
    ],
)
def test_bad_attempts_are_400_and_change_nothing(aws: Any, body: dict[str, Any], param: str) -> None:
    session_id = create_session()["sessionId"]
    answer = call(
        "create_transaction",
        api_event(
            "create_transaction",
            f"/v1/sessions/{session_id}/transactions",
            body=body,
            path_parameters={"sessionId": session_id},
        ),
    )
    assert answer.status == 400 and answer.error["param"] == param
    assert aws.session_item(session_id)["txCount"] == 0


def test_another_tenant_cannot_pay_on_the_session(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    answer = call(
        "create_transaction",
        api_event(
            "create_transaction",
            f"/v1/sessions/{session_id}/transactions",
            body={"provider": "sandbox_card"},
            path_parameters={"sessionId": session_id},
            tenant="other",
        ),
    )
    assert answer.status == 404 and answer.error["code"] == "session_not_found"


def test_an_attempt_retried_after_its_idempotency_record_is_gone_is_not_made_twice(aws: Any) -> None:
    import os

    # Given an attempt made with an Idempotency-Key
    session_id = create_session()["sessionId"]
    first = start_transaction(session_id, "sandbox_card", headers={"Idempotency-Key": "attempt-1"})
    assert first.status == 201
    # And its idempotency record gone, as after a timeout left it in progress until it expired
    table = os.environ["IDEMPOTENCY_TABLE_NAME"]
    for record in aws.dynamodb.scan(TableName=table)["Items"]:
        aws.dynamodb.delete_item(TableName=table, Key={"id": record["id"]})
    # When the client retries with the same key
    again = start_transaction(session_id, "sandbox_card", headers={"Idempotency-Key": "attempt-1"})
    # Then it gets the same transaction, and the session has one
    assert again.status == 201 and again.json() == first.json()
    assert aws.session_item(session_id)["txCount"] == 1
    assert event_types(session_id) == ["session.created", "transaction.created"]
    # And another key makes another attempt
    other = start_transaction(session_id, "sandbox_card", headers={"Idempotency-Key": "attempt-2"})
    assert other.status == 201 and other.json()["transactionId"] != first.json()["transactionId"]
