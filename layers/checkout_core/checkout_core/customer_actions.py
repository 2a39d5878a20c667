"""Payments that wait for the customer: a provider that needs them (3-D Secure, their bank's page) answers
an attempt with a page to send them to. The attempt stays PROCESSING with `nextAction` until the provider
reports how it went: its webhook, the customer's return (`complete_return`, the hosted page's return
route), or reconciliation, whichever comes first; all three record it through `apply_provider_event`, so
the end state does not depend on their order. Nothing has been authorised while a payment waits, so a
cancel or an expiry cancels it at the provider (`cancel_waiting_payments`) instead of waiting for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checkout_core.cancel_requests import awaiting_answer
from checkout_core.changes import attempts, session_change
from checkout_core.clock import to_iso
from checkout_core.context import Context
from checkout_core.errors import ConcurrentUpdate, WriteConflict
from checkout_core.observability import logger
from checkout_core.providers import CancelOutcome, ProviderReport, ProviderState
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


def cancel_due(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The attempts waiting for the customer whose cancel has not been asked of their provider yet (one
    it accepted, or refused, is not asked again: cancel_requests.awaiting_answer)."""
    return [tx for tx in waiting_for_customer(item) if not awaiting_answer(tx)]


def complete_return(
    ctx: Context, item: Mapping[str, Any], transaction_id: str, returned: Mapping[str, str]
) -> bool:
    """The customer is back from the provider's page of the attempt `transaction_id`: if it still waits
    for them, it is read again at its provider and what the provider says is recorded as its webhook
    would be. True when a move was recorded."""

    summary = (item.get("transactions") or {}).get(transaction_id)
    provider = ctx.providers.get(summary["provider"]) if summary else None
    if summary is None or provider is None:
        return False
    if summary["status"] == TransactionStatus.FAILED and provider.has_status_api:
        # Failed already (its webhook came first): the adapter still closes what the return leaves open
        # at the provider (a Stripe intent whose client secret the way back carried).
        _ask_on_return(provider, summary, returned)
        return False
    if summary not in waiting_for_customer(item):
        return False
    state = _ask_on_return(provider, summary, returned)
    if state is None or state.status is TransactionStatus.PROCESSING:
        return False
    return _record(
        ctx, summary, state.report(f"return:{transaction_id}:{state.status}", transaction_id), RETURN_ACTOR
    )


def _record(ctx: Context, summary: Mapping[str, Any], report: ProviderReport, actor: str) -> bool:
    """A provider's reading of an attempt, applied as its event would be (an authorisation of an attempt
    captured automatically is its settlement: provider_batches.as_recorded). True when it moved it."""
    from checkout_core.provider_batches import as_recorded
    from checkout_core.provider_events import apply_provider_event

    transaction = ctx.repository.get_transaction(summary["transactionId"])
    if transaction is None:
        return False
    recorded = as_recorded(transaction, report)
    return apply_provider_event(ctx, summary["provider"], recorded, actor=actor, known=transaction).applied


def _ask_on_return(
    provider: Any, summary: Mapping[str, Any], returned: Mapping[str, str]
) -> ProviderState | None:
    """The provider's reading of the attempt the customer came back from; None when it could not be asked
    (its webhook or reconciliation will tell)."""
    try:
        state: ProviderState | None = provider.complete_return(
            summary.get("providerReference"), summary["transactionId"], returned
        )
    except Exception:
        logger.exception(
            "the provider could not be asked how the customer's return went; its webhook or "
            "reconciliation will tell",
            extra={"transactionId": summary["transactionId"]},
        )
        return None
    return state


def cancel_waiting_payments(ctx: Context, item: Mapping[str, Any], actor: str) -> int:
    """Cancels at their providers the attempts of `item` that wait for the customer, whatever else is in
    flight, and records each outcome: a cancel made as the provider's report of it would be, a cancel the
    provider answers later as requested (cancel_requests.py). The number whose cancel did not go through
    (an outage, or the customer finished meanwhile): to be looked at again."""
    from checkout_core.cancel_requests import record_cancel_requested
    from checkout_core.provider_events import apply_provider_event

    left = 0
    requested: list[str] = []
    for summary in cancel_due(item):
        provider = ctx.providers.get(summary["provider"])
        transaction_id = summary["transactionId"]
        outcome = CancelOutcome.FAILED
        if provider is not None and _moved_meanwhile(ctx, provider, summary, actor):
            left += 1  # the customer finished meanwhile (authorised, say): recorded, not cancelled
            continue
        if provider is not None:
            try:
                outcome = provider.cancel(summary.get("providerReference"), transaction_id, "ABANDONED")
            except Exception:
                logger.exception(
                    "a payment waiting for the customer could not be cancelled; tried again next run",
                    extra={"sessionId": item["sessionId"], "transactionId": transaction_id},
                )
        if outcome is CancelOutcome.REQUESTED:
            requested.append(transaction_id)
        elif outcome is CancelOutcome.CANCELLED:
            reference = summary.get("providerReference")
            report = ProviderReport(
                f"abandoned:{transaction_id}", transaction_id, reference, TransactionStatus.CANCELLED
            )
            apply_provider_event(ctx, summary["provider"], report, actor=actor)
        else:
            left += 1
    if requested:
        record_cancel_requested(ctx, ctx.repository.get_session(item["sessionId"]) or dict(item), requested)
    return left


def _moved_meanwhile(ctx: Context, provider: Any, summary: Mapping[str, Any], actor: str) -> bool:
    """Where the provider can be asked: whether the attempt no longer waits for the customer there (they
    authenticated, and the webhook has not come yet). What it says is then recorded as that webhook would,
    instead of cancelling a payment the customer made."""

    if not provider.has_status_api:
        return False
    transaction_id = summary["transactionId"]
    try:
        state = provider.status(summary.get("providerReference"), transaction_id)
    except Exception:
        logger.exception(
            "the provider could not be asked before a cancel", extra={"transactionId": transaction_id}
        )
        return True  # not cancelled blind: tried again next time
    if state is None or (state.status is TransactionStatus.PROCESSING and state.next_action_url):
        return False
    if state.status is not TransactionStatus.PROCESSING:
        _record(ctx, summary, state.report(f"asked:{transaction_id}:{state.status}", transaction_id), actor)
    return True
