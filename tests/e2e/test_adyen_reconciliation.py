"""Reconciliation of the `adyen` provider, which has no API to ask a payment's status: a crash on each side
of the /payments call with Adyen's notifications lost. The runtime's scheduled job (every second here) waits
while the session takes payments, then cancels the silent attempt by our own reference (Adyen's technical
cancel), and raises attention past the deadline when nothing ends it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, wait_for_status
from tests.e2e.test_adyen import QUICK, control, pay, sent, transaction_of
from tests.support import wait_until

RECONCILING = {**QUICK, "SWEEP_INTERVAL_SECONDS": "1", "PROVIDER_RECONCILE_SECONDS": "1"}


@pytest.fixture
def start_runtime() -> Iterator[Callable[..., RunningRuntime]]:
    started: list[RunningRuntime] = []

    def start(**env: str) -> RunningRuntime:
        runtime = launch({**RECONCILING, **env})
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        stop_and_check(runtime)


@pytest.mark.parametrize("point", ["transaction.before_provider_start", "transaction.after_provider_start"])
def test_reconciliation_cancels_a_silent_crashed_attempt_once_its_session_no_longer_takes_payments(
    start_runtime: Callable[..., RunningRuntime], point: str
) -> None:
    # Given the function dies on one side of the /payments call, and Adyen's notifications are lost
    runtime = start_runtime(
        FAULTS=f"{point}=crash", SESSION_TTL_MIN_SECONDS="1", CANCELLATION_DEADLINE_SECONDS="5"
    )
    api = Api(runtime.base_url, "sk_test_demo")
    control(runtime, "notifications", {"drop": True})
    session = api.open_session(
        currency="EUR", expiresInSeconds=20
    )  # time for a cold start on a loaded machine
    assert pay(api, session["sessionId"], capture="MANUAL").status >= 500
    lost = transaction_of(api, session["sessionId"])
    assert (lost["status"], lost["providerReference"]) == ("PROCESSING", None)
    tx_id = lost["transactionId"]
    # While the session takes payments, reconciliation (every second) waits: it cannot ask Adyen
    assert sent(runtime, "TECHNICAL_CANCEL", tx_id) == []
    control(runtime, "notifications", {"drop": False})
    # When the session has passed its expiry, reconciliation cancels the attempt by our reference
    [technical] = wait_until(lambda: sent(runtime, "TECHNICAL_CANCEL", tx_id), 60, "a technical cancel")
    if point == "transaction.after_provider_start":
        # Adyen had the payment: cancelled, and the session, with nothing in flight, expires
        assert technical["item"]["success"] == "true"
        ended = wait_for_status(api, session["sessionId"], "EXPIRED", timeout=60)
        assert [tx["status"] for tx in ended["transactions"]] == ["CANCELLED"]
    else:
        # Adyen never had it: the cancel is refused; past the deadline the session asks for a person, once
        assert technical["item"]["success"] == "false"
        wait_until(
            lambda: [
                e for e in api.events(session["sessionId"]) if e["type"] == "session.attention_required"
            ],
            60,
            "attention",
        )
        [attention] = [
            e for e in api.events(session["sessionId"]) if e["type"] == "session.attention_required"
        ]
        assert attention["data"]["reason"] == "PROVIDER_SILENT" and attention["actor"] == "scheduler"
        assert transaction_of(api, session["sessionId"])["status"] == "PROCESSING"
