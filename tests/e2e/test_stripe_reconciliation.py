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
    # Then reconciliation asks Stripe about the intent whose id was recorded before it was confirmed
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


def test_a_crash_between_recording_the_intent_and_confirming_it_charges_nothing(
    start_runtime: Callable[..., RunningRuntime],
) -> None:
    # Given the function dies after recording the PaymentIntent's id, before confirming it; an intent left
    # unconfirmed is given up 2 s after its creation
    runtime = start_runtime(
        FAULTS="transaction.after_reference_recorded=crash",
        LOCAL_STRIPE_WEBHOOKS="off",
        STRIPE_CONFIRM_WINDOW_SECONDS="2",
    )
    api, emulator = Api(runtime.base_url, "sk_test_demo"), emulator_of(runtime)
    session = api.open_session()
    assert attempt(api, session["sessionId"], "pm_card_visa").status >= 500
    [crashed] = api.get(session["sessionId"])["transactions"]
    assert crashed["providerReference"].startswith("pi_")  # recorded before anything could charge
    # Then reconciliation cancels the intent a confirm never reached and records the attempt CANCELLED
    cancelled = recorded(api, session["sessionId"], lambda tx: tx["status"] == "CANCELLED", "CANCELLED")
    intent = emulator.v1.payment_intents.retrieve(crashed["providerReference"])
    assert cancelled["providerReference"] == intent.id
    # And nothing was ever charged; the customer may pay again
    assert (intent.status, intent.latest_charge, intent.cancellation_reason) == (
        "canceled",
        None,
        "abandoned",
    )
    assert api.get(session["sessionId"])["status"] == "OPEN"
    moves = [e for e in api.events(session["sessionId"]) if e["type"] == "transaction.updated"]
    assert [(e["actor"], e["data"]["to"]) for e in moves] == [("scheduler", "CANCELLED")]


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


def test_a_refund_event_without_its_refunds_is_recorded_with_the_refund_stripe_lists(
    start_runtime: Callable[..., RunningRuntime],
) -> None:
    # Given a settled card payment, and only the webhooks delivered here
    runtime = start_runtime(
        LOCAL_STRIPE_WEBHOOKS="off", PROVIDER_RECONCILE_SECONDS="3600", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    api, emulator = Api(runtime.base_url, "sk_test_demo"), emulator_of(runtime)
    session = api.open_session()
    started = attempt(api, session["sessionId"], "pm_card_visa")
    assert started.body["status"] == "SETTLED"
    intent_id = started.body["providerReference"]
    made = emulator.v1.refunds.create(params={"payment_intent": intent_id})
    # When Stripe's charge.refunded arrives as current API versions send it: no `refunds` in the charge
    # (the local Stripe sends no charge.refunded: the event is Stripe's envelope around the charge it holds)
    intent = emulator.v1.payment_intents.retrieve(intent_id)
    latest = intent.latest_charge  # an id at Stripe; the local Stripe answers the charge itself
    charge = emulator.v1.charges.retrieve(latest if isinstance(latest, str) else latest.id).to_dict()
    assert charge["refunded"] is True
    charge.pop("refunds", None)
    event = {
        "id": f"evt_refunded_{intent_id}",
        "object": "event",
        "type": "charge.refunded",
        "data": {"object": charge},
    }
    assert deliver(runtime, event).body == {"received": True, "applied": True}
    # Then the refund Stripe lists for the payment is the one recorded
    [refunded] = api.get(session["sessionId"])["transactions"]
    assert (refunded["status"], refunded["refundId"]) == ("REFUNDED", made.id)
