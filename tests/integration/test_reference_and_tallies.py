"""GET /v1/sessions?referenceId=, and the console's counters and watch lists moved in the same write as
the change they record."""

from __future__ import annotations

from typing import Any

import pytest

from checkout_core import tallies
from checkout_core.clock import utc_now
from checkout_core.repository import SessionRepository
from tests.support import Answer, api_event, call

BODY = {
    "amount": 5000,
    "currency": "USD",
    "referenceId": "order-123",
    "returnUrl": "https://example.com/return",
}


def create(reference: str, tenant: str = "demo") -> str:
    answer = call(
        "create_session",
        api_event("create_session", "/v1/sessions", body={**BODY, "referenceId": reference}, tenant=tenant),
    )
    assert answer.status == 201, answer.body
    session_id: str = answer.json()["sessionId"]
    return session_id


def cancel(session_id: str) -> Answer:
    return call(
        "cancel_session",
        api_event(
            "cancel_session", f"/v1/sessions/{session_id}/cancel", path_parameters={"sessionId": session_id}
        ),
    )


def listed(query: dict[str, str], tenant: str = "demo") -> Answer:
    return call("list_sessions", api_event("list_sessions", "/v1/sessions", query=query, tenant=tenant))


def ids(answer: Answer) -> list[str]:
    return [session["sessionId"] for session in answer.json()["data"]]


def test_reference_finds_exactly_the_sessions_with_that_reference_newest_first(aws: Any) -> None:
    # Given sessions with several references, one of them shared, and another tenant's with the same one
    first = create("order-7")
    create("order-70")
    create("order-")
    second = create("order-7")
    create("order-7", tenant="other")
    # When the tenant lists by reference
    answer = listed({"referenceId": "order-7"})
    # Then exactly its two sessions with that reference, newest first (no prefix match, no other tenant)
    assert answer.status == 200
    assert ids(answer) == [second, first]
    assert listed({"referenceId": "order-8"}).json() == {"data": [], "nextCursor": None}


