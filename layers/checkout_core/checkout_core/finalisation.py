"""Finishing a cancellation: ask the providers to cancel, record what they did, and finalise
PENDING_CANCELLATION -> CANCELLED once nothing is in flight; start (or restart) the CancellationFinaliser
workflow for what is left, and the safety net that does all of this again for a cancel that died midway.

The finalising write is described here once; the state machine's Finalise step writes the same event data
(`cancelled_event_data`), which tests/unit/test_finalisation.py holds it to.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from checkout_core import cancel_requests, transitions
from checkout_core.changes import (
    Guard,
    attempts,
    epoch,
    new_event,
    reason_data,
    session_change,
    transaction_move,
    transaction_moved_event,
)
from checkout_core.clock import from_iso, to_iso, uuid7
from checkout_core.context import Context
from checkout_core.errors import ConcurrentUpdate, SessionNotFound, WriteConflict
from checkout_core.observability import MetricUnit, count_transition, gauge, logger
from checkout_core.providers import CancelOutcome
from checkout_core.repository import SessionChange, TransactionChange
from checkout_core.transitions import SessionStatus, TransactionStatus
from checkout_core.views import transactions_in_order
from checkout_core.workflow import execution_name

MAX_PROVIDER_CALLS_AT_ONCE = 25  # a session holds at most 25 transactions: one call each, all at once


def cancelled_event_data(cancellation: dict[str, Any], refund_required: bool) -> dict[str, Any]:
    """The data of `session.cancelled`, whoever finalises: the API, the scheduler or the workflow."""
    return {
        **reason_data(cancellation),
        "refundRequired": refund_required,
        "settledTransactionIds": cancellation.get("settledTransactionIds", []),
    }


def cancel_at_providers(
    ctx: Context, item: dict[str, Any], transaction_ids: tuple[str, ...] | list[str]
) -> dict[str, CancelOutcome]:
    """Asks each provider to cancel, all at once; a provider that raises counts as a failed call."""
    transactions = item.get("transactions") or {}
    wanted = list(transaction_ids)
    if not wanted:
        return {}

    reason_type = (item.get("cancellation") or {}).get("reasonType")

    def cancel(transaction_id: str) -> CancelOutcome:
        summary = transactions[transaction_id]
        provider = ctx.providers.get(summary["provider"])
        if provider is None:
            return CancelOutcome.NOT_SUPPORTED
        try:
            return provider.cancel(summary.get("providerReference"), transaction_id, reason_type)
        except Exception:
            logger.exception(
                "provider cancel call raised",
                extra={"sessionId": item["sessionId"], "transactionId": transaction_id},
            )
            return CancelOutcome.FAILED

    with ThreadPoolExecutor(max_workers=min(len(wanted), MAX_PROVIDER_CALLS_AT_ONCE)) as pool:
        outcomes = dict(zip(wanted, pool.map(cancel, wanted), strict=True))
    for transaction_id, outcome in outcomes.items():
        if outcome not in (CancelOutcome.CANCELLED, CancelOutcome.REQUESTED):
            logger.warning(
                "provider did not cancel a transaction in flight",
                extra={
                    "sessionId": item["sessionId"],
                    "transactionId": transaction_id,
                    "outcome": outcome.value,
                },
            )
    return outcomes


def refused_at_providers(
    ctx: Context, item: dict[str, Any], transaction_ids: tuple[str, ...] | list[str]
) -> list[str]:
    """Of the transactions a provider could cancel in flight, those it would refuse to cancel now (a
    Stripe intent already `processing`), asked all at once; for a cancel that must not wait."""
    transactions = item.get("transactions") or {}

    def refused(transaction_id: str) -> bool:
        summary = transactions[transaction_id]
        provider = ctx.providers.get(summary["provider"])
        return provider is not None and not provider.cancellable_now(
            summary.get("providerReference"), transaction_id
        )

    wanted = list(transaction_ids)
    if not wanted:
        return []
    with ThreadPoolExecutor(max_workers=min(len(wanted), MAX_PROVIDER_CALLS_AT_ONCE)) as pool:
        return [tx_id for tx_id, no in zip(wanted, pool.map(refused, wanted), strict=True) if no]


def record_provider_cancellations(
    ctx: Context,
    item: dict[str, Any],
    cancelled_ids: list[str],
    actor: str,
    tokens: dict[str, str | None] | None,
    requested_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Records the provider-side cancellations, and the cancels a provider accepted to answer later
    (`requested_ids`: `cancelRequestedAt`, still pending); finalises when nothing is left in flight.

    `item` is the session as last known; a conflict re-reads it. `tokens` are the task tokens read
    from the transaction items when a finaliser may already be waiting on them (None: none can be).
    """
    session_id = item["sessionId"]
    for attempt in attempts():
        if attempt:
            fresh = ctx.repository.get_session(session_id)
            if fresh is None:
                raise SessionNotFound(session_id)
            item = fresh
        if item["status"] != SessionStatus.PENDING_CANCELLATION:
            return item
        now = ctx.clock()
        transactions = item.get("transactions") or {}
        still = [tx_id for tx_id in cancelled_ids if transitions.is_in_flight(transactions[tx_id]["status"])]
        remaining = [
            tx["transactionId"]
            for tx in transactions_in_order(item)
            if transitions.is_in_flight(tx["status"]) and tx["transactionId"] not in still
        ]
        requests = cancel_requests.requested_parts(item, requested_ids or [], now)
        if not still and remaining and not requests[1]:
            return item
        change = _cancellations_change(item, still, remaining, actor, tokens, now, requests)
        try:
            version = ctx.repository.apply(change)
        except WriteConflict:
            continue
        for tx_id in still:
            count_transition("TransactionCancelled")
            token = (tokens or {}).get(tx_id)
            if token:
                ctx.finaliser.release(token, {"transactionId": tx_id, "status": "CANCELLED"})
        finalised = not remaining
        if finalised:
            count_transition("SessionCancelled")
            logger.info("session cancelled", extra={"sessionId": session_id, "tenantId": item["tenantId"]})
        updated = {
            **item,
            "version": version,
            "seq": item["seq"] + len(change.events),
            "cancellation": change.set["cancellation"],
            "inFlight": item["inFlight"] - len(still),
            "transactions": {
                tx_id: _recorded_summary(
                    tx, tx_id in still, requests[0].get(f"transactions.{tx_id}.cancelRequestedAt")
                )
                for tx_id, tx in transactions.items()
            },
        }
        if finalised:
            updated.update({"status": SessionStatus.CANCELLED.value, "cancelledAt": to_iso(now)})
        return updated
    raise ConcurrentUpdate()


