"""Payment attempts: a new transaction on an OPEN session, written with the version bump that makes a
racing cancel either see it or fail its own condition.

With an Idempotency-Key the attempt is also written with a marker of that key, on the condition that none
exists: a retry whose first try committed (a timeout, an idempotency record gone) gets the same transaction
back instead of a second one."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from checkout_core import faults, transitions
from checkout_core.api_keys import hash_secret
from checkout_core.changes import (
    Guard,
    attempts,
    new_event,
    owned_session,
    reconcile_keys,
    require_open,
    session_change,
)
from checkout_core.clock import to_iso, uuid7
from checkout_core.context import Context
from checkout_core.errors import (
    ConcurrentUpdate,
    InvalidRequest,
    PaymentDeclined,
    PaymentInFlight,
    ServiceUnavailable,
    SessionNotOpen,
    TransactionLimitReached,
    WriteConflict,
)
from checkout_core.models import Tenant, Transaction
from checkout_core.observability import count_transition, logger
from checkout_core.providers import Attempt, ProviderReport, Refusal
from checkout_core.providers.base import reconciliation_can_act
from checkout_core.repository import transaction_key
from checkout_core.transitions import SessionStatus, TransactionStatus

ATTEMPT_KEY_RETENTION_SECONDS = 24 * 3600
RETURN_LINK_GRACE_SECONDS = 24 * 3600


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
    payment_method: str | Mapping[str, Any] | None = None,
    capture_manually: bool = False,
    alone: bool = False,
    public_base_url: str | None = None,
) -> Transaction:
    """Records the attempt first (PROCESSING; no provider reference yet where the provider names it),
    then asks the provider, then records its answer. A crash between the two leaves an attempt in flight
    with no reference, which reconciliation finishes. `alone`: made only while no other attempt is in
    flight (the write's condition), else PaymentInFlight (the hosted page's pay).

    A customer the provider sends away (3-D Secure, their bank) comes back to the hosted page's return
    route, `<public_base_url>/pay/<secret>/return`: a secret of the attempt's own, stored only as its hash,
    that serves that route for that attempt and nothing else (never the page's token, which is not sent
    to a provider)."""
    provider = ctx.providers.get(provider_name)
    if provider is None:
        raise InvalidRequest(f"Unknown provider; use one of {', '.join(ctx.providers.names())}.", "provider")
    if provider.requires_payment_method and payment_method is None:
        raise InvalidRequest(f"paymentMethod is required with {provider_name}.", "paymentMethod")
    if (
        payment_method is not None
        and isinstance(payment_method, Mapping) != provider.payment_method_is_object
    ):
        shape = "an object" if provider.payment_method_is_object else "a string"
        raise InvalidRequest(f"paymentMethod must be {shape} with {provider_name}.", "paymentMethod")
    limit = transitions.MAX_TRANSACTIONS_PER_SESSION
    marker = attempt_key(tenant, session_id, idempotency_key) if idempotency_key else None
    checked = False
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
        if not checked:
            # What the provider would refuse of the merchant's input is refused before anything is written.
            provider.check_attempt(int(item["amount"]), item["currency"], payment_method, capture_manually)
            checked = True
        if alone and item["inFlight"]:
            raise PaymentInFlight(
                [
                    tx_id
                    for tx_id, tx in (item.get("transactions") or {}).items()
                    if transitions.is_in_flight(tx["status"])
                ]
            )
        transaction_id = uuid7()
        summary = {
            "transactionId": transaction_id,
            "provider": provider_name,
            "status": TransactionStatus.PROCESSING.value,
            "amount": item["amount"],
            "createdAt": to_iso(now),
            "updatedAt": to_iso(now),
        }
        known_reference = provider.reference_before_start(transaction_id)
        if known_reference is not None:
            summary["providerReference"] = known_reference
        guard = Guard.status_is(SessionStatus.OPEN).before_expiry(now).fewer_transactions_than(limit)
        if alone:
            guard = guard.nothing_in_flight()
        transaction_item = {
            **transaction_key(transaction_id),
            "entity": "TRANSACTION",
            "sessionId": session_id,
            # How the provider was asked to capture: its report of an authorisation means a settlement
            # when the capture is automatic (provider_events.apply_provider_batch).
            "captureMethod": "MANUAL" if capture_manually else "AUTOMATIC",
        }
        return_url, return_link = _return_link(
            public_base_url, provider.requires_payment_method, session_id, transaction_id, item
        )
        if reconciliation_can_act(provider):
            due = int(now.timestamp()) + ctx.settings.provider_reconcile_seconds
            transaction_item.update(reconcile_keys(transaction_id, due))
        change = session_change(
            item,
            "create_transaction",
            set={f"transactions.{transaction_id}": summary, "updatedAt": to_iso(now)},
            add={"inFlight": 1, "txCount": 1},
            guard=guard,
            events=[new_event("transaction.created", actor, now, {**summary})],
            new_items=[
                {**transaction_item, **summary},
                *_marker_items(marker, transaction_id, now),
                *return_link,
            ],
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
        if known_reference is not None:
            return Transaction.model_validate(summary)
        attempt = Attempt(
            transaction_id,
            session_id,
            int(item["amount"]),
            item["currency"],
            payment_method,
            capture_manually,
            return_url=return_url,
            record_reference=partial(_record_reference, ctx, session_id, transaction_id),
        )
        return _start_at_provider(ctx, provider_name, attempt, Transaction.model_validate(summary))
    raise ConcurrentUpdate()


def _start_at_provider(
    ctx: Context, provider_name: str, attempt: Attempt, recorded: Transaction
) -> Transaction:
    """Asks the provider to make the payment recorded as `recorded`, then records its answer as a
    provider event would be. A call that fails leaves the attempt recorded, in flight, for reconciliation."""
    from checkout_core.customer_actions import record_next_action
    from checkout_core.provider_events import apply_provider_event, record_provider_reference

    provider = ctx.providers.get(provider_name)
    assert provider is not None
    faults.inject("transaction.before_provider_start")
    try:
        state = provider.start(attempt)
    except Exception:
        logger.exception(
            "provider start call failed; reconciliation will find out what the provider has",
            extra={"sessionId": attempt.session_id, "transactionId": attempt.transaction_id},
        )
        return recorded
    faults.inject("transaction.after_provider_start")
    if state.status != TransactionStatus.PROCESSING:
        report = ProviderReport(
            f"start:{attempt.transaction_id}",
            attempt.transaction_id,
            state.reference,
            state.status,
            failure_code=state.failure_code,
        )
        apply_provider_event(ctx, provider_name, report)
    else:
        if state.reference:
            record_provider_reference(ctx, attempt.session_id, attempt.transaction_id, state.reference)
        if state.next_action_url:
            record_next_action(ctx, attempt.session_id, attempt.transaction_id, state.next_action_url)
    transaction = _transaction_view(ctx.repository.get_transaction(attempt.transaction_id) or {})
    if transaction.status == TransactionStatus.FAILED and state.status == TransactionStatus.FAILED:
        if state.refusal is Refusal.INPUT:
            raise InvalidRequest(
                f"{provider_name} refused the attempt: {state.refusal_message or state.failure_code}",
                state.refused_field,
            )
        if state.refusal is Refusal.CONFIGURATION:
            logger.error(
                "the provider refused this service's credentials",
                extra={"provider": provider_name, "transactionId": attempt.transaction_id},
            )
            raise ServiceUnavailable()
    if transaction.status == TransactionStatus.FAILED:
        raise PaymentDeclined(transaction.transactionId, transaction.failureCode)
    return transaction


def _record_reference(ctx: Context, session_id: str, transaction_id: str, reference: str) -> bool:
    """The provider's id recorded before the payment can charge; True once the record holds it."""
    from checkout_core.provider_events import record_provider_reference

    recorded = record_provider_reference(ctx, session_id, transaction_id, reference)
    faults.inject("transaction.after_reference_recorded")
    return recorded


