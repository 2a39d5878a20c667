"""Payment attempts: a new transaction on an OPEN session, written with the version bump that makes a
racing cancel either see it or fail its own condition.

With an Idempotency-Key the attempt is also written with a marker of that key, on the condition that none
exists: a retry whose first try committed (a timeout, an idempotency record gone) gets the same transaction
back instead of a second one."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from checkout_core import transitions
from checkout_core.changes import Guard, attempts, new_event, owned_session, require_open, session_change
from checkout_core.clock import to_iso, uuid7
from checkout_core.context import Context
from checkout_core.errors import (
    ConcurrentUpdate,
    InvalidRequest,
    SessionNotOpen,
    TransactionLimitReached,
    WriteConflict,
)
from checkout_core.models import Tenant, Transaction
from checkout_core.observability import count_transition, logger
from checkout_core.repository import transaction_key
from checkout_core.transitions import SessionStatus, TransactionStatus

ATTEMPT_KEY_RETENTION_SECONDS = 24 * 3600


def attempt_key(tenant: Tenant, session_id: str, idempotency_key: str) -> dict[str, str]:
    """The key of the marker that makes an attempt idempotent: one per (tenant, session, Idempotency-Key)."""
    digest = hashlib.sha256(f"{tenant.tenant_id}\x00{session_id}\x00{idempotency_key}".encode()).hexdigest()
    return {"pk": f"ATTEMPTKEY#{digest}", "sk": "ATTEMPTKEY"}


def create_transaction(
    ctx: Context,
    tenant: Tenant,
    session_id: str,
    provider_name: str,
    idempotency_key: str | None = None,
    actor: str = "api",
) -> Transaction:
    if ctx.providers.get(provider_name) is None:
        raise InvalidRequest(f"Unknown provider; use one of {', '.join(ctx.providers.names())}.", "provider")
    limit = transitions.MAX_TRANSACTIONS_PER_SESSION
    marker = attempt_key(tenant, session_id, idempotency_key) if idempotency_key else None
    for _ in attempts():
        if marker is not None:
            earlier = _earlier_attempt(ctx, marker)
            if earlier is not None:
                return earlier
        item = owned_session(ctx.repository, tenant, session_id)
        now = ctx.clock()
        require_open(item, now, SessionNotOpen)
        if item["txCount"] >= limit:
            raise TransactionLimitReached(limit)
        transaction_id = uuid7()
        summary = {
            "transactionId": transaction_id,
            "provider": provider_name,
            "status": TransactionStatus.PROCESSING.value,
            "amount": item["amount"],
            "createdAt": to_iso(now),
            "updatedAt": to_iso(now),
        }
        guard = Guard.status_is(SessionStatus.OPEN).before_expiry(now).fewer_transactions_than(limit)
        transaction_item = {
            **transaction_key(transaction_id),
            "entity": "TRANSACTION",
            "sessionId": session_id,
        }
        change = session_change(
            item,
            "create_transaction",
            set={f"transactions.{transaction_id}": summary, "updatedAt": to_iso(now)},
            add={"inFlight": 1, "txCount": 1},
            guard=guard,
            events=[new_event("transaction.created", actor, now, {**summary})],
            new_items=[{**transaction_item, **summary}, *_marker_items(marker, transaction_id, now)],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue  # a lost race, or the same attempt committed meanwhile: the loop reads again
        count_transition("TransactionCreated")
        logger.info(
            "transaction created",
            extra={"sessionId": session_id, "transactionId": transaction_id, "tenantId": tenant.tenant_id},
        )
        return Transaction.model_validate(summary)
    raise ConcurrentUpdate()


def _marker_items(marker: dict[str, str] | None, transaction_id: str, now: datetime) -> list[dict[str, Any]]:
    if marker is None:
        return []
    expires = int(now.timestamp()) + ATTEMPT_KEY_RETENTION_SECONDS
    return [{**marker, "entity": "ATTEMPTKEY", "transactionId": transaction_id, "ttl": expires}]


def _earlier_attempt(ctx: Context, marker: dict[str, str]) -> Transaction | None:
    pointer = ctx.repository.get_item(marker)
    stored = ctx.repository.get_transaction(pointer["transactionId"]) if pointer else None
    if stored is None:
        return None
    return Transaction.model_validate({field: stored[field] for field in Transaction.model_fields})
