"""Faults: a provider whose cancel call fails, and the process dying between the cancel's lock and its
provider calls. In both the session must end CANCELLED with nothing left in flight and one
`session.cancelled`, whatever path finishes the job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local.naming import REGION
from tests.e2e.conftest import RunningRuntime
from tests.e2e.helpers import (
    Api,
    assert_consistent_with_timeline,
    assert_error,
    assert_timeline,
    of_type,
    run_together,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.e2e

# The crash runtime: every cancel that reaches the provider calls dies just after its lock; the safety
# net runs every second and picks up a pending cancellation two seconds after its lock.
CRASH_ENV = {
    "FAULTS": "cancel.after_lock=crash",
    "SWEEP_INTERVAL_SECONDS": "1",
    # Long enough for the checks of the state the crash left to run before the safety net acts, on a
    # machine busy with the rest of the suite (2 s was not, once).
    "CANCELLATION_GRACE_SECONDS": "10",
}
RECOVERY_TIMEOUT_SECONDS = 60.0


@pytest.fixture(scope="module")
def api(base_url: str, api_key: str) -> Api:
    """The session's shared runtime (default settings)."""
    return Api(base_url, api_key)


# -- 4. a provider cancel that fails ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "refund_required"), [("FAILED", False), ("SETTLED", True)], ids=["then-fails", "then-settles"]
)
def test_a_failed_provider_cancel_leaves_the_transaction_pending_until_it_ends(
    api: Api, outcome: str, refund_required: bool
) -> None:
    # Given an OPEN session with a card payment and a flaky-card payment in flight
    session_id = api.open_session()["sessionId"]
    card = api.start_transaction(session_id, "sandbox_card")["transactionId"]
    flaky = api.start_transaction(session_id, "sandbox_flaky_card")["transactionId"]

    # When it is cancelled (the flaky provider's cancel call fails)
    cancel = api.cancel(session_id, {"reasonType": "CUSTOMER_REQUESTED"})

    # Then the card is cancelled, the flaky payment is pending, and the session waits for it
    assert cancel.status == 200, cancel
    assert cancel.body["status"] == "PENDING_CANCELLATION"
    assert cancel.body["cancelledTransactionIds"] == [card]
    assert cancel.body["pendingTransactionIds"] == [flaky]
    session = api.get(session_id)
    assert session["status"] == "PENDING_CANCELLATION"
    assert session["cancellation"]["pendingTransactionIds"] == [flaky]
    assert {tx["transactionId"]: tx["status"] for tx in session["transactions"]} == {
        card: "CANCELLED",
        flaky: "PROCESSING",
    }
    # And no new payment attempt can land meanwhile
    refused = api.create_transaction(session_id, "sandbox_card")
    assert assert_error(refused, 409, "session_not_open")["currentStatus"] == "PENDING_CANCELLATION"

    # When the flaky payment ends on its own
    ack = api.provider_event("sandbox_flaky_card", flaky, outcome)
    assert ack.status == 200 and ack.body == {"received": True, "applied": True}, ack

    # Then the workflow finalises the cancellation; a payment that settled is refunded at its provider
    session = wait_for_status(api, session_id, "CANCELLED")
    if refund_required:
        session = wait_until(
            lambda: (read := api.get(session_id))["cancellation"]["refundedTransactionIds"] and read,
            30,
            "the refund of the settled payment",
        )
    cancellation = session["cancellation"]
    assert cancellation["pendingTransactionIds"] == []
    assert cancellation["cancelledTransactionIds"] == [card]
    assert cancellation["settledTransactionIds"] == ([flaky] if refund_required else [])
    assert cancellation["refundedTransactionIds"] == ([flaky] if refund_required else [])
    assert cancellation["finalizedAt"] is not None
    events = api.events(session_id)
    assert_timeline(events, session_id)
    assert_consistent_with_timeline(session, events)
    (final,) = of_type(events, "session.cancelled")
    assert final["actor"] == "workflow"
    assert final["data"]["refundRequired"] is refund_required


# -- 5. the process dies after the lock, before the provider calls ---------------------------------------