def _recorded_summary(summary: dict[str, Any], cancelled: bool, requested_at: str | None) -> dict[str, Any]:
    if cancelled:
        return {**summary, "status": TransactionStatus.CANCELLED.value}
    if requested_at:
        return {**summary, "cancelRequestedAt": requested_at}
    return summary


def _cancellations_change(
    item: dict[str, Any],
    still: list[str],
    remaining: list[str],
    actor: str,
    tokens: dict[str, str | None] | None,
    now: datetime,
    requests: tuple[dict[str, Any], list[TransactionChange]],
) -> SessionChange:
    transactions = item.get("transactions") or {}
    cancellation = dict(item["cancellation"])
    cancellation["cancelledTransactionIds"] = [*cancellation.get("cancelledTransactionIds", []), *still]
    cancellation["pendingTransactionIds"] = remaining
    updates: dict[str, Any] = {"updatedAt": to_iso(now), **requests[0]}
    events = []
    tx_changes: list[TransactionChange] = list(requests[1])
    for tx_id in still:
        previous = transactions[tx_id]["status"]
        updates[f"transactions.{tx_id}.status"] = TransactionStatus.CANCELLED.value
        updates[f"transactions.{tx_id}.updatedAt"] = to_iso(now)
        tx_changes.append(
            transaction_move(
                tx_id,
                previous,
                TransactionStatus.CANCELLED,
                now,
                expected_token=(tokens or {}).get(tx_id),
                check_token=tokens is not None,
            )
        )
        events.append(
            transaction_moved_event(actor, now, transactions[tx_id], previous, TransactionStatus.CANCELLED)
        )
    remove: list[str] = []
    level_moves: list[tuple[str, int]] = []
    guard = Guard.status_is(SessionStatus.PENDING_CANCELLATION)
    if not remaining:
        guard = Guard.move(SessionStatus.PENDING_CANCELLATION, SessionStatus.CANCELLED)
        cancellation["finalizedAt"] = to_iso(now)
        updates.update({"status": SessionStatus.CANCELLED.value, "cancelledAt": to_iso(now)})
        remove = ["pendingShard", "recheckAt", "pendingLevel"]
        if item.get("pendingLevel"):  # the lock counted it there
            level_moves = [(str(item["pendingLevel"]), -1)]
        events.append(
            new_event(
                "session.cancelled",
                actor,
                now,
                cancelled_event_data(cancellation, bool(item.get("refundRequired"))),
            )
        )
    updates["cancellation"] = cancellation
    return session_change(
        item,
        "record_cancellations",
        set=updates,
        add={"inFlight": -len(still)} if still else {},
        remove=remove,
        guard=guard,
        events=events,
        transactions=tx_changes,
        level_moves=level_moves,
    )


