"""Provider events: signatures, dedupe, the transition table, completion and expiry on the way out."""

from __future__ import annotations

import json
import time
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
    transaction,
)

UNKNOWN_TX = "0193f2d4-6a7b-7c8d-8e9f-0123456789ab"


@pytest.fixture
def card(aws: Any) -> tuple[str, str]:
    session_id = create_session()["sessionId"]
    return session_id, transaction(session_id)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"signature": ""},
        {"signature": "t=1,v1=deadbeef"},
        {"signature": "t=\u00b2,v1=deadbeef"},
        {"secret": "whsec_wrong"},
        {"signed_at": int(time.time()) - 301},
    ],
)
def test_bad_signatures_are_401_and_change_nothing(
    aws: Any, card: tuple[str, str], kwargs: dict[str, Any]
) -> None:
    session_id, tx = card
    before = aws.session_item(session_id)
    answer = provider_event("sandbox_card", tx, "SETTLED", **kwargs)
    assert answer.status == 401 and answer.error["code"] == "invalid_signature"
    assert aws.session_item(session_id) == before


def test_an_unknown_transaction_is_404_so_the_provider_retries(aws: Any) -> None:
    answer = provider_event("sandbox_card", UNKNOWN_TX, "SETTLED")
    assert answer.status == 404 and answer.error["code"] == "transaction_not_found"


def test_a_transaction_of_another_provider_is_not_found(aws: Any, card: tuple[str, str]) -> None:
    answer = provider_event("sandbox_bank_transfer", card[1], "SETTLED")
    assert answer.status == 404


def test_an_unknown_provider_is_400(aws: Any, card: tuple[str, str]) -> None:
    answer = provider_event("acme_pay", card[1], "SETTLED")
    assert answer.status == 400 and answer.error["param"] == "provider"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"eventId": "e", "transactionId": UNKNOWN_TX, "status": "DONE"}, "status"),
        ({"eventId": "e", "status": "SETTLED"}, "transactionId"),
        ({"eventId": "e", "transactionId": "t", "status": "SETTLED"}, "transactionId"),
        ({"eventId": "", "transactionId": UNKNOWN_TX, "status": "SETTLED"}, "eventId"),
        ({"eventId": "e", "transactionId": UNKNOWN_TX, "status": "SETTLED", "x": 1}, "x"),
    ],
)
def test_signed_but_invalid_bodies_are_400(aws: Any, body: dict[str, Any], param: str) -> None:
    answer = provider_event("sandbox_card", "t", "SETTLED", raw_body=json.dumps(body))
    assert answer.status == 400 and answer.error["param"] == param


def test_settled_completes_an_open_session(aws: Any, card: tuple[str, str]) -> None:
    session_id, tx = card
    answer = provider_event("sandbox_card", tx, "SETTLED")
    assert answer.status == 200 and answer.json() == {"received": True, "applied": True}
    session = get(session_id)
    assert session["status"] == "COMPLETED" and session["completedAt"] is not None
    assert session["transactions"][0]["status"] == "SETTLED"
    assert event_types(session_id)[-2:] == ["transaction.updated", "session.completed"]
    assert events(session_id)[-1]["actor"] == "provider:sandbox_card"


def test_a_duplicate_event_id_is_not_applied_twice(aws: Any, card: tuple[str, str]) -> None:
    session_id, tx = card
    assert provider_event("sandbox_card", tx, "AUTHORIZED", event_id="evt-1").json()["applied"] is True
    count = len(events(session_id))
    assert provider_event("sandbox_card", tx, "AUTHORIZED", event_id="evt-1").json()["applied"] is False
    assert len(events(session_id)) == count


def test_moves_outside_the_table_are_ignored_not_errors(aws: Any, card: tuple[str, str]) -> None:
    session_id, tx = card
    provider_event("sandbox_card", tx, "SETTLED")
    count = len(events(session_id))
    for status in ("AUTHORIZED", "PROCESSING", "FAILED", "SETTLED"):
        answer = provider_event("sandbox_card", tx, status, event_id=f"late-{status}")
        assert answer.status == 200 and answer.json()["applied"] is False
    assert len(events(session_id)) == count


def test_a_refund_after_settlement_is_recorded_and_the_session_stays_completed(
    aws: Any, card: tuple[str, str]
) -> None:
    session_id, tx = card
    provider_event("sandbox_card", tx, "SETTLED")
    assert provider_event("sandbox_card", tx, "REFUNDED").json()["applied"] is True
    session = get(session_id)
    assert session["status"] == "COMPLETED" and session["transactions"][0]["status"] == "REFUNDED"


