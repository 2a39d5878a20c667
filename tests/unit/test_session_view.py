from datetime import UTC, datetime
from typing import Any

from checkout_core.views import event_view, session_view

NOW = datetime(2026, 11, 22, 18, 0, 0, tzinfo=UTC)


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sessionId": "0193f2d4-5b6c-7d8e-9f01-23456789abcd",
        "status": "OPEN",
        "amount": 5000,
        "currency": "USD",
        "referenceId": "order-1",
        "returnUrl": "https://example.com/r",
        "createdAt": "2026-11-22T17:00:00.000Z",
        "updatedAt": "2026-11-22T17:00:00.000Z",
        "expiresAt": int(NOW.timestamp()) + 60,
        "inFlight": 0,
        "transactions": {},
    }
    return {**base, **changes}


def test_times_written_by_the_workflow_are_answered_in_the_contract_format() -> None:
    view = session_view(
        item(
            status="CANCELLED",
            updatedAt="2026-11-22T18:31:42.395515+00:00",
            cancelledAt="2026-11-22T18:31:42.395515+00:00",
            cancellation={
                "requestedAt": "2026-11-22T18:31:40.000Z",
                "finalizedAt": "2026-11-22T18:31:42.395515+00:00",
            },
        ),
        NOW,
    )
    assert view.updatedAt == view.cancelledAt == "2026-11-22T18:31:42.395Z"
    assert view.cancellation is not None and view.cancellation.finalizedAt == "2026-11-22T18:31:42.395Z"


def test_an_open_session_past_expiry_reads_expired_at_its_expiry() -> None:
    view = session_view(item(expiresAt=int(NOW.timestamp())), NOW)
    assert view.status == "EXPIRED" and view.expiredAt == "2026-11-22T18:00:00.000Z"
    assert session_view(item(expiresAt=int(NOW.timestamp()), inFlight=1), NOW).status == "OPEN"


def test_transactions_are_listed_in_creation_order() -> None:
    txs = {
        tx_id: {
            "transactionId": tx_id,
            "provider": "sandbox_card",
            "status": "PROCESSING",
            "amount": 1,
            "createdAt": created,
            "updatedAt": created,
        }
        for tx_id, created in (("b", "2026-11-22T17:00:02.000Z"), ("a", "2026-11-22T17:00:01.000Z"))
    }
    assert [tx.transactionId for tx in session_view(item(transactions=txs), NOW).transactions] == ["a", "b"]


def test_event_times_are_normalised_too() -> None:
    event = event_view(
        {
            "eventId": "e",
            "type": "session.cancelled",
            "sessionId": "s",
            "sequence": 3,
            "occurredAt": "2026-11-22T18:31:42.395515+00:00",
            "actor": "workflow",
        }
    )
    assert event.occurredAt == "2026-11-22T18:31:42.395Z" and event.data == {}
