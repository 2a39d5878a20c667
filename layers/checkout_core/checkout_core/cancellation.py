"""Cancel: lock the session against new attempts, cancel at the providers what can be cancelled in
flight, record the outcome. Nothing in flight: one write to CANCELLED. Otherwise the lock
(PENDING_CANCELLATION) comes first, then the provider calls, then finalisation.py records them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from checkout_core import faults, finalisation, transitions
from checkout_core.changes import (
    Guard,
    attempts,
    leave_open,
    new_event,
    owned_session,
    plural,
    reason_data,
    require_open,
)
from checkout_core.clock import to_iso
from checkout_core.context import Context
from checkout_core.errors import (
    ConcurrentUpdate,
    ServiceUnavailable,
    SessionNotCancellable,
    TransactionsInFlight,
    WriteConflict,
)
from checkout_core.models import Cancellation, CancelRequest, CancelResponse, Tenant, WhenInFlight
from checkout_core.observability import count_transition, logger
from checkout_core.providers import CancelOutcome
from checkout_core.repository import pending_level_pk, shard_of
from checkout_core.transitions import SessionStatus
from checkout_core.views import transactions_in_order


def cancel_session(
    ctx: Context, tenant: Tenant, session_id: str, request: CancelRequest, actor: str = "api"
) -> CancelResponse:
    """`actor` is who asked, on the timeline: the merchant's API ("api") or the hosted page ("customer")."""
    for _ in attempts():
        item = owned_session(ctx.repository, tenant, session_id)
        now = ctx.clock()
        require_open(item, now, SessionNotCancellable)
        plan = transitions.plan_cancellation(
            (tx["transactionId"], tx["status"], ctx.can_cancel_in_flight(tx["provider"]))
            for tx in transactions_in_order(item)
        )
        if request.whenInFlight is WhenInFlight.REJECT:
            refused = [
                *plan.left_in_flight,
                *finalisation.refused_at_providers(ctx, item, plan.to_cancel_at_provider),
            ]
            if refused:
                raise TransactionsInFlight(refused)
        cancellation = _new_cancellation(ctx, request, plan.in_flight, now)
        try:
            if not plan.in_flight:
                return cancel_response(_cancel_now(ctx, item, cancellation, now, actor))
            locked = _lock(ctx, item, cancellation, now, actor)
        except WriteConflict:
            continue
        break
    else:
        raise ConcurrentUpdate()
    faults.inject("cancel.after_lock")
    outcomes = finalisation.cancel_at_providers(ctx, locked, plan.to_cancel_at_provider)
    cancelled = [tx_id for tx_id, outcome in outcomes.items() if outcome is CancelOutcome.CANCELLED]
    requested = [tx_id for tx_id, outcome in outcomes.items() if outcome is CancelOutcome.REQUESTED]
    try:
        final = finalisation.record_provider_cancellations(
            ctx, locked, cancelled, actor=actor, tokens=None, requested_ids=requested
        )
    except (ConcurrentUpdate, ServiceUnavailable):
        # The session is locked and the providers were asked: a 503 would claim nothing changed. The answer
        # says what is true (PENDING_CANCELLATION); the safety net records the providers' cancels.
        logger.warning(
            "cancel locked the session but could not record the provider outcomes; the safety net will",
            extra={"sessionId": session_id, "tenantId": tenant.tenant_id},
        )
        final = locked
    if final["status"] == SessionStatus.PENDING_CANCELLATION:
        finalisation.start_finaliser(ctx, final)
    return cancel_response(final)


def _new_cancellation(
    ctx: Context, request: CancelRequest, in_flight: tuple[str, ...], now: datetime
) -> dict[str, Any]:
    return {
        "reason": request.reason,
        "reasonType": request.reasonType.value if request.reasonType else None,
        "referenceId": request.referenceId,
        "requestedAt": to_iso(now),
        "finalizedAt": None,
        "finalizeBy": to_iso(now + timedelta(seconds=ctx.settings.cancellation_deadline_seconds)),
        "cancelledTransactionIds": [],
        "pendingTransactionIds": list(in_flight),
        "settledTransactionIds": [],
        "attentionRequired": False,
    }


