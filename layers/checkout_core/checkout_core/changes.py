"""What the capabilities share to change a session: the retry loop of an optimistic write, the timeline
event record, the guard of a write (its status move checked against the transition table, its expiry
rule), the transaction move, and the read of a session its tenant owns."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from checkout_core import transitions
from checkout_core.clock import from_epoch, is_uuid7, to_iso, uuid7
from checkout_core.errors import InvalidRequest, SessionExpired, SessionNotFound, StateConflict
from checkout_core.models import Tenant
from checkout_core.repository import (
    PROVIDER_EVENT_RETENTION_SECONDS,
    SessionChange,
    SessionRepository,
    TransactionChange,
    shard_of,
)
from checkout_core.transitions import SessionStatus, TransactionStatus

MAX_ATTEMPTS = 10
RETRY_BASE_SECONDS = 0.01
RETRY_CAP_SECONDS = 0.2


def attempts() -> Iterator[int]:
    """Attempt numbers of an optimistic write; a retry first waits a random, growing moment
    (full jitter), so writers that lost to each other do not collide again in step."""
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt)))  # noqa: S311
        yield attempt


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def expires_at_iso(item: dict[str, Any]) -> str:
    return to_iso(from_epoch(item["expiresAt"]))


def new_event(event_type: str, actor: str, now: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """A timeline event; the repository gives it its session and sequence when it writes the change."""
    return {"eventId": uuid7(), "type": event_type, "occurredAt": to_iso(now), "actor": actor, "data": data}


def reason_data(cancellation: dict[str, Any]) -> dict[str, Any]:
    return {
        "reason": cancellation.get("reason"),
        "reasonType": cancellation.get("reasonType"),
        "referenceId": cancellation.get("referenceId"),
    }


def owned_session(repository: SessionRepository, tenant: Tenant, session_id: str) -> dict[str, Any]:
    """The session item, if it exists and belongs to `tenant`; another tenant's is not found."""
    if not is_uuid7(session_id):
        raise InvalidRequest("sessionId must be a UUID version 7 in lowercase canonical form.", "sessionId")
    item = repository.get_session(session_id)
    if item is None or item.get("tenantId") != tenant.tenant_id:
        raise SessionNotFound(session_id)
    return item


def require_open(item: dict[str, Any], now: datetime, not_open: Callable[[str], StateConflict]) -> None:
    """A write that needs an OPEN session before its expiresAt: `not_open` names the refusal otherwise."""
    status = item["status"]
    if status == SessionStatus.EXPIRED:
        raise SessionExpired()
    if status != SessionStatus.OPEN:
        raise not_open(status)
    if transitions.is_past_expiry(item["expiresAt"], epoch(now)):
        effective = transitions.effective_status(status, item["expiresAt"], item["inFlight"], epoch(now))
        raise SessionExpired(effective.value)


@dataclass
class Guard:
    """The condition of a session write beyond its version, in the repository's `{attr}` / `:value` form."""

    parts: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def move(cls, current: SessionStatus, target: SessionStatus) -> Guard:
        """The session is still `current`, and the transition table allows `current -> target`."""
        if not transitions.can_move_session(current, target):
            raise ValueError(f"the transition table forbids a session move {current} -> {target}")
        return cls.status_is(current)

    @classmethod
    def status_is(cls, status: SessionStatus) -> Guard:
        """For a change that keeps the session's status (a new transaction, a recheck time)."""
        return cls(["{status} = :status"], {":status": status.value})

    def before_expiry(self, now: datetime) -> Guard:
        return self._and("{expiresAt} > :now", {":now": epoch(now)})

    def past_expiry(self, now: datetime) -> Guard:
        return self._and("{expiresAt} <= :now", {":now": epoch(now)})

    def nothing_in_flight(self) -> Guard:
        return self._and("{inFlight} = :zero", {":zero": 0})

    def fewer_transactions_than(self, limit: int) -> Guard:
        return self._and("{txCount} < :max", {":max": limit})

    def _and(self, part: str, values: dict[str, Any]) -> Guard:
        return Guard([*self.parts, part], {**self.values, **values})

    @property
    def text(self) -> str:
        return " AND ".join(self.parts)


def session_change(
    item: dict[str, Any], operation: str, guard: Guard | None = None, **parts: Any
) -> SessionChange:
    """A change of the session `item` as read: conditioned on its version (and `guard`), its events
    numbered after the ones it has."""
    return SessionChange(
        operation=operation,
        session_id=item["sessionId"],
        expected_version=item["version"],
        seen_seq=item["seq"],
        condition=guard.text if guard else None,
        condition_values=guard.values if guard else {},
        tenant_id=item.get("tenantId"),
        **parts,
    )


def leave_open(
    item: dict[str, Any],
    operation: str,
    target: SessionStatus,
    guard: Guard,
    now: datetime,
    event: dict[str, Any],
    **fields: Any,
) -> SessionChange:
    """OPEN -> `target` (the move `guard` states): the new status, `fields`, the event, and out of the
    expiry index, which holds only sessions that may still expire."""
    return session_change(
        item,
        operation,
        guard=guard,
        set={"status": target.value, "updatedAt": to_iso(now), **fields},
        remove=["openShard"],
        events=[event],
    )


RECONCILE_KEYS = ("reconcileShard", "reconcileAt")  # a transaction's entry in the byReconcile index


def reconcile_keys(transaction_id: str, due_at: int) -> dict[str, Any]:
    """The attributes that put a transaction item in `byReconcile`, due at `due_at` (epoch seconds)."""
    return {"reconcileShard": f"RECONCILE#{shard_of(transaction_id)}", "reconcileAt": due_at}


def transaction_move(
    transaction_id: str,
    previous: str,
    target: TransactionStatus,
    now: datetime,
    expected_token: str | None = None,
    check_token: bool = False,
    also_set: dict[str, Any] | None = None,
) -> TransactionChange:
    """The transaction item's part of a move allowed by the transition table; a terminal move drops
    the finaliser's task token, an in-flight one keeps it."""
    if not transitions.can_move_transaction(previous, target):
        raise ValueError(f"the transition table forbids a transaction move {previous} -> {target}")
    return TransactionChange(
        transaction_id=transaction_id,
        expected_statuses=[previous],
        set={"status": target.value, "updatedAt": to_iso(now), **(also_set or {})},
        remove=[
            name
            for name in ([] if transitions.is_in_flight(target) else ["taskToken", *RECONCILE_KEYS])
            if name not in (also_set or {})
        ],
        check_token=check_token,
        expected_token=expected_token,
    )


def transaction_moved_event(
    actor: str, now: datetime, transaction: dict[str, Any], previous: str, target: str
) -> dict[str, Any]:
    return new_event(
        "transaction.updated",
        actor,
        now,
        {
            "transactionId": transaction["transactionId"],
            "provider": transaction["provider"],
            "from": previous,
            "to": target,
        },
    )


def seen_provider_event(
    provider_name: str, event_id: str, transaction_id: str, now: datetime
) -> dict[str, Any]:
    """A provider event's id, written with the change it caused: a resent event then changes nothing."""
    return {
        "pk": f"PROVIDER_EVENT#{provider_name}#{event_id}",
        "sk": "SEEN",
        "entity": "PROVIDER_EVENT",
        "transactionId": transaction_id,
        "ttl": epoch(now) + PROVIDER_EVENT_RETENTION_SECONDS,
    }


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
