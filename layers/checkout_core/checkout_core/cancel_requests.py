"""Cancels a provider answers later: the provider accepted the cancel (CancelOutcome.REQUESTED), the
transaction stays in flight with `cancelRequestedAt` and is pending exactly as one that cannot be cancelled;
the provider's report then moves it (CANCELLED), or says the cancel did not happen (`cancel_refused`): the
request is cleared (`cancelRequestedAt` back to null, `cancelRefused` kept on the item so the cancel is not
asked again) and the transaction finishes on its own, refunded if it settles where it must not.

The request is recorded in the write that records the cancel's other outcomes where there is one
(finalisation.py), so a cancel of k transactions costs no extra write."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from checkout_core import transitions
from checkout_core.changes import attempts, seen_provider_event, session_change
from checkout_core.clock import to_iso
from checkout_core.context import Context
from checkout_core.errors import ConcurrentUpdate, WriteConflict
from checkout_core.observability import logger
from checkout_core.providers import ProviderReport
from checkout_core.repository import TransactionChange


def awaiting_answer(summary: dict[str, Any]) -> bool:
    """A transaction whose provider accepted a cancel and has not answered it yet, or refused it: asking
    again changes nothing."""
    return bool(summary.get("cancelRequestedAt") or summary.get("cancelRefused"))


def requested_parts(
    item: dict[str, Any], transaction_ids: list[str] | tuple[str, ...], now: datetime
) -> tuple[dict[str, Any], list[TransactionChange]]:
    """The session updates and transaction changes that record a cancel requested of each transaction
    still in flight and not already waiting on one; empty when there is none."""
    transactions = item.get("transactions") or {}
    updates: dict[str, Any] = {}
    changes: list[TransactionChange] = []
    for transaction_id in transaction_ids:
        summary = transactions.get(transaction_id) or {}
        if not transitions.is_in_flight(summary.get("status", "")) or awaiting_answer(summary):
            continue
        updates[f"transactions.{transaction_id}.cancelRequestedAt"] = to_iso(now)
        changes.append(
            TransactionChange(
                transaction_id=transaction_id,
                expected_statuses=[summary["status"]],
                set={"cancelRequestedAt": to_iso(now)},
            )
        )
    return updates, changes


def record_cancel_requested(ctx: Context, item: dict[str, Any], transaction_ids: list[str]) -> None:
    """Records, in one write, that the provider accepted a cancel of `transaction_ids` (see module doc);
    `item` is the session as last read, a conflict re-reads it."""
    session_id = item["sessionId"]
    for attempt in attempts():
        if attempt:
            fresh = ctx.repository.get_session(session_id)
            if fresh is None:
                return
            item = fresh
        now = ctx.clock()
        updates, changes = requested_parts(item, transaction_ids, now)
        if not changes:
            return
        change = session_change(
            item,
            f"cancel_requested:{','.join(sorted(c.transaction_id for c in changes))}",
            set=updates,
            transactions=changes,
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        return
    raise ConcurrentUpdate()


def record_cancel_refused(
    ctx: Context, provider_name: str, transaction: dict[str, Any], report: ProviderReport
) -> bool:
    """The provider reports that a cancel it had accepted did not happen: one conditional write with the
    report's id (a resent report changes nothing). False when there is nothing to record."""
    transaction_id, session_id = transaction["transactionId"], transaction["sessionId"]
    for attempt in attempts():
        if attempt:
            transaction = ctx.repository.get_transaction(transaction_id) or transaction
        status = transaction["status"]
        if not transitions.is_in_flight(status):
            return False  # it ended meanwhile: the cancel's outcome no longer matters
        item = ctx.repository.get_session(session_id)
        if item is None:
            return False
        now = ctx.clock()
        fields = {"cancelRequestedAt": None, "cancelRefused": True, "updatedAt": to_iso(now)}
        change = session_change(
            item,
            f"cancel_refused:{provider_name}:{report.event_id}",
            set={
                **{f"transactions.{transaction_id}.{name}": value for name, value in fields.items()},
                "updatedAt": to_iso(now),
            },
            transactions=[
                TransactionChange(transaction_id=transaction_id, expected_statuses=[status], set=fields)
            ],
            new_items=[seen_provider_event(provider_name, report.event_id, transaction_id, now)],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict as conflict:
            if conflict.part.startswith("item:PROVIDER_EVENT#"):
                return False
            continue
        logger.warning(
            "provider reports a cancel it accepted did not happen; the transaction finishes on its own",
            extra={"sessionId": session_id, "transactionId": transaction_id, "provider": provider_name},
        )
        return True
    raise ConcurrentUpdate()
