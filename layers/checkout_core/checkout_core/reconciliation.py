"""Reconciliation: webhooks are not trusted to arrive. Every attempt at a provider that can be asked
(`status`) carries `reconcileAt` while in flight, in the sparse index `byReconcile`; the scheduled job
asks the provider about each one due and applies what changed exactly as a webhook would (actor
`scheduler`). It also finishes what a crash interrupted: an attempt with no provider reference never
reached a state that can charge (Stripe's intent is confirmed only once its id is recorded) and is marked
FAILED; and a settled payment whose automatic refund failed is refunded again.

A provider that cannot be asked (`has_status_api` false: Adyen) is acted on instead: while the session
takes payments its attempt waits; once the session no longer does (it left OPEN, or passed expiresAt), the
silent attempt is cancelled by our own reference (`cancel_by_our_reference`: Adyen's technical cancel,
which also reaches an attempt whose provider id was never learnt), and the provider reports the outcome.
Past CANCELLATION_DEADLINE_SECONDS a session that no workflow watches raises session.attention_required.
"""

from __future__ import annotations

from typing import Any

from checkout_core import cancel_requests, refunds, transitions
from checkout_core.changes import attempts, epoch, new_event, session_change
from checkout_core.clock import from_iso, to_iso
from checkout_core.context import Context
from checkout_core.errors import ConcurrentUpdate, WriteConflict
from checkout_core.observability import count_transition, logger
from checkout_core.providers import CancelOutcome, ProviderAdapter, ProviderReport
from checkout_core.repository import TransactionChange
from checkout_core.transitions import SessionStatus, TransactionStatus

ACTOR = "scheduler"
NEVER_CREATED = "not_created_at_provider"


def reconcile_transaction(ctx: Context, transaction_id: str) -> bool:
    """One due transaction: True when something was recorded (a move, a reference, a refund)."""
    from checkout_core.provider_events import apply_provider_event, record_provider_reference

    transaction = ctx.repository.get_transaction(transaction_id)
    if transaction is None:
        return False
    session_id = transaction["sessionId"]
    provider = ctx.providers.get(transaction["provider"])
    now = epoch(ctx.clock())
    if provider is None:
        ctx.repository.leave_reconciliation(transaction_id, None)
        return False
    status = transaction["status"]
    if status == TransactionStatus.SETTLED and transaction.get("refundDue"):
        # A refund requested of a provider that reports it later is not asked again: it is waited for.
        requested = bool(transaction.get("refundRequestedAt"))
        if not requested and refunds.refund_settled(ctx, session_id, transaction):
            return True
        settled_at = epoch(from_iso(transaction["updatedAt"]))
        overdue = now - settled_at > ctx.settings.cancellation_deadline_seconds
        if overdue and not transaction.get("refundAttentionRaised"):
            return refunds.raise_refund_attention(ctx, session_id, transaction)
        if requested:
            ctx.repository.leave_reconciliation(transaction_id, now + ctx.settings.provider_reconcile_seconds)
        return False
    if not transitions.is_in_flight(status):
        ctx.repository.leave_reconciliation(transaction_id, None)
        return False
    if not provider.has_status_api:
        return _act_without_asking(ctx, provider, transaction, now)
    reference = transaction.get("providerReference")
    state = provider.status(reference, transaction_id)
    log_extra = {
        "sessionId": session_id,
        "transactionId": transaction_id,
        "provider": transaction["provider"],
    }
    if state is None:
        if reference is None:
            # Recorded, then the process died before the provider was asked (or before anything it was
            # asked could charge): it never happened there.
            logger.warning("attempt never reached its provider; marked FAILED", extra=log_extra)
            report = ProviderReport(
                f"reconcile:{transaction_id}:never-created",
                transaction_id,
                None,
                TransactionStatus.FAILED,
                failure_code=NEVER_CREATED,
                never_reached_provider=True,
            )
            return apply_provider_event(ctx, transaction["provider"], report, actor=ACTOR).applied
        ctx.repository.leave_reconciliation(transaction_id, now + ctx.settings.provider_reconcile_seconds)
        return False
    changed = False
    if state.next_action_url and state.status == status:
        changed = _waiting_for_customer(ctx, transaction, state.next_action_url, now)
    if state.reference and not reference and state.status == status:
        # A move records the reference with it, once matched against the record (provider_events.py).
        record_provider_reference(
            ctx, session_id, transaction_id, state.reference, state.amount, state.currency
        )
        changed = True
    if state.status != status:
        logger.info(
            "reconciliation found a move the provider did not report", extra={**log_extra, "to": state.status}
        )
        report = state.report(f"reconcile:{transaction_id}:{state.status}", transaction_id)
        if apply_provider_event(ctx, transaction["provider"], report, actor=ACTOR).applied:
            return True
        # Not obeyed (the provider's payment disagrees with the record): asked again later, not every run.
        ctx.repository.leave_reconciliation(transaction_id, now + ctx.settings.provider_reconcile_seconds)
        return changed
    ctx.repository.leave_reconciliation(transaction_id, now + ctx.settings.provider_reconcile_seconds)
    return changed