def _cancel_now(
    ctx: Context, item: dict[str, Any], cancellation: dict[str, Any], now: datetime, actor: str
) -> dict[str, Any]:
    """OPEN -> CANCELLED in one write, when nothing is in flight."""
    cancellation = {**cancellation, "finalizedAt": to_iso(now), "pendingTransactionIds": []}
    target = SessionStatus.CANCELLED
    change = leave_open(
        item,
        "cancel",
        target,
        Guard.move(SessionStatus.OPEN, target).before_expiry(now).nothing_in_flight(),
        now,
        new_event("session.cancelled", actor, now, finalisation.cancelled_event_data(cancellation, False)),
        cancelledAt=to_iso(now),
        cancellation=cancellation,
        refundRequired=False,
    )
    ctx.repository.apply(change)
    count_transition("SessionCancelled")
    logger.info("session cancelled", extra={"sessionId": item["sessionId"], "tenantId": item["tenantId"]})
    return {**item, **change.set}


def _lock(
    ctx: Context, item: dict[str, Any], cancellation: dict[str, Any], now: datetime, actor: str
) -> dict[str, Any]:
    """OPEN -> PENDING_CANCELLATION: from here no payment attempt can land on the session."""
    session_id = item["sessionId"]
    target = SessionStatus.PENDING_CANCELLATION
    level = pending_level_pk(session_id)
    event_data = {
        **reason_data(cancellation),
        "inFlightTransactionIds": cancellation["pendingTransactionIds"],
    }
    change = leave_open(
        item,
        "lock",
        target,
        Guard.move(SessionStatus.OPEN, target).before_expiry(now),
        now,
        new_event("session.cancellation_pending", actor, now, event_data),
        cancellation=cancellation,
        refundRequired=False,
        pendingShard=f"PENDING#{shard_of(session_id)}",
        recheckAt=int(now.timestamp()) + ctx.settings.cancellation_grace_seconds,
        pendingLevel=level,
    )
    version = ctx.repository.apply(replace(change, level_moves=[(level, 1)]))
    count_transition("SessionLocked")
    logger.info(
        "session locked for cancellation", extra={"sessionId": session_id, "tenantId": item["tenantId"]}
    )
    locked = {**item, **change.set, "version": version, "seq": item["seq"] + 1}
    locked.pop("openShard", None)
    return locked


def cancel_response(item: dict[str, Any]) -> CancelResponse:
    cancellation = Cancellation.model_validate(item["cancellation"])
    status = SessionStatus(item["status"])
    pending = cancellation.pendingTransactionIds if status is SessionStatus.PENDING_CANCELLATION else []
    cancelled = cancellation.cancelledTransactionIds
    if status is SessionStatus.PENDING_CANCELLATION:
        transactions = item.get("transactions") or {}
        asked = [tx_id for tx_id in pending if (transactions.get(tx_id) or {}).get("cancelRequestedAt")]
        waiting = len(pending) - len(asked)
        whose = "its" if waiting == 1 else "their"
        parts = []
        if asked:
            parts.append(
                f"{plural(len(asked), 'cancel')} accepted by the provider, which reports the outcome later"
            )
        if waiting:
            transactions_left = plural(waiting, "transaction")
            parts.append(f"{transactions_left} cannot be cancelled in flight and will finish on {whose} own")
        message = f"Session locked; {'; '.join(parts)}."
    elif cancelled:
        message = f"Session cancelled; {plural(len(cancelled), 'transaction')} cancelled at the provider."
    else:
        message = "Session cancelled."
    return CancelResponse(
        sessionId=item["sessionId"],
        status=status,
        message=message,
        cancelledTransactionIds=cancelled,
        pendingTransactionIds=pending,
        cancellation=cancellation,
    )