def test_authorized_keeps_the_transaction_in_flight(aws: Any, card: tuple[str, str]) -> None:
    session_id, tx = card
    provider_event("sandbox_card", tx, "AUTHORIZED")
    assert aws.session_item(session_id)["inFlight"] == 1
    assert cancel(session_id).json()["cancelledTransactionIds"] == [tx]


def test_a_payment_in_flight_past_expiry_finishes_then_the_session_expires(
    aws: Any, card: tuple[str, str]
) -> None:
    # Given a session past expiresAt with a payment still in flight
    session_id, tx = card
    move_expiry_to_the_past(aws, session_id)
    assert get(session_id)["status"] == "OPEN"
    # When the payment fails
    provider_event("sandbox_card", tx, "FAILED")
    # Then the session becomes EXPIRED, persisted, with its event
    session = get(session_id)
    assert session["status"] == "EXPIRED" and aws.session_item(session_id)["status"] == "EXPIRED"
    assert event_types(session_id)[-1] == "session.expired"


def test_a_payment_in_flight_past_expiry_that_settles_completes_the_session(
    aws: Any, card: tuple[str, str]
) -> None:
    session_id, tx = card
    move_expiry_to_the_past(aws, session_id)
    provider_event("sandbox_card", tx, "SETTLED")
    assert get(session_id)["status"] == "COMPLETED"


def test_a_second_settlement_on_a_completed_session_is_refunded(aws: Any) -> None:
    # Given two payment attempts in flight on one session, the second one not cancellable in flight
    session_id = create_session()["sessionId"]
    first, second = transaction(session_id), transaction(session_id, "sandbox_bank_transfer")
    # When both settle
    provider_event("sandbox_card", first, "SETTLED")
    provider_event("sandbox_bank_transfer", second, "SETTLED")
    # Then the session stays COMPLETED, and the second payment is refunded at its provider
    read = get(session_id)
    assert read["status"] == "COMPLETED"
    statuses = {tx["transactionId"]: (tx["status"], tx["refundId"]) for tx in read["transactions"]}
    assert statuses == {first: ("SETTLED", None), second: ("REFUNDED", "sbx_re_" + second.replace("-", ""))}
    assert aws.session_item(session_id)["refundRequired"] is True
    last = events(session_id)[-1]
    assert last["type"] == "transaction.refunded"
    assert last["data"] == {
        "transactionId": second,
        "provider": "sandbox_bank_transfer",
        "refundId": statuses[second][1],
    }


def test_a_settlement_of_a_cancelled_transaction_flags_a_refund_and_raises_attention(aws: Any) -> None:
    # Given a card payment the service cancelled
    session_id = create_session()["sessionId"]
    card = transaction(session_id, "sandbox_card")
    assert cancel(session_id).json()["status"] == "CANCELLED"
    # When the provider then reports it settled (it contradicts itself; money moved)
    answer = provider_event("sandbox_card", card, "SETTLED", event_id="late-settlement")
    # Then the move is not made, but a refund is flagged and attention raised, once
    assert answer.status == 200 and answer.json() == {"received": True, "applied": False}
    assert (
        provider_event("sandbox_card", card, "SETTLED", event_id="late-settlement").json()["applied"] is False
    )
    item = aws.session_item(session_id)
    assert item["refundRequired"] is True and item["transactions"][card]["status"] == "CANCELLED"
    raised = [event for event in events(session_id) if event["type"] == "session.attention_required"]
    assert [event["data"] for event in raised] == [
        {"reason": "SETTLED_AFTER_CANCELLED", "transactionId": card, "refundRequired": True}
    ]


def test_when_one_payment_completes_the_session_competing_attempts_are_cancelled(aws: Any) -> None:
    # Given three attempts in flight: two cards and a bank transfer (which cannot be cancelled in flight)
    session_id = create_session()["sessionId"]
    winner, other_card = transaction(session_id, "sandbox_card"), transaction(session_id, "sandbox_card")
    transfer = transaction(session_id, "sandbox_bank_transfer")
    # When one card settles
    assert provider_event("sandbox_card", winner, "SETTLED").json()["applied"] is True
    # Then the session is completed, the other card is cancelled at its provider, the transfer runs on
    session = get(session_id)
    assert session["status"] == "COMPLETED"
    statuses = {tx["transactionId"]: tx["status"] for tx in session["transactions"]}
    assert statuses == {winner: "SETTLED", other_card: "CANCELLED", transfer: "PROCESSING"}
    assert aws.session_item(session_id)["inFlight"] == 1
    timeline = events(session_id)
    assert [event["sequence"] for event in timeline] == list(range(1, len(timeline) + 1))
    assert (
        timeline[-1]["type"] == "transaction.updated" and timeline[-1]["data"]["transactionId"] == other_card
    )
