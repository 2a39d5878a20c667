"""Payment attempts: a new transaction on an OPEN session, written with the version bump that makes a
racing cancel either see it or fail its own condition."""

from __future__ import annotations

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


def create_transaction(ctx: Context, tenant: Tenant, session_id: str, provider_name: str) -> Transaction:
    if ctx.providers.get(provider_name) is None:
        raise InvalidRequest(f"Unknown provider; use one of {', '.join(ctx.providers.names())}.", "provider")
    limit = transitions.MAX_TRANSACTIONS_PER_SESSION
    for _ in attempts():
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
        change = session_change(
            item,
            "create_transaction",
            set={f"transactions.{transaction_id}": summary, "updatedAt": to_iso(now)},
            add={"inFlight": 1, "txCount": 1},
            guard=guard,
            events=[new_event("transaction.created", "api", now, {**summary})],
            new_items=[
                {
                    **transaction_key(transaction_id),
                    "entity": "TRANSACTION",
                    "sessionId": session_id,
                    **summary,
                }
            ],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        count_transition("TransactionCreated")
        logger.info(
            "transaction created",
            extra={"sessionId": session_id, "transactionId": transaction_id, "tenantId": tenant.tenant_id},
        )
        return Transaction.model_validate(summary)
    raise ConcurrentUpdate()