def _return_link(
    public_base_url: str | None,
    sends_customer_away: bool,
    session_id: str,
    transaction_id: str,
    session: dict[str, Any],
) -> tuple[str | None, list[dict[str, Any]]]:
    """The attempt's return URL, and the item of the secret it carries: kept a day past the session's
    expiry (a customer may come back late; the route then shows the closed page)."""
    if not sends_customer_away or not public_base_url:
        return None, []
    token = secrets.token_urlsafe(24)
    pointer = {
        "pk": f"RETURNTOKEN#{hash_secret(token)}",
        "sk": "RETURNTOKEN",
        "entity": "RETURNTOKEN",
        "sessionId": session_id,
        "transactionId": transaction_id,
        "ttl": int(session["expiresAt"]) + RETURN_LINK_GRACE_SECONDS,
    }
    return f"{public_base_url.rstrip('/')}/pay/{token}/return", [pointer]


def _marker_items(marker: dict[str, str] | None, transaction_id: str, now: datetime) -> list[dict[str, Any]]:
    if marker is None:
        return []
    expires = int(now.timestamp()) + ATTEMPT_KEY_RETENTION_SECONDS
    return [{**marker, "entity": "ATTEMPTKEY", "transactionId": transaction_id, "ttl": expires}]


def earlier_attempt(
    ctx: Context, tenant: Tenant, session_id: str, idempotency_key: str
) -> Transaction | None:
    """The attempt an earlier request with this Idempotency-Key made, if one did."""
    return _earlier_attempt(ctx, attempt_key(tenant, session_id, idempotency_key))


def _earlier_attempt(ctx: Context, marker: dict[str, str]) -> Transaction | None:
    pointer = ctx.repository.get_item(marker)
    stored = ctx.repository.get_transaction(pointer["transactionId"]) if pointer else None
    return None if stored is None else _transaction_view(stored)


def _transaction_view(stored: dict[str, Any]) -> Transaction:
    return Transaction.model_validate(
        {field: stored[field] for field in Transaction.model_fields if field in stored}
    )
