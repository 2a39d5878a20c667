"""Races, with real concurrency: threads released together by a barrier against the running embedded
runtime, over HTTP. Each test states which interleavings are allowed and checks the end state and the
timeline whichever one happened."""

from __future__ import annotations

import uuid
from collections import Counter
from functools import partial
from typing import Any

import pytest

from tests.e2e.helpers import (
    IN_FLIGHT,
    Answer,
    Api,
    assert_consistent_with_timeline,
    assert_error,
    assert_timeline,
    of_type,
    retry_while_unavailable,
    run_together,
    wait_for_status,
)
from tests.support import wait_until

pytestmark = pytest.mark.e2e

CONCURRENT_CANCELS = 12
SETTLE_RACE_ROUNDS = 4
NOT_OPEN = {"PENDING_CANCELLATION", "CANCELLED"}


@pytest.fixture(scope="module")
def api(base_url: str, api_key: str) -> Api:
    """The session's shared runtime (default settings)."""
    return Api(base_url, api_key)


# -- 1. many cancels of one session ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", [None, "sandbox_card"], ids=["no-transaction", "sandbox_card"])
def test_concurrent_cancels_lock_the_session_exactly_once(api: Api, provider: str | None) -> None:
    # Given an OPEN session, with or without a card payment in flight
    session_id = api.open_session()["sessionId"]
    transaction_id = api.start_transaction(session_id, provider)["transactionId"] if provider else None

    # When 12 cancels are released at the same instant
    answers: list[Answer] = run_together(
        [lambda: api.cancel(session_id, {"reasonType": "DUPLICATE"})] * CONCURRENT_CANCELS
    )

    # Then exactly one wins; every other one is told the session is no longer cancellable
    winners = [answer for answer in answers if answer.status == 200]
    assert len(winners) == 1, Counter(answer.status for answer in answers)
    winner = winners[0].body
    assert winner["status"] == "CANCELLED"
    assert winner["pendingTransactionIds"] == []
    assert winner["cancelledTransactionIds"] == ([transaction_id] if transaction_id else [])
    for answer in answers:
        if answer.status != 200:
            error = assert_error(answer, 409, "session_not_cancellable")
            assert error["currentStatus"] in NOT_OPEN, answer

    # And the session is CANCELLED once, with a gapless timeline
    session = api.get(session_id)
    assert session["status"] == "CANCELLED"
    assert session["cancellation"]["reasonType"] == "DUPLICATE"
    events = api.events(session_id)
    assert_timeline(events, session_id)
    assert len(of_type(events, "session.cancelled")) == 1
    assert len(of_type(events, "session.cancellation_pending")) == (1 if provider else 0)
    assert_consistent_with_timeline(session, events)


# -- 2. payment attempts racing a cancel ----------------------------------------------------------------


def test_payment_attempts_racing_a_cancel_land_before_the_lock_or_are_refused(api: Api) -> None:
    # Given an OPEN session
    session_id = api.open_session()["sessionId"]
    providers = ["sandbox_card", "sandbox_bank_transfer"] * 5

    # When 10 payment attempts (card and bank transfer) and one cancel are released together
    calls = [partial(api.create_transaction, session_id, provider) for provider in providers]
    calls.append(partial(api.cancel, session_id))
    *attempts, cancel = run_together(calls)
    # (11 writers on one session can exhaust a request's optimistic-retry budget: that request is
    # answered 503 service_unavailable with Retry-After and changed nothing; a client retries it.)
    cancel = retry_while_unavailable(cancel, lambda: api.cancel(session_id))

    # Then the cancel succeeded, and each attempt either landed (201) or was refused as not open
    assert cancel.status == 200, cancel
    landed: dict[str, str] = {}
    for provider, answer in zip(providers, attempts, strict=True):
        if answer.status == 201:
            landed[answer.body["transactionId"]] = provider
        elif answer.status == 503:
            assert_error(answer, 503, "service_unavailable")
            assert answer.header("Retry-After"), answer
        else:
            error = assert_error(answer, 409, "session_not_open")
            assert error["currentStatus"] in NOT_OPEN, answer

    # And every attempt that landed is accounted for by the cancel: cancelled at the provider (card)
    # or pending because the provider cannot cancel in flight (bank transfer); no other one exists
    cancelled = set(cancel.body["cancelledTransactionIds"])
    pending = set(cancel.body["pendingTransactionIds"])
    assert cancelled == {tx for tx, p in landed.items() if p == "sandbox_card"}, (landed, cancel)
    assert pending == {tx for tx, p in landed.items() if p == "sandbox_bank_transfer"}, (landed, cancel)
    session = api.get(session_id)
    assert {tx["transactionId"] for tx in session["transactions"]} == set(landed)
    expected = "PENDING_CANCELLATION" if pending else "CANCELLED"
    assert cancel.body["status"] == session["status"] == expected

    # When the bank transfers that were left in flight fail on their own
    for transaction_id in sorted(pending):
        ack = api.provider_event("sandbox_bank_transfer", transaction_id, "FAILED")
        assert ack.status == 200 and ack.body == {"received": True, "applied": True}, ack

    # Then the workflow finalises: CANCELLED, nothing in flight, one session.cancelled, no refund due
    session = wait_for_status(api, session_id, "CANCELLED")
    assert not [tx for tx in session["transactions"] if tx["status"] in IN_FLIGHT]
    assert session["cancellation"]["pendingTransactionIds"] == []
    assert session["cancellation"]["settledTransactionIds"] == []
    events = api.events(session_id)
    assert_timeline(events, session_id)
    assert_consistent_with_timeline(session, events)
    (final,) = of_type(events, "session.cancelled")
    assert final["data"]["refundRequired"] is False
    # No payment attempt was recorded after the lock
    lock_sequence = next(
        (e["sequence"] for e in events if e["type"] in ("session.cancellation_pending", "session.cancelled")),
    )
    assert all(e["sequence"] < lock_sequence for e in of_type(events, "transaction.created"))


