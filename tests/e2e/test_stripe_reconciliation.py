"""Reconciliation against the local Stripe: webhooks that never arrive, and a crash on each side of the
call that creates the PaymentIntent. The scheduled job (every second here) asks Stripe and records what it
finds, as a webhook would."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe

from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, wait_for_status
from tests.support import wait_until

WEBHOOK_SECRET = "whsec_e2e_reconciliation"
FAST = {"SWEEP_INTERVAL_SECONDS": "1", "PROVIDER_RECONCILE_SECONDS": "1", "LOCAL_STRIPE_SEPA_SECONDS": "2"}


@pytest.fixture
def start_runtime() -> Iterator[Callable[..., RunningRuntime]]:
    started: list[RunningRuntime] = []

    def start(**env: str) -> RunningRuntime:
        runtime = launch({**FAST, **env})
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        stop_and_check(runtime)


def emulator_of(runtime: RunningRuntime) -> Any:
    return stripe.StripeClient("sk_test_local", base_addresses={"api": runtime.stripe_url})


def attempt(api: Api, session_id: str, payment_method: str, capture: str = "AUTOMATIC") -> Any:
    return api.request(
        "POST",
        f"/v1/sessions/{session_id}/transactions",
        {"provider": "stripe", "paymentMethod": payment_method, "captureMethod": capture},
    )


def recorded(
    api: Api, session_id: str, wanted: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    def found() -> Any:
        transactions = api.get(session_id)["transactions"]
        return transactions[0] if transactions and wanted(transactions[0]) else None

    return dict(wait_until(found, 30, what))


def test_a_lost_webhook_is_recovered_by_reconciliation(start_runtime: Callable[..., RunningRuntime]) -> None:
    # Given Stripe's webhooks never reach the service
    runtime = start_runtime(LOCAL_STRIPE_WEBHOOKS="off")
    api = Api(runtime.base_url, "sk_test_demo")
    method = emulator_of(runtime).v1.payment_methods.create(
        params={"type": "sepa_debit", "sepa_debit": {"iban": "DE89370400440532013000"}}
    )
    session = api.open_session(currency="EUR")
    # When a SEPA debit is processing, then succeeds at Stripe
    assert attempt(api, session["sessionId"], method.id).body["status"] == "PROCESSING"
    # Then reconciliation finds it settled and completes the session
    completed = wait_for_status(api, session["sessionId"], "COMPLETED", timeout=60)
    assert completed["transactions"][0]["status"] == "SETTLED"
    [event] = [e for e in api.events(session["sessionId"]) if e["type"] == "session.completed"]
    assert event["actor"] == "scheduler"


def test_a_crash_after_stripe_answered_is_finished_from_stripe(
    start_runtime: Callable[..., RunningRuntime],
) -> None:
    # Given the function dies after Stripe created and authorised the PaymentIntent, before recording it
    runtime = start_runtime(FAULTS="transaction.after_provider_start=crash", LOCAL_STRIPE_WEBHOOKS="off")
    api = Api(runtime.base_url, "sk_test_demo")
    session = api.open_session()
    crashed = attempt(api, session["sessionId"], "pm_card_visa", "MANUAL")
    assert crashed.status >= 500
    # Then reconciliation finds the intent by our transaction id and records it
    found = recorded(api, session["sessionId"], lambda tx: tx["status"] == "AUTHORIZED", "AUTHORIZED")
    assert found["providerReference"].startswith("pi_")
    # (the crashed call recorded only the attempt: the move to AUTHORIZED is the scheduler's, the only one)
    moves = [e for e in api.events(session["sessionId"]) if e["type"] == "transaction.updated"]
    assert [(e["actor"], e["data"]["from"], e["data"]["to"]) for e in moves] == [
        ("scheduler", "PROCESSING", "AUTHORIZED")
    ]
    intent = emulator_of(runtime).v1.payment_intents.retrieve(found["providerReference"])
    assert intent.metadata["transactionId"] == found["transactionId"]


def test_a_crash_before_stripe_was_called_marks_the_attempt_failed(
    start_runtime: Callable[..., RunningRuntime],
) -> None:
    runtime = start_runtime(FAULTS="transaction.before_provider_start=crash")
    api = Api(runtime.base_url, "sk_test_demo")
    session = api.open_session()
    assert attempt(api, session["sessionId"], "pm_card_visa").status >= 500
    failed = recorded(api, session["sessionId"], lambda tx: tx["status"] == "FAILED", "FAILED")
    assert (failed["providerReference"], failed["failureCode"]) == (None, "not_created_at_provider")
    assert api.get(session["sessionId"])["status"] == "OPEN"  # the customer may try again


def test_an_event_is_matched_to_the_attempt_before_its_reference_is_recorded(
    start_runtime: Callable[..., RunningRuntime],
) -> None:
    # Given the function died after Stripe authorised the PaymentIntent, before recording its id; no
    # webhook arrives by itself and reconciliation is an hour away: only the events delivered here count
    runtime = start_runtime(
        FAULTS="transaction.after_provider_start=crash",
        LOCAL_STRIPE_WEBHOOKS="off",
        PROVIDER_RECONCILE_SECONDS="3600",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    api, emulator = Api(runtime.base_url, "sk_test_demo"), emulator_of(runtime)
    session = api.open_session(amount=5000, currency="USD")
    assert attempt(api, session["sessionId"], "pm_card_visa", "MANUAL").status >= 500
    [crashed] = api.get(session["sessionId"])["transactions"]
    transaction_id = crashed["transactionId"]
    assert crashed["providerReference"] is None
    # When a PaymentIntent made elsewhere with our transaction id, for another amount, reports success
    foreign = emulator.v1.payment_intents.create(
        params={
            "amount": 100,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"transactionId": transaction_id},
        }
    )
    odd = deliver(runtime, event_of(emulator, "payment_intent.succeeded", foreign.id))
    # Then nothing moves, its id is not taken for ours, and a person is told why
    assert odd.body == {"received": True, "applied": False}
    [unmoved] = api.get(session["sessionId"])["transactions"]
    assert (unmoved["status"], unmoved["providerReference"]) == ("PROCESSING", None)
    [raised] = [e for e in api.events(session["sessionId"]) if e["type"] == "session.attention_required"]
    assert raised["data"]["reason"] == "AMOUNT_MISMATCH"
    assert raised["data"]["reported"] == {"amount": 100, "currency": "USD"}
    # When Stripe's event of our own PaymentIntent arrives
    intents = [
        intent
        for intent in emulator.v1.payment_intents.search(
            params={"query": f"metadata['transactionId']:'{transaction_id}'"}
        ).data
        if intent.id != foreign.id
    ]
    [genuine] = intents
    applied = deliver(runtime, event_of(emulator, "payment_intent.amount_capturable_updated", genuine.id))
    # Then it moves the attempt and its id is recorded with the move
    assert applied.body == {"received": True, "applied": True}
    [moved] = api.get(session["sessionId"])["transactions"]
    assert (moved["status"], moved["providerReference"]) == ("AUTHORIZED", genuine.id)
    # And from then on the other PaymentIntent's events are about another payment: ignored
    again = deliver(runtime, event_of(emulator, "payment_intent.succeeded", foreign.id), "evt_resent")
    assert again.body == {"received": True, "applied": False}
    assert api.get(session["sessionId"])["transactions"][0]["status"] == "AUTHORIZED"


def test_a_refund_stripe_says_was_already_made_is_looked_up_and_recorded(
    start_runtime: Callable[..., RunningRuntime],
) -> None:
    # Given a cancelled session waiting on a SEPA debit Stripe would not cancel; no webhook arrives, and
    # reconciliation asks Stripe 20 s after the attempt
    runtime = start_runtime(LOCAL_STRIPE_WEBHOOKS="off", PROVIDER_RECONCILE_SECONDS="20")
    api, emulator = Api(runtime.base_url, "sk_test_demo"), emulator_of(runtime)
    method = emulator.v1.payment_methods.create(
        params={"type": "sepa_debit", "sepa_debit": {"iban": "DE89370400440532013000"}}
    )
    session = api.open_session(currency="EUR")
    started = attempt(api, session["sessionId"], method.id)
    assert started.body["status"] == "PROCESSING"
    transaction_id, intent_id = started.body["transactionId"], started.body["providerReference"]
    assert api.cancel(session["sessionId"]).body["status"] == "PENDING_CANCELLATION"
    # When the debit succeeds and is refunded at Stripe before the service has recorded either (a refund
    # call of ours that Stripe made, its answer lost, its idempotency key long forgotten)
    wait_until(lambda: emulator.v1.payment_intents.retrieve(intent_id).status == "succeeded", 30, "the debit")
    made = emulator.v1.refunds.create(
        params={"payment_intent": intent_id, "metadata": {"transactionId": transaction_id}}
    )
    # Then reconciliation records the settlement, Stripe answers its refund with charge_already_refunded,
    # and the refund Stripe made is recorded: REFUNDED, its id, and no alarm
    refunded = recorded(api, session["sessionId"], lambda tx: tx["status"] == "REFUNDED", "REFUNDED")
    assert refunded["refundId"] == made.id
    read = api.get(session["sessionId"])
    assert read["cancellation"]["refundedTransactionIds"] == [transaction_id]
    types = [event["type"] for event in api.events(session["sessionId"])]
    assert types.count("transaction.refunded") == 1 and "session.attention_required" not in types
    assert [refund.id for refund in emulator.v1.refunds.list(params={"payment_intent": intent_id}).data] == [
        made.id
    ]
    with pytest.raises(stripe.InvalidRequestError) as refused:  # the local Stripe answers as Stripe does
        emulator.v1.refunds.create(params={"payment_intent": intent_id})
    assert refused.value.code == "charge_already_refunded"


def event_of(emulator: Any, event_type: str, intent_id: str) -> dict[str, Any]:
    [event] = [
        event
        for event in emulator.v1.events.list(params={"type": event_type, "limit": 100}).data
        if event.data.object.id == intent_id
    ]
    return dict(event.to_dict())


def deliver(runtime: RunningRuntime, event: dict[str, Any], event_id: str | None = None) -> Any:
    """A Stripe webhook signed as Stripe signs it (HMAC-SHA256 of "t.payload" with the webhook secret)."""
    if event_id:
        event = {**event, "id": event_id}
    payload = json.dumps(event)
    now = int(time.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.{payload}".encode(), hashlib.sha256).hexdigest()
    return Api(runtime.base_url, "").request(
        "POST",
        "/v1/providers/stripe/events",
        raw=payload.encode(),
        headers={"Stripe-Signature": f"t={now},v1={signature}"},
        authorized=False,
    )
