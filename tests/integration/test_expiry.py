"""Expiry: reads report it at once; the sweeper persists it; races settle on one outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from checkout_core import cancellation, expiry, payments
from checkout_core.clock import from_epoch, utc_now
from checkout_core.context import Context
from checkout_core.errors import SessionExpired
from checkout_core.faults import InjectedCrash
from checkout_core.models import Tenant
from checkout_core.repository import SessionChange, SessionRepository
from tests.integration.flows import (
    cancel,
    create_session,
    event_types,
    get,
    move_expiry_to_the_past,
    provider_event,
    transaction,
)

# Imported here, not in a test: importing a test module makes pytest compile it, and CPython 3.11's
# compiler can fail ("AST constructor recursion depth mismatch") while moto's executions run in threads.
from tests.integration.test_cancel import _token_stored
from tests.support import LambdaContext, invoke, sample_event, wait_until

TENANT = Tenant("demo", frozenset({"example.com"}))


class MeetingRepository(SessionRepository):
    """Holds every write until `parties` writers have read: forces the race the test is about."""

    def __init__(self, table_name: str, barrier: threading.Barrier) -> None:
        super().__init__(table_name)
        self.barrier = barrier
        self.first_write = threading.local()

    def apply(self, change: SessionChange) -> int:
        if not getattr(self.first_write, "done", False):
            self.first_write.done = True
            self.barrier.wait(timeout=10)
        return super().apply(change)


def context_at(aws: Any, moment: datetime, barrier: threading.Barrier | None = None) -> Context:
    repository = MeetingRepository(aws.table_name, barrier) if barrier else SessionRepository(aws.table_name)
    return Context(repository=repository, clock=lambda: moment)


def sweep(aws: Any, moment: datetime, time_left: Callable[[], int] = lambda: 60_000) -> Any:
    return expiry.sweep(context_at(aws, moment), time_left)


def expires_at(aws: Any, session_id: str) -> datetime:
    return from_epoch(aws.session_item(session_id)["expiresAt"])


def run_together(*calls: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_reads_report_expired_before_the_sweep_persists_it(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    move_expiry_to_the_past(aws, session_id)
    session = get(session_id)
    assert session["status"] == "EXPIRED" and session["expiredAt"] == session["expiresAt"]
    assert aws.session_item(session_id)["status"] == "OPEN"


def test_the_sweep_persists_expired_once_with_its_event(aws: Any) -> None:
    due, fresh = create_session()["sessionId"], create_session()["sessionId"]
    move_expiry_to_the_past(aws, due)
    report = invoke("expire_sessions", sample_event("expire_sessions"), LambdaContext("expire_sessions"))
    assert report["expired"] == 1
    assert aws.session_item(due)["status"] == "EXPIRED" and "openShard" not in aws.session_item(due)
    assert aws.session_item(fresh)["status"] == "OPEN"
    assert event_types(due) == ["session.created", "session.expired"]
    again = invoke("expire_sessions", sample_event("expire_sessions"), LambdaContext("expire_sessions"))
    assert again["expired"] == 0 and event_types(due) == ["session.created", "session.expired"]


def test_a_payment_in_flight_is_never_cut_off_by_expiry(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    transaction(session_id)
    report = sweep(aws, expires_at(aws, session_id) + timedelta(seconds=1))
    assert report.expired == 0 and aws.session_item(session_id)["status"] == "OPEN"


def test_a_sweep_that_runs_out_of_time_stops_cleanly_and_the_next_continues(aws: Any) -> None:
    ids = [create_session()["sessionId"] for _ in range(5)]
    later = max(expires_at(aws, session_id) for session_id in ids) + timedelta(seconds=1)
    budget = iter([60_000, 60_000, 0])  # time left before each session: the third finds none
    first = sweep(aws, later, lambda: next(budget, 0))
    assert first.stopped_early and first.expired == 2
    second = sweep(aws, later)
    assert not second.stopped_early and second.expired == 3
    assert {aws.session_item(session_id)["status"] for session_id in ids} == {"EXPIRED"}


def test_sweep_against_a_cancel_ends_in_one_state_with_one_event(aws: Any) -> None:
    # Given a canceller whose clock is just before expiresAt and a sweeper just after it
    session_id = create_session()["sessionId"]
    deadline = expires_at(aws, session_id)
    barrier = threading.Barrier(2)
    canceller = context_at(aws, deadline - timedelta(seconds=1), barrier)
    sweeper = context_at(aws, deadline + timedelta(seconds=1), barrier)
    from checkout_core.models import CancelRequest

    # When both read the OPEN session and then write at once
    outcomes = run_together(
        lambda: cancellation.cancel_session(canceller, TENANT, session_id, CancelRequest()),
        lambda: expiry.expire_session(sweeper, session_id),
    )
    # Then exactly one of them changed the session
    final = aws.session_item(session_id)["status"]
    assert final in {"CANCELLED", "EXPIRED"}
    if final == "CANCELLED":
        assert outcomes[1] is False
    else:
        assert isinstance(outcomes[0], SessionExpired)
    assert event_types(session_id) in (
        ["session.created", "session.cancelled"],
        ["session.created", "session.expired"],
    )


def test_sweep_against_a_payment_attempt_ends_in_one_state(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    deadline = expires_at(aws, session_id)
    barrier = threading.Barrier(2)
    payer = context_at(aws, deadline - timedelta(seconds=1), barrier)
    sweeper = context_at(aws, deadline + timedelta(seconds=1), barrier)
    outcomes = run_together(
        lambda: payments.create_transaction(payer, TENANT, session_id, "sandbox_card"),
        lambda: expiry.expire_session(sweeper, session_id),
    )
    item = aws.session_item(session_id)
    if item["status"] == "OPEN":
        assert item["inFlight"] == 1 and outcomes[1] is False
        assert event_types(session_id) == ["session.created", "transaction.created"]
    else:
        assert item["status"] == "EXPIRED" and item["txCount"] == 0
        assert isinstance(outcomes[0], SessionExpired)
        assert event_types(session_id) == ["session.created", "session.expired"]


def test_two_overlapping_sweeps_expire_once(aws: Any) -> None:
    session_id = create_session()["sessionId"]
    later = expires_at(aws, session_id) + timedelta(seconds=1)
    barrier = threading.Barrier(2)
    first, second = context_at(aws, later, barrier), context_at(aws, later, barrier)
    outcomes = run_together(
        lambda: expiry.expire_session(first, session_id), lambda: expiry.expire_session(second, session_id)
    )
    assert sorted(outcomes) == [False, True]
    assert event_types(session_id) == ["session.created", "session.expired"]


class TestSafetyNet:
    def test_a_cancel_that_died_after_the_lock_is_completed_by_the_sweep(
        self, aws: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a cancel whose invocation dies right after locking, before any provider call
        session_id = create_session()["sessionId"]
        card = transaction(session_id, "sandbox_card")
        monkeypatch.setenv("FAULTS", "cancel.after_lock=crash")
        with pytest.raises(InjectedCrash):
            cancel(session_id)
        monkeypatch.delenv("FAULTS")
        stuck = aws.session_item(session_id)
        assert (
            stuck["status"] == "PENDING_CANCELLATION"
            and stuck["transactions"][card]["status"] == "PROCESSING"
        )
        assert aws.executions() == []
        repository = SessionRepository(aws.table_name)
        assert repository.pending_cancellations() == 1  # the lock counted it
        # When the scheduled sweep runs past the grace period
        report = sweep(aws, utc_now() + timedelta(minutes=5))
        # Then the provider cancel is retried and the session is finalised
        assert report.recovered == 1
        session = get(session_id)
        assert session["status"] == "CANCELLED"
        assert session["cancellation"]["cancelledTransactionIds"] == [card]
        assert event_types(session_id).count("session.cancelled") == 1
        assert repository.pending_cancellations() == 0  # and the finalisation counted it out

    def test_a_pending_cancellation_without_a_finaliser_gets_one(
        self, aws: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        session_id = create_session()["sessionId"]
        bank = transaction(session_id, "sandbox_bank_transfer")
        monkeypatch.setenv("FAULTS", "cancel.after_lock=crash")
        with pytest.raises(InjectedCrash):
            cancel(session_id)
        monkeypatch.delenv("FAULTS")
        sweep(aws, utc_now() + timedelta(minutes=5))
        assert [execution["name"] for execution in aws.executions()] == [f"cancel-{session_id}"]
        # and the next pass does not start another
        sweep(aws, utc_now() + timedelta(hours=2))
        assert len(aws.executions()) == 1

        wait_until(lambda: _token_stored(aws, bank), what="the finaliser to wait on the transfer")
        provider_event("sandbox_bank_transfer", bank, "FAILED")
        wait_until(lambda: get(session_id)["status"] == "CANCELLED", what="CANCELLED")

    def test_a_session_within_its_grace_period_is_left_alone(self, aws: Any) -> None:
        session_id = create_session()["sessionId"]
        transaction(session_id, "sandbox_bank_transfer")
        cancel(session_id)
        version = aws.session_item(session_id)["version"]
        assert sweep(aws, utc_now()).recovered == 0
        assert aws.session_item(session_id)["version"] == version


class BrokenFor(SessionRepository):
    """A repository that fails every read of one session, as a corrupt item or a poison record would."""

    def __init__(self, table_name: str, broken: str) -> None:
        super().__init__(table_name)
        self.broken = broken

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        if session_id == self.broken:
            raise RuntimeError("unreadable session")
        return super().get_session(session_id)


def test_one_failing_session_does_not_stop_the_sweep(aws: Any) -> None:
    # Given 20 due sessions, one of which cannot be handled
    ids = [create_session()["sessionId"] for _ in range(20)]
    later = max(expires_at(aws, session_id) for session_id in ids) + timedelta(seconds=1)
    ctx = Context(repository=BrokenFor(aws.table_name, ids[3]), clock=lambda: later)
    # When the sweep runs
    report = expiry.sweep(ctx, lambda: 60_000)
    # Then the 19 others expire and the failure is counted, not fatal
    assert report.expired == 19 and report.failed == 1
    assert [aws.session_item(session_id)["status"] for session_id in ids].count("EXPIRED") == 19


def _due_in_expiry_index(aws: Any, session_id: str) -> bool:
    item = aws.session_item(session_id)
    return "openShard" in item


def test_a_payment_in_flight_past_expiry_leaves_the_due_index_until_it_ends(aws: Any) -> None:
    # Given a session past expiresAt with a payment in flight
    session_id = create_session()["sessionId"]
    tx = transaction(session_id)
    later = expires_at(aws, session_id) + timedelta(seconds=1)
    # When the sweep finds it
    first = sweep(aws, later)
    # Then it is left alone and out of the expiry index, so later sweeps do not read it again
    assert first.expired == 0 and aws.session_item(session_id)["status"] == "OPEN"
    assert not _due_in_expiry_index(aws, session_id)
    assert sweep(aws, later).examined == 0
    # And when the payment ends unsettled, the session expires on that event
    move_expiry_to_the_past(aws, session_id)
    assert provider_event("sandbox_card", tx, "FAILED").json()["applied"] is True
    assert aws.session_item(session_id)["status"] == "EXPIRED"


def test_the_safety_net_gets_its_share_of_a_busy_sweep(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a cancel that died after its lock, and many due expiries
    stuck = create_session()["sessionId"]
    transaction(stuck, "sandbox_card")
    monkeypatch.setenv("FAULTS", "cancel.after_lock=crash")
    with pytest.raises(InjectedCrash):
        cancel(stuck)
    monkeypatch.delenv("FAULTS")
    ids = [create_session()["sessionId"] for _ in range(24)]
    later = max(expires_at(aws, session_id) for session_id in ids) + timedelta(minutes=5)
    # When the sweep's time shrinks by a second before each session (20 s left at first, 5 s margin)
    clock = iter(range(20_000, -100_000, -1_000))
    report = sweep(aws, later, lambda: next(clock))
    # Then expiries stop early, but the pending cancellation is still recovered
    assert report.stopped_early and 0 < report.expired < 24
    assert report.recovered == 1 and aws.session_item(stuck)["status"] == "CANCELLED"