# -- 3. a cancel racing a settlement it cannot stop -------------------------------------------------------


def test_cancel_racing_a_settlement_ends_completed_or_cancelled_and_refunded(api: Api) -> None:
    outcomes: Counter[str] = Counter()
    for _ in range(SETTLE_RACE_ROUNDS):
        # Given an OPEN session with a bank transfer in flight (its provider cannot cancel in flight)
        session_id = api.open_session()["sessionId"]
        transaction_id = api.start_transaction(session_id, "sandbox_bank_transfer")["transactionId"]

        # When the cancel and the provider's SETTLED event are released together
        cancel, settled = run_together(
            [
                partial(api.cancel, session_id),
                partial(api.provider_event, "sandbox_bank_transfer", transaction_id, "SETTLED"),
            ]
        )

        # Then the settlement is always applied, and the outcome is one of the two orders
        assert settled.status == 200 and settled.body == {"received": True, "applied": True}, settled
        if cancel.status == 409:
            # The settlement completed the session first
            error = assert_error(cancel, 409, "session_not_cancellable")
            assert error["currentStatus"] == "COMPLETED"
            session = api.get(session_id)
            assert session["status"] == "COMPLETED" and session["cancellation"] is None
            events = api.events(session_id)
            assert not of_type(events, "session.cancellation_pending")
            outcomes["completed"] += 1
        else:
            # The cancel locked first: the settlement is recorded against the cancellation, and refunded
            assert cancel.status == 200, cancel
            assert cancel.body["status"] == "PENDING_CANCELLATION"
            assert cancel.body["pendingTransactionIds"] == [transaction_id]
            wait_for_status(api, session_id, "CANCELLED")
            session = wait_until(
                partial(refunded, api, session_id), 30, f"the settled transfer of {session_id} to be refunded"
            )
            assert session["cancellation"]["settledTransactionIds"] == [transaction_id]
            assert session["cancellation"]["refundedTransactionIds"] == [transaction_id]
            assert session["cancellation"]["pendingTransactionIds"] == []
            assert session["completedAt"] is None
            events = api.events(session_id)
            (final,) = of_type(events, "session.cancelled")
            assert final["data"]["refundRequired"] is True
            assert final["data"]["settledTransactionIds"] == [transaction_id]
            assert len(of_type(events, "transaction.refunded")) == 1
            outcomes["cancelled"] += 1
        expected = "SETTLED" if cancel.status == 409 else "REFUNDED"
        assert [tx["status"] for tx in session["transactions"]] == [expected]
        assert_timeline(events, session_id)
        assert_consistent_with_timeline(session, events)
    assert sum(outcomes.values()) == SETTLE_RACE_ROUNDS, outcomes


def refunded(api: Api, session_id: str) -> dict[str, Any] | None:
    session = api.get(session_id)
    return session if [tx["status"] for tx in session["transactions"]] == ["REFUNDED"] else None


# -- 6. idempotency under concurrency --------------------------------------------------------------------


def test_concurrent_creates_with_one_idempotency_key_create_one_session(api: Api) -> None:
    # Given one Idempotency-Key and one body
    key = f"race-{uuid.uuid4()}"
    reference = f"idem-{uuid.uuid4().hex[:16]}"

    # When 8 identical creates are released together
    answers: list[Answer] = run_together(
        [lambda: api.create_session(idempotency_key=key, referenceId=reference)] * 8
    )

    # Then every 201 names the same session, and the others are told the first is still running
    created = [answer for answer in answers if answer.status == 201]
    assert created, Counter(answer.status for answer in answers)
    assert len({answer.body["sessionId"] for answer in created}) == 1, created
    for answer in answers:
        if answer.status != 201:
            assert_error(answer, 409, "idempotency_in_progress")
    session_id = created[0].body["sessionId"]

    # And only one session exists for that body
    listed = api.request("GET", "/v1/sessions?limit=100")
    assert listed.status == 200, listed
    assert [s["sessionId"] for s in listed.body["data"] if s["referenceId"] == reference] == [session_id]

    # When the same request is repeated once the first has finished
    replay = api.create_session(idempotency_key=key, referenceId=reference)

    # Then the stored answer comes back, marked as replayed, and nothing new is created
    assert replay.status == 201, replay
    assert replay.header("Idempotent-Replayed") == "true"
    assert replay.body["sessionId"] == session_id
    assert len(api.events(session_id)) == 1
