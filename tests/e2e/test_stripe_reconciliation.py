"""Reconciliation against the local Stripe: webhooks that never arrive, and a crash on each side of the
call that creates the PaymentIntent. The scheduled job (every second here) asks Stripe and records what it
finds, as a webhook would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe

from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, wait_for_status
from tests.support import wait_until

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
    [recorded_first] = api.get(session["sessionId"])["transactions"]
    assert (recorded_first["status"], recorded_first["providerReference"]) == ("PROCESSING", None)
    # Then reconciliation finds the intent by our transaction id and records it
    found = recorded(api, session["sessionId"], lambda tx: tx["status"] == "AUTHORIZED", "AUTHORIZED")
    assert found["providerReference"].startswith("pi_")
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