def _act_without_asking(
    ctx: Context, provider: ProviderAdapter, transaction: dict[str, Any], now: int
) -> bool:
    """One silent attempt at a provider without a status API (see the module's doc)."""
    from checkout_core.provider_events import apply_provider_event

    transaction_id, session_id = transaction["transactionId"], transaction["sessionId"]
    item = ctx.repository.get_session(session_id)
    if item is None:
        ctx.repository.leave_reconciliation(transaction_id, None)
        return False
    next_due = now + ctx.settings.provider_reconcile_seconds
    takes_payments = item["status"] == SessionStatus.OPEN and not transitions.is_past_expiry(
        item["expiresAt"], now
    )
    log_extra = {"sessionId": session_id, "transactionId": transaction_id, "provider": provider.name}
    if takes_payments:
        ctx.repository.leave_reconciliation(transaction_id, next_due)
        return False
    changed = False
    summary = (item.get("transactions") or {}).get(transaction_id) or {}
    if provider.cancel_by_our_reference and not summary.get("cancelRefused"):
        try:
            # By the provider's id where one is recorded (a technical cancel reaches only an uncaptured
            # payment within a day of it); by our own reference where none is.
            outcome = provider.cancel(
                transaction.get("providerReference"),
                transaction_id,
                (item.get("cancellation") or {}).get("reasonType"),
            )
        except Exception:
            logger.exception("cancel by our reference failed; asked again next time", extra=log_extra)
            outcome = CancelOutcome.FAILED
        logger.info(
            "silent attempt cancelled by our reference", extra={**log_extra, "outcome": outcome.value}
        )
        if outcome is CancelOutcome.CANCELLED:
            report = ProviderReport(
                f"reconcile:{transaction_id}:cancelled", transaction_id, None, TransactionStatus.CANCELLED
            )
            return apply_provider_event(ctx, provider.name, report, actor=ACTOR).applied
        if outcome is CancelOutcome.REQUESTED and not summary.get("cancelRequestedAt"):
            cancel_requests.record_cancel_requested(ctx, item, [transaction_id])
            changed = True
    overdue = now - epoch(from_iso(transaction["createdAt"])) > ctx.settings.cancellation_deadline_seconds
    watched = item["status"] == SessionStatus.PENDING_CANCELLATION  # its finaliser raises the attention
    if overdue and not watched and not transaction.get("silentAttentionRaised"):
        changed = _raise_silent_attention(ctx, session_id, transaction) or changed
    ctx.repository.leave_reconciliation(transaction_id, next_due)
    return changed


def _raise_silent_attention(ctx: Context, session_id: str, transaction: dict[str, Any]) -> bool:
    """An attempt still in flight, unreported, CANCELLATION_DEADLINE_SECONDS after it began, on a session
    that no longer takes payments: a person must look (session.attention_required, once)."""
    tx_id = transaction["transactionId"]
    for _ in attempts():
        item = ctx.repository.get_session(session_id)
        if item is None:
            return False
        summary = (item.get("transactions") or {}).get(tx_id) or {}
        if not transitions.is_in_flight(summary.get("status", "")):
            return False
        now = ctx.clock()
        updates: dict[str, Any] = {"updatedAt": to_iso(now)}
        if item.get("cancellation"):
            updates["cancellation.attentionRequired"] = True
        change = session_change(
            item,
            f"silent_attention:{tx_id}",
            set=updates,
            events=[
                new_event(
                    "session.attention_required",
                    ACTOR,
                    now,
                    {"reason": "PROVIDER_SILENT", "transactionId": tx_id, "refundRequired": False},
                )
            ],
            transactions=[
                TransactionChange(
                    transaction_id=tx_id,
                    expected_statuses=[summary["status"]],
                    set={"silentAttentionRaised": True},
                )
            ],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        count_transition("SessionAttentionRequired")
        logger.warning(
            "an attempt is still unreported by its provider past the deadline",
            extra={"sessionId": session_id, "transactionId": tx_id},
        )
        return True
    raise ConcurrentUpdate()


def _waiting_for_customer(ctx: Context, transaction: dict[str, Any], url: str, now: int) -> bool:
    """An attempt the provider says waits for the customer: its page recorded where a crash lost it, and,
    once its session takes no more payments (expired, or being cancelled), cancelled at the provider, as
    expiry does (customer_actions.py). True when something was recorded."""
    from checkout_core import customer_actions

    session_id, transaction_id = transaction["sessionId"], transaction["transactionId"]
    recorded = bool(transaction.get("nextAction")) or customer_actions.record_next_action(
        ctx, session_id, transaction_id, url
    )
    item = ctx.repository.get_session(session_id)
    if item is None or not recorded:
        return False
    closed = item["status"] != SessionStatus.OPEN or transitions.is_past_expiry(item["expiresAt"], now)
    if closed and customer_actions.cancel_due(item):
        customer_actions.cancel_waiting_payments(ctx, item, ACTOR)
        return True
    return not transaction.get("nextAction")
