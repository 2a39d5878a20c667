"""Stripe's webhooks read by the stripe adapter: signed as Stripe signs them (HMAC-SHA256 of "t.payload"),
verified by the official SDK's construct_event, mapped onto the service's transaction statuses."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from checkout_core.errors import InvalidSignature
from checkout_core.providers.stripe import StripeProvider, StripeSettings
from checkout_core.transitions import TransactionStatus

SECRET = "whsec_unit"
TX = "01a23812-6315-7872-993a-f7667927cb99"
ADAPTER = StripeProvider(StripeSettings("sk_test_unit", SECRET, "http://127.0.0.1:9"))


def signed(
    event: dict[str, Any], at: int | None = None, secret: str = SECRET
) -> tuple[dict[str, str], bytes]:
    payload = json.dumps(event)
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.{payload}".encode(), hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={digest}"}, payload.encode()


def intent_event(event_type: str, status: str, **intent: Any) -> dict[str, Any]:
    return {
        "id": f"evt_{event_type}",
        "object": "event",
        "type": event_type,
        "data": {
            "object": {
                "id": "pi_unit",
                "object": "payment_intent",
                "status": status,
                "metadata": {"sessionId": "s", "transactionId": TX},
                **intent,
            }
        },
    }


@pytest.mark.parametrize(
    ("event_type", "status", "expected"),
    [
        ("payment_intent.succeeded", "succeeded", TransactionStatus.SETTLED),
        ("payment_intent.processing", "processing", TransactionStatus.PROCESSING),
        ("payment_intent.amount_capturable_updated", "requires_capture", TransactionStatus.AUTHORIZED),
        ("payment_intent.canceled", "canceled", TransactionStatus.CANCELLED),
    ],
)
def test_payment_intent_events_map_to_moves(
    event_type: str, status: str, expected: TransactionStatus
) -> None:
    headers, raw = signed(intent_event(event_type, status))
    report = ADAPTER.parse_event(headers, raw, int(time.time()))
    assert (report.event_id, report.transaction_id, report.reference, report.status) == (
        f"evt_{event_type}",
        TX,
        "pi_unit",
        expected,
    )


def test_a_failed_payment_carries_the_decline_code() -> None:
    event = intent_event(
        "payment_intent.payment_failed",
        "requires_payment_method",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"},
    )
    report = ADAPTER.parse_event(*signed(event), int(time.time()))
    assert (report.status, report.failure_code) == (TransactionStatus.FAILED, "insufficient_funds")


def test_types_the_service_does_not_act_on_are_read_as_no_move() -> None:
    customer = {
        "id": "evt_c",
        "object": "event",
        "type": "customer.created",
        "data": {"object": {"id": "cus_1"}},
    }
    assert ADAPTER.parse_event(*signed(customer), int(time.time())).status is None
    partial = {
        "id": "evt_r",
        "object": "event",
        "type": "charge.refunded",
        "data": {
            "object": {"id": "ch_1", "object": "charge", "refunded": False, "payment_intent": "pi_unit"}
        },
    }
    assert ADAPTER.parse_event(*signed(partial), int(time.time())).status is None


@pytest.mark.parametrize(
    "tamper",
    ["another secret", "stale", "body changed", "no header"],
)
def test_a_webhook_not_signed_by_stripe_now_is_refused(tamper: str) -> None:
    event = intent_event("payment_intent.succeeded", "succeeded")
    headers, raw = signed(
        event,
        at=int(time.time()) - 301 if tamper == "stale" else None,
        secret="whsec_other" if tamper == "another secret" else SECRET,
    )
    if tamper == "body changed":
        raw = raw.replace(b"succeeded", b"canceled")
    if tamper == "no header":
        headers = {}
    with pytest.raises(InvalidSignature):
        ADAPTER.parse_event(headers, raw, int(time.time()))


def test_an_intents_event_carries_its_amount_and_currency_for_matching() -> None:
    event = intent_event("payment_intent.succeeded", "succeeded", amount=129900, currency="jpy")
    report = ADAPTER.parse_event(*signed(event), int(time.time()))
    assert (report.reference, report.amount, report.currency) == ("pi_unit", 129900, "JPY")
    refunded = {
        "id": "evt_refunded",
        "object": "event",
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": "ch_1",
                "object": "charge",
                "refunded": True,
                "amount": 5000,
                "currency": "usd",
                "payment_intent": "pi_unit",
                "metadata": {"transactionId": TX},
                "refunds": {"data": [{"id": "re_1"}]},
            }
        },
    }
    report = ADAPTER.parse_event(*signed(refunded), int(time.time()))
    assert (report.status, report.refund_id, report.amount, report.currency) == (
        TransactionStatus.REFUNDED,
        "re_1",
        5000,
        "USD",
    )
