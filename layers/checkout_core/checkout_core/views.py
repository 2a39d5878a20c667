"""The resources as every read reports them: the Session (with its effective status) and the Event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from checkout_core import transitions
from checkout_core.clock import from_epoch, from_iso, to_iso
from checkout_core.models import Cancellation, Event, Session, Transaction
from checkout_core.transitions import SessionStatus

_CANCELLATION_TIMES = frozenset({"requestedAt", "finalizedAt", "finalizeBy"})


def session_view(item: dict[str, Any], now: datetime, url: str | None = None) -> Session:
    """The Session resource as every read reports it (effective status)."""
    status = transitions.effective_status(
        item["status"], item["expiresAt"], item.get("inFlight", 0), int(now.timestamp())
    )
    expired_at = item.get("expiredAt")
    if status is SessionStatus.EXPIRED and expired_at is None:
        expired_at = to_iso(from_epoch(item["expiresAt"]))
    cancellation = item.get("cancellation")
    if cancellation:
        # The finaliser writes Step Functions' own time format; every answer uses the API's.
        cancellation = {
            key: normalise_time(value) if key in _CANCELLATION_TIMES and isinstance(value, str) else value
            for key, value in cancellation.items()
        }
    return Session(
        sessionId=item["sessionId"],
        status=status,
        amount=item["amount"],
        currency=item["currency"],
        referenceId=item["referenceId"],
        customerId=item.get("customerId"),
        description=item.get("description"),
        metadata=item.get("metadata") or {},
        returnUrl=item["returnUrl"],
        cancelUrl=item.get("cancelUrl"),
        url=url,
        createdAt=item["createdAt"],
        updatedAt=normalise_time(item["updatedAt"]),
        expiresAt=to_iso(from_epoch(item["expiresAt"])),
        completedAt=_optional_time(item.get("completedAt")),
        cancelledAt=_optional_time(item.get("cancelledAt")),
        expiredAt=_optional_time(expired_at),
        cancellation=Cancellation.model_validate(cancellation) if cancellation else None,
        transactions=[Transaction.model_validate(tx) for tx in transactions_in_order(item)],
    )


def transactions_in_order(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The session's transaction summaries in creation order."""
    return sorted(
        (item.get("transactions") or {}).values(), key=lambda tx: (tx["createdAt"], tx["transactionId"])
    )


def normalise_time(text: str) -> str:
    try:
        return to_iso(from_iso(text))
    except ValueError:
        return text


def _optional_time(text: str | None) -> str | None:
    return None if text is None else normalise_time(text)


def event_view(item: dict[str, Any]) -> Event:
    return Event(
        eventId=item["eventId"],
        type=item["type"],
        sessionId=item["sessionId"],
        sequence=item["sequence"],
        occurredAt=normalise_time(item["occurredAt"]),
        actor=item["actor"],
        data=item.get("data") or {},
    )