def test_reference_pages_with_a_cursor_and_combines_with_status(aws: Any) -> None:
    made = [create("basket") for _ in range(5)]
    cancel(made[1])
    seen: list[str] = []
    cursor = None
    while True:
        page = listed(
            {"referenceId": "basket", "limit": "2", **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [s["sessionId"] for s in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    assert ids(listed({"referenceId": "basket", "status": "CANCELLED"})) == [made[1]]
    assert ids(listed({"referenceId": "basket", "status": "OPEN"})) == [
        m for m in reversed(made) if m != made[1]
    ]


@pytest.mark.parametrize(
    ("query", "param"),
    [({"referenceId": ""}, "referenceId"), ({"referenceId": "x" * 65}, "referenceId")],
)
def test_a_bad_reference_is_400(aws: Any, query: dict[str, str], param: str) -> None:
    answer = listed(query)
    assert answer.status == 400 and answer.error["param"] == param


def test_a_reference_cursor_serves_only_its_own_tenant_and_reference(aws: Any) -> None:
    for _ in range(3):
        create("shared")
    cursor = listed({"referenceId": "shared", "limit": "1"}).json()["nextCursor"]
    assert cursor
    assert listed({"referenceId": "shared", "cursor": cursor}, tenant="other").status == 400
    assert listed({"referenceId": "other", "cursor": cursor}).status == 400
    # A cursor of the plain listing is not one of a reference listing either
    plain = listed({"limit": "1"}).json()["nextCursor"]
    assert listed({"referenceId": "shared", "cursor": plain}).status == 400


def _counts(aws: Any, tenant: str = "demo") -> dict[str, int]:
    first, last = tallies.hours_back(utc_now(), 2)
    totals = dict.fromkeys(tallies.OUTCOMES, 0)
    for item in SessionRepository(aws.table_name).counters(tenant, first, last):
        for outcome in tallies.OUTCOMES:
            totals[outcome] += int(item.get(outcome, 0))
    return totals


def test_counters_move_with_creates_and_cancels_per_tenant(aws: Any) -> None:
    made = [create(f"c{i}") for i in range(3)]
    create("elsewhere", tenant="other")
    cancel(made[0])
    cancel(made[0])  # refused: counts nothing
    assert _counts(aws) == {"created": 3, "completed": 0, "cancelled": 1, "expired": 0}
    assert _counts(aws, "other") == {"created": 1, "completed": 0, "cancelled": 0, "expired": 0}


def test_a_pending_cancellation_is_on_the_watch_list_until_it_finishes(aws: Any) -> None:
    session_id = create("bank")
    started = call(
        "create_transaction",
        api_event(
            "create_transaction",
            f"/v1/sessions/{session_id}/transactions",
            body={"provider": "sandbox_bank_transfer"},
            path_parameters={"sessionId": session_id},
        ),
    )
    assert started.status == 201, started.body
    assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    repository = SessionRepository(aws.table_name)
    assert repository.watch_list("byTenantPending", "pendingTenant", "demo", 10) == ([session_id], False)
    assert repository.watch_list("byTenantPending", "pendingTenant", "other", 10) == ([], False)
    item = aws.session_item(session_id)
    assert item["pendingTenant"] == "demo" and "attentionTenant" not in item


def test_watch_changes_follow_the_events() -> None:
    at = "2026-12-03T08:00:00.000Z"
    pending = tallies.watch_changes("t", "s", [{"type": "session.cancellation_pending", "occurredAt": at}])
    assert pending.set == {"pendingTenant": "t", "pendingSince": 1796284800} and pending.remove == []
    done = tallies.watch_changes("t", "s", [{"type": "session.cancelled", "occurredAt": at}])
    assert done.set == {} and set(done.remove) == {*tallies.PENDING_KEYS, *tallies.ATTENTION_KEYS}
    refunded = tallies.watch_changes("t", "s", [{"type": "transaction.refunded", "occurredAt": at}])
    assert refunded.set == {} and set(refunded.remove) == set(tallies.ATTENTION_KEYS)
    assert tallies.watch_changes("t", "s", [{"type": "transaction.created", "occurredAt": at}]).set == {}


def test_a_create_that_meets_a_busy_counter_is_written_again_once(aws: Any, monkeypatch: Any) -> None:
    from botocore.exceptions import ClientError

    original = SessionRepository._call
    refused: list[str] = []

    def conflict_once(self: Any, operation: str, **kwargs: Any) -> Any:
        if operation == "transact_write_items" and not refused:
            refused.append(kwargs["ClientRequestToken"])
            reasons = [{"Code": "None"}] * (len(kwargs["TransactItems"]) - 1) + [
                {"Code": "TransactionConflict"}
            ]
            error = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}}
            raise ClientError({**error, "CancellationReasons": reasons}, "TransactWriteItems")
        return original(self, operation, **kwargs)

    # Given another write holding the session's counter item at the moment of the create
    monkeypatch.setattr(SessionRepository, "_call", conflict_once)
    # When the session is created
    session_id = create("busy")
    # Then it was written again, under another token, and counted once
    assert refused and aws.session_item(session_id)["status"] == "OPEN"
    assert _counts(aws)["created"] == 1


def test_the_workflows_finalisation_counts_the_cancel_and_leaves_the_watch_list(aws: Any) -> None:
    from tests.integration.flows import events, provider_event, transaction
    from tests.support import wait_until

    # Given a cancellation pending on a bank transfer, its finaliser waiting on the provider
    session_id = create("finalised-by-the-workflow")
    bank = transaction(session_id, "sandbox_bank_transfer")
    assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    repository = SessionRepository(aws.table_name)
    assert repository.watch_list("byTenantPending", "pendingTenant", "demo", 10)[0] == [session_id]
    wait_until(lambda: "taskToken" in (repository.get_transaction(bank) or {}), what="the finaliser to wait")
    # When the transfer fails at the provider and the workflow finalises the session
    assert provider_event("sandbox_bank_transfer", bank, "FAILED").json()["applied"] is True
    wait_until(lambda: aws.session_item(session_id)["status"] == "CANCELLED", what="CANCELLED")
    wait_until(lambda: aws.executions()[0]["status"] == "SUCCEEDED", what="the execution to succeed")
    # Then its own write counted the cancel, in the session's counter item, and left the watch list
    assert events(session_id)[-1]["actor"] == "workflow"
    assert _counts(aws) == {"created": 1, "completed": 0, "cancelled": 1, "expired": 0}
    assert repository.watch_list("byTenantPending", "pendingTenant", "demo", 10) == ([], False)
    assert "pendingTenant" not in aws.session_item(session_id)