def _finaliser_execution(runtime: RunningRuntime) -> Callable[[str], dict[str, Any] | None]:
    """Looks up `cancel-<sessionId>` in the runtime's emulated Step Functions."""
    client = boto3.client(
        "stepfunctions",
        endpoint_url=runtime.moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    (machine,) = client.list_state_machines()["stateMachines"]
    prefix = machine["stateMachineArn"].replace(":stateMachine:", ":execution:")

    def describe(session_id: str) -> dict[str, Any] | None:
        try:
            return dict(client.describe_execution(executionArn=f"{prefix}:cancel-{session_id}"))
        except client.exceptions.ExecutionDoesNotExist:
            return None

    return describe


def test_a_crash_after_the_lock_is_finished_by_the_safety_net(
    start_runtime: Callable[..., RunningRuntime],
) -> None:
    runtime = start_runtime(**CRASH_ENV)
    api = Api(runtime.base_url, "sk_test_demo")
    execution_of = _finaliser_execution(runtime)

    # Given two OPEN sessions: one with a card payment in flight, one with a card payment and a bank
    # transfer (which cannot be cancelled in flight)
    alone = api.open_session()["sessionId"]
    alone_card = api.start_transaction(alone, "sandbox_card")["transactionId"]
    mixed = api.open_session()["sessionId"]
    mixed_card = api.start_transaction(mixed, "sandbox_card")["transactionId"]
    mixed_bank = api.start_transaction(mixed, "sandbox_bank_transfer")["transactionId"]

    # When both are cancelled and each invocation dies right after taking the lock
    crashed = run_together([lambda: api.cancel(alone), lambda: api.cancel(mixed)])

    # Then each caller gets what API Gateway answers for a crashed Lambda: a 5xx in the contract's shape
    for answer in crashed:
        assert answer.status in (500, 502), answer
        assert_error(answer, answer.status, "internal_error")
        assert answer.header("X-Request-Id") == answer.error["requestId"]

    # And the lock held: both sessions are PENDING_CANCELLATION, their card payments still in flight,
    # no provider was called, and no finaliser was started
    for session_id, card in ((alone, alone_card), (mixed, mixed_card)):
        session = api.get(session_id)
        assert session["status"] == "PENDING_CANCELLATION", session
        statuses = {tx["transactionId"]: tx["status"] for tx in session["transactions"]}
        assert statuses[card] == "PROCESSING", session
        assert execution_of(session_id) is None
    assert assert_error(api.create_transaction(alone), 409, "session_not_open")

    # When the scheduled safety net runs (expire_sessions -> recover_cancellation)
    # Then it cancels the card payments at the provider; the session with nothing else in flight ends
    # CANCELLED, the other one gets a finaliser waiting on its bank transfer
    session = wait_for_status(api, alone, "CANCELLED", RECOVERY_TIMEOUT_SECONDS)
    assert session["cancellation"]["cancelledTransactionIds"] == [alone_card]
    assert session["cancellation"]["pendingTransactionIds"] == []
    events = api.events(alone)
    assert_timeline(events, alone)
    assert_consistent_with_timeline(session, events)
    (final,) = of_type(events, "session.cancelled")
    assert final["actor"] == "scheduler"
    assert final["data"]["refundRequired"] is False
    (card_cancelled,) = of_type(events, "transaction.updated")
    assert card_cancelled["actor"] == "scheduler"

    def card_cancelled_and_finaliser_running() -> bool:
        current = api.get(mixed)
        statuses = {tx["transactionId"]: tx["status"] for tx in current["transactions"]}
        execution = execution_of(mixed) or {}
        return statuses[mixed_card] == "CANCELLED" and execution.get("status") == "RUNNING"

    wait_until(card_cancelled_and_finaliser_running, RECOVERY_TIMEOUT_SECONDS, "the safety net on `mixed`")
    session = api.get(mixed)
    assert session["status"] == "PENDING_CANCELLATION"
    assert session["cancellation"]["pendingTransactionIds"] == [mixed_bank]

    # When the bank transfer settles after all
    ack = api.provider_event("sandbox_bank_transfer", mixed_bank, "SETTLED")
    assert ack.status == 200 and ack.body == {"received": True, "applied": True}, ack

    # Then the cancellation is finalised once, and the settled transfer refunded
    wait_for_status(api, mixed, "CANCELLED", RECOVERY_TIMEOUT_SECONDS)
    session = wait_until(
        lambda: (read := api.get(mixed))["cancellation"]["refundedTransactionIds"] and read,
        RECOVERY_TIMEOUT_SECONDS,
        "the refund of the settled transfer",
    )
    assert session["cancellation"]["cancelledTransactionIds"] == [mixed_card]
    assert session["cancellation"]["settledTransactionIds"] == [mixed_bank]
    assert session["cancellation"]["refundedTransactionIds"] == [mixed_bank]
    events = api.events(mixed)
    assert_timeline(events, mixed)
    assert_consistent_with_timeline(session, events)
    (final,) = of_type(events, "session.cancelled")
    assert final["data"]["refundRequired"] is True
