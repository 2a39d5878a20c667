"""Payments that wait for the customer: a provider that needs them (3-D Secure, their bank's page) answers
an attempt with a page to send them to. The attempt stays PROCESSING with `nextAction` until the provider
reports how it went: its webhook, the customer's return (`complete_returns`, the hosted page's return
route), or reconciliation, whichever comes first; all three record it through `apply_provider_event`, so
the end state does not depend on their order. Nothing has been authorised while a payment waits, so a
cancel or an expiry cancels it at the provider (`cancel_waiting_payments`) instead of waiting for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checkout_core import transitions
from checkout_core.changes import attempts, session_change
from checkout_core.clock import to_iso
from checkout_core.context import Context
from checkout_core.errors import ConcurrentUpdate, WriteConflict
from checkout_core.observability import logger
from checkout_core.providers import CancelOutcome, ProviderReport
from checkout_core.repository import TransactionChange
from checkout_core.transitions import TransactionStatus
from checkout_core.views import transactions_in_order

RETURN_ACTOR = "customer"


def record_next_action(ctx: Context, session_id: str, transaction_id: str, url: str) -> bool:
    """The page the provider sends the customer to, recorded while the attempt is still PROCESSING (a
    report that ended it meanwhile wins). True once recorded."""
    next_action = {"type": "redirect", "url": url}
    for _ in attempts():
        item = ctx.repository.get_session(session_id)
        summary = ((item or {}).get("transactions") or {}).get(transaction_id)
        if item is None or summary is None or summary["status"] != TransactionStatus.PROCESSING:
            return False
        now = to_iso(ctx.clock())
        change = session_change(
            item,
            f"next_action:{transaction_id}",
            set={
                f"transactions.{transaction_id}.nextAction": next_action,
                f"transactions.{transaction_id}.updatedAt": now,
            },
            transactions=[
                TransactionChange(
                    transaction_id=transaction_id,
                    expected_statuses=[TransactionStatus.PROCESSING.value],
                    set={"nextAction": next_action, "updatedAt": now},
                )
            ],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        return True
    raise ConcurrentUpdate()


def waiting_for_customer(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The session's attempts that wait for the customer."""
    return [
        tx
        for tx in transactions_in_order(dict(item))
        if tx["status"] == TransactionStatus.PROCESSING and tx.get("nextAction")
    ]


def complete_returns(ctx: Context, item: Mapping[str, Any], returned: Mapping[str, str]) -> int:
    """The customer is back from the provider's page: each attempt that waited for them is read again
    at its provider and what it says is recorded as its webhook would be. The number of moves recorded."""
    from checkout_core.provider_batches import as_recorded
    from checkout_core.provider_events import apply_provider_event

    moved = 0
    for summary in waiting_for_customer(item):
        provider = ctx.providers.get(summary["provider"])
        if provider is None:
            continue
        transaction_id = summary["transactionId"]
        try:
            state = provider.complete_return(summary.get("providerReference"), transaction_id, returned)
        except Exception:
            logger.exception(
                "the provider could not be asked how the customer's authentication went; its webhook "
                "or reconciliation will tell",
                extra={"sessionId": item["sessionId"], "transactionId": transaction_id},
            )
            continue
        if state is None or state.status is TransactionStatus.PROCESSING:
            continue
        transaction = ctx.repository.get_transaction(transaction_id)
        if transaction is None:
            continue
        report = ProviderReport(
            f"return:{transaction_id}:{state.status}",
            transaction_id,
            state.reference,
            state.status,
            failure_code=state.failure_code,
            amount=state.amount,
            currency=state.currency,
        )
        applied = apply_provider_event(
            ctx, summary["provider"], as_recorded(transaction, report), actor=RETURN_ACTOR, known=transaction
        )
        moved += 1 if applied.applied else 0
    return moved


def cancel_waiting_payments(ctx: Context, item: Mapping[str, Any], actor: str) -> bool | None:
    """Where every attempt in flight on `item` waits for the customer: cancels them at their providers
    and records each cancel made as its report would be. True when all are cancelled, False when one is
    not (yet); None when some payment in flight is not waiting for the customer (it must end on its own)."""
    from checkout_core.provider_events import apply_provider_event

    waiting = waiting_for_customer(item)
    in_flight = [tx for tx in transactions_in_order(dict(item)) if transitions.is_in_flight(tx["status"])]
    if not waiting or len(waiting) != len(in_flight):
        return None
    cancelled_all = True
    for summary in waiting:
        provider = ctx.providers.get(summary["provider"])
        transaction_id = summary["transactionId"]
        outcome = CancelOutcome.FAILED
        if provider is not None:
            try:
                outcome = provider.cancel(summary.get("providerReference"), transaction_id, "ABANDONED")
            except Exception:
                logger.exception(
                    "a payment waiting for the customer could not be cancelled; tried again next run",
                    extra={"sessionId": item["sessionId"], "transactionId": transaction_id},
                )
        if outcome is not CancelOutcome.CANCELLED:
            cancelled_all = False
            continue
        reference = summary.get("providerReference")
        report = ProviderReport(
            f"abandoned:{transaction_id}", transaction_id, reference, TransactionStatus.CANCELLED
        )
        apply_provider_event(ctx, summary["provider"], report, actor=actor)
    return cancelled_all