def start_finaliser(ctx: Context, item: dict[str, Any]) -> None:
    try:
        started = ctx.finaliser.start(finaliser_input(item), execution_name(item["sessionId"]))
    except Exception:
        # The lock is in place; the scheduled safety net starts the finaliser on its next pass.
        logger.exception("finaliser did not start", extra={"sessionId": item["sessionId"]})
        return
    if started:
        count_transition("FinaliserStarted")


def finaliser_input(item: dict[str, Any]) -> dict[str, Any]:
    cancellation = item["cancellation"]
    return {
        "sessionId": item["sessionId"],
        "pendingTransactionIds": cancellation["pendingTransactionIds"],
        "finalizeBy": cancellation["finalizeBy"],
        "finalEventId": uuid7(),
        "attentionEventId": uuid7(),
    }


def recover_cancellation(ctx: Context, session_id: str) -> bool:
    """The safety net for a PENDING_CANCELLATION session past its recheck time.

    Retries the provider cancel of transactions still in flight whose provider can cancel in
    flight (a cancel whose process died between the lock and the provider calls never made them),
    then makes sure a finaliser is waiting on whatever is left.
    """
    item = ctx.repository.get_session(session_id)
    if item is None or item["status"] != SessionStatus.PENDING_CANCELLATION:
        return False
    now = ctx.clock()
    # Every pending cancellation is rechecked at least every CANCELLATION_RECHECK_SECONDS: the maximum
    # of this over that period is the age of the oldest one.
    requested = (item.get("cancellation") or {}).get("requestedAt")
    if requested:
        gauge(
            "PendingCancellationAgeSeconds", (now - from_iso(requested)).total_seconds(), MetricUnit.Seconds
        )
    cancellable = [
        tx["transactionId"]
        for tx in transactions_in_order(item)
        if transitions.is_in_flight(tx["status"])
        and ctx.can_cancel_in_flight(tx["provider"])
        and not cancel_requests.awaiting_answer(tx)
    ]
    outcomes = cancel_at_providers(ctx, item, cancellable)
    cancelled = [tx_id for tx_id, outcome in outcomes.items() if outcome is CancelOutcome.CANCELLED]
    requested = [tx_id for tx_id, outcome in outcomes.items() if outcome is CancelOutcome.REQUESTED]
    tokens: dict[str, str | None] = {}
    for tx_id in cancelled:
        stored = ctx.repository.get_transaction(tx_id) or {}
        tokens[tx_id] = stored.get("taskToken")
    final = record_provider_cancellations(
        ctx, item, cancelled, actor="scheduler", tokens=tokens, requested_ids=requested
    )
    if final["status"] != SessionStatus.PENDING_CANCELLATION:
        return True
    _ensure_finaliser(ctx, final, now)
    return True


def _ensure_finaliser(ctx: Context, item: dict[str, Any], now: datetime) -> None:
    session_id = item["sessionId"]
    restarts = int(item.get("finaliserRestarts", 0))
    name = execution_name(session_id) if restarts == 0 else f"{execution_name(session_id)}-{restarts}"
    next_restarts = restarts
    try:
        running = ctx.finaliser.is_running(name)
        if not running and not ctx.finaliser.start(finaliser_input(item), name):
            # An execution of that name ran and ended while the session is still pending.
            next_restarts = restarts + 1
            ctx.finaliser.start(finaliser_input(item), f"{execution_name(session_id)}-{next_restarts}")
    except Exception:
        logger.exception("finaliser check failed", extra={"sessionId": session_id})
    guard = Guard.status_is(SessionStatus.PENDING_CANCELLATION)
    change = session_change(
        item,
        "recheck",
        set={
            "recheckAt": epoch(now) + ctx.settings.cancellation_recheck_seconds,
            "finaliserRestarts": next_restarts,
        },
        guard=guard,
    )
    try:
        ctx.repository.apply(change)
    except WriteConflict:
        logger.info("session changed during recovery; next pass rechecks it", extra={"sessionId": session_id})
