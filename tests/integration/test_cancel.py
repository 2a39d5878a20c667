"""Cancel, end to end through the handlers, with the finaliser running in moto's Step Functions engine."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.flows import (
    cancel,
    create_session,
    event_types,
    events,
    get,
    move_expiry_to_the_past,
    provider_event,
    start_transaction,
    transaction,
)
from tests.support import wait_until


def test_a_session_with_nothing_in_flight_is_cancelled_at_once(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    answer = cancel(
        session_id, {"reason": "customer asked", "reasonType": "CUSTOMER_REQUESTED", "referenceId": "r-1"}
    )
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["status"] == "CANCELLED"
    assert body["cancelledTransactionIds"] == [] and body["pendingTransactionIds"] == []
    assert body["cancellation"]["reasonType"] == "CUSTOMER_REQUESTED"
    assert body["cancellation"]["finalizedAt"] is not None
    session = get(session_id)
    assert session["status"] == "CANCELLED" and session["cancelledAt"] is not None
    assert event_types(session_id) == ["session.created", "session.cancelled"]
    assert aws.executions() == []


def test_an_empty_body_is_a_default_cancel(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    assert cancel(session_id, raw_body="").status == 200


def test_cancellable_transactions_are_cancelled_at_the_provider(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    first, second = transaction(session_id), transaction(session_id)
    body = cancel(session_id).json()
    assert body["status"] == "CANCELLED"
    assert body["cancelledTransactionIds"] == [first, second]
    session = get(session_id)
    assert [tx["status"] for tx in session["transactions"]] == ["CANCELLED", "CANCELLED"]
    assert event_types(session_id) == [
        "session.created",
        "transaction.created",
        "transaction.created",
        "session.cancellation_pending",
        "transaction.updated",
        "transaction.updated",
        "session.cancelled",
    ]
    assert aws.executions() == []


def test_terminal_transactions_are_untouched(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    failed = transaction(session_id)
    assert provider_event("sandbox_card", failed, "FAILED").json()["applied"] is True
    body = cancel(session_id).json()
    assert body["status"] == "CANCELLED" and body["cancelledTransactionIds"] == []
    assert get(session_id)["transactions"][0]["status"] == "FAILED"


def test_an_uncancellable_transaction_leaves_the_session_pending_until_it_ends(aws: Any) -> None:
    # Given a card payment and a bank transfer in flight
    session_id = create_session()["sessionId"]
    card = transaction(session_id, "sandbox_card")
    bank = transaction(session_id, "sandbox_bank_transfer")
    # When the session is cancelled
    body = cancel(session_id).json()
    # Then the card is cancelled and the transfer is pending, with the finaliser waiting on it
    assert body["status"] == "PENDING_CANCELLATION"
    assert body["cancelledTransactionIds"] == [card] and body["pendingTransactionIds"] == [bank]
    assert body["message"] == (
        "Session locked; 1 transaction cannot be cancelled in flight and will finish on its own."
    )
    assert [e["name"] for e in aws.executions()] == [f"cancel-{session_id}"]
    assert start_transaction(session_id).error["code"] == "session_not_open"
    wait_until(lambda: _token_stored(aws, bank), what="the finaliser to store its task token")
    # When the transfer fails on its own
    assert provider_event("sandbox_bank_transfer", bank, "FAILED").json()["applied"] is True
    # Then the finaliser sets CANCELLED, with no refund due
    final = wait_until(lambda: (s := get(session_id))["status"] == "CANCELLED" and s, what="CANCELLED")
    assert final["cancellation"]["finalizedAt"] is not None
    assert final["cancellation"]["pendingTransactionIds"] == []
    timeline = events(session_id)
    assert timeline[-1]["type"] == "session.cancelled" and timeline[-1]["actor"] == "workflow"
    assert timeline[-1]["data"]["refundRequired"] is False
    assert event_types(session_id).count("session.cancelled") == 1
    wait_until(lambda: aws.executions()[0]["status"] == "SUCCEEDED", what="the execution to succeed")


def test_a_settlement_while_pending_is_listed_and_flags_a_refund(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    bank = transaction(session_id, "sandbox_bank_transfer")
    reasons = {"reason": "changed my mind", "reasonType": "CUSTOMER_REQUESTED", "referenceId": "case-7"}
    assert cancel(session_id, reasons).json()["status"] == "PENDING_CANCELLATION"
    wait_until(lambda: _token_stored(aws, bank), what="the finaliser to store its task token")
    assert provider_event("sandbox_bank_transfer", bank, "SETTLED").json()["applied"] is True
    final = wait_until(lambda: (s := get(session_id))["status"] == "CANCELLED" and s, what="CANCELLED")
    assert final["cancellation"]["settledTransactionIds"] == [bank]
    assert final["completedAt"] is None
    last = events(session_id)[-1]
    # The workflow's session.cancelled says what the API's does: the reasons, the settlement, the refund due
    assert last["type"] == "session.cancelled" and last["actor"] == "workflow"
    assert last["data"] == {**reasons, "refundRequired": True, "settledTransactionIds": [bank]}


def test_a_failed_provider_cancel_is_pending_never_lost(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    flaky = transaction(session_id, "sandbox_flaky_card")
    body = cancel(session_id).json()
    assert body["status"] == "PENDING_CANCELLATION" and body["pendingTransactionIds"] == [flaky]
    wait_until(lambda: _token_stored(aws, flaky), what="the finaliser to store its task token")
    assert provider_event("sandbox_flaky_card", flaky, "CANCELLED").json()["applied"] is True
    wait_until(lambda: get(session_id)["status"] == "CANCELLED", what="CANCELLED")


def test_reject_with_an_uncancellable_transaction_in_flight_changes_nothing(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    transaction(session_id, "sandbox_card")
    bank = transaction(session_id, "sandbox_bank_transfer")
    before = aws.session_item(session_id)
    answer = cancel(session_id, {"whenInFlight": "REJECT"})
    assert answer.status == 409
    assert answer.error["code"] == "transactions_in_flight"
    assert answer.error["pendingTransactionIds"] == [bank]
    assert answer.error["currentStatus"] == "OPEN"
    assert aws.session_item(session_id) == before


def test_reject_with_only_cancellable_transactions_cancels(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    transaction(session_id, "sandbox_card")
    assert cancel(session_id, {"whenInFlight": "REJECT"}).json()["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"reasonType": "BORED"}, "reasonType"),
        ({"whenInFlight": "LATER"}, "whenInFlight"),
        ({"reason": "x" * 501}, "reason"),
        ({"referenceId": "x" * 65}, "referenceId"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_cancel_bodies_are_400_and_change_nothing(aws: Any, body: dict[str, Any], param: str) -> None:
    session_id = create_session()["sessionId"]
    before = aws.session_item(session_id)
    answer = cancel(session_id, body)
    assert answer.status == 400 and answer.error["param"] == param
    assert aws.session_item(session_id) == before


def test_cancelling_twice_is_a_conflict_naming_the_status(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    cancel(session_id)
    again = cancel(session_id)
    assert again.status == 409
    assert again.error["code"] == "session_not_cancellable"
    assert again.error["currentStatus"] == "CANCELLED"
    assert again.error["message"] == "Session is CANCELLED; only OPEN sessions can be cancelled."


def test_a_pending_cancellation_is_not_cancellable_again(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    transaction(session_id, "sandbox_bank_transfer")
    cancel(session_id)
    assert cancel(session_id).error["currentStatus"] == "PENDING_CANCELLATION"


def test_a_completed_session_is_not_cancellable(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    provider_event("sandbox_card", transaction(session_id), "SETTLED")
    assert cancel(session_id).error["currentStatus"] == "COMPLETED"


def test_past_expires_at_cancel_and_payment_attempts_are_refused_at_once(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    move_expiry_to_the_past(aws, session_id)
    for answer in (cancel(session_id), start_transaction(session_id)):
        assert answer.status == 409 and answer.error["code"] == "session_expired"
    assert get(session_id)["status"] == "EXPIRED"


def test_cancel_with_an_idempotency_key_replays(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    first = cancel(session_id, headers={"Idempotency-Key": "cancel-1"})
    again = cancel(session_id, headers={"Idempotency-Key": "cancel-1"})
    assert first.status == again.status == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert event_types(session_id).count("session.cancelled") == 1


def test_a_retried_cancel_does_not_start_a_second_finaliser(aws: Any) -> None:
    from checkout_core.context import get_context
    from checkout_core.finalisation import start_finaliser

    session_id = create_session()["sessionId"]
    transaction(session_id, "sandbox_bank_transfer")
    cancel(session_id)
    item = aws.session_item(session_id)
    start_finaliser(get_context(), item)
    assert len(aws.executions()) == 1


def _token_stored(aws: Any, transaction_id: str) -> bool:
    item = aws.dynamodb.get_item(
        TableName=aws.table_name,
        Key={"pk": {"S": f"TRANSACTION#{transaction_id}"}, "sk": {"S": "TRANSACTION"}},
        ConsistentRead=True,
    ).get("Item", {})
    return "taskToken" in item


def test_a_cancel_that_cannot_record_after_its_lock_answers_what_is_true(aws: Any) -> None:
    from datetime import timedelta

    from botocore.exceptions import ClientError

    from checkout_core import aws as aws_clients
    from checkout_core import expiry
    from checkout_core.clock import utc_now
    from checkout_core.context import Context

    # Given a session with a card payment, and DynamoDB refusing every transaction after the cancel's lock
    session_id = create_session()["sessionId"]
    card = transaction(session_id, "sandbox_card")
    writes = []

    def conflict_after_the_lock(**_: Any) -> None:
        writes.append(1)
        if len(writes) > 1:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )

    events = aws_clients.client("dynamodb").meta.events
    events.register(
        "before-call.dynamodb.TransactWriteItems", conflict_after_the_lock, unique_id="after-lock"
    )
    try:
        answer = cancel(session_id)
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="after-lock")
    # Then the answer is not a 503 that would claim nothing changed: the session is locked
    assert answer.status == 200, answer.body
    assert answer.json()["status"] == "PENDING_CANCELLATION"
    assert answer.json()["pendingTransactionIds"] == [card]
    assert aws.session_item(session_id)["status"] == "PENDING_CANCELLATION"
    # And the safety net records the provider's cancel and finalises
    report = expiry.sweep(Context(clock=lambda: utc_now() + timedelta(minutes=5)), lambda: 60_000)
    assert report.recovered == 1
    assert get(session_id)["status"] == "CANCELLED"
    assert event_types(session_id).count("session.cancelled") == 1
