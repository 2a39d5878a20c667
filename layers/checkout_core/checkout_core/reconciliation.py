"""Reconciliation: webhooks are not trusted to arrive. Every attempt at a provider that can be asked
(`status`) carries `reconcileAt` while in flight, in the sparse index `byReconcile`; the scheduled job
asks the provider about each one due and applies what changed exactly as a webhook would (actor
`scheduler`). It also finishes what a crash interrupted: an attempt with no provider reference is
looked up by our transaction id (Stripe: the PaymentIntent's metadata), or marked FAILED when the
provider never created it; and a settled payment whose automatic refund failed is refunded again.
"""

from __future__ import annotations

from typing import Any

from checkout_core import refunds, transitions
from checkout_core.changes import epoch
from checkout_core.clock import from_iso
from checkout_core.context import Context
from checkout_core.observability import logger
from checkout_core.providers import ProviderReport
from checkout_core.repository import shard_of
from checkout_core.transitions import TransactionStatus

ACTOR = "scheduler"
NEVER_CREATED = "not_created_at_provider"


def reconcile_keys(transaction_id: str, due_at: int) -> dict[str, Any]:
    """The attributes that put a transaction item in `byReconcile`, due at `due_at` (epoch seconds)."""
    return {"reconcileShard": f"RECONCILE#{shard_of(transaction_id)}", "reconcileAt": due_at}


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
        if refunds.refund_settled(ctx, session_id, transaction):
            return True
        settled_at = epoch(from_iso(transaction["updatedAt"]))
        overdue = now - settled_at > ctx.settings.cancellation_deadline_seconds
        if overdue and not transaction.get("refundAttentionRaised"):
            return refunds.raise_refund_attention(ctx, session_id, transaction)
        return False
    if not transitions.is_in_flight(status):
        ctx.repository.leave_reconciliation(transaction_id, None)
        return False
    reference = transaction.get("providerReference")
    state = provider.status(reference, transaction_id)
    log_extra = {
        "sessionId": session_id,
        "transactionId": transaction_id,
        "provider": transaction["provider"],
    }
    if state is None:
        if reference is None:
            # Recorded, then the process died before the provider was asked: it never happened there.
            logger.warning("attempt never reached its provider; marked FAILED", extra=log_extra)
            report = ProviderReport(
                f"reconcile:{transaction_id}:never-created",
                transaction_id,
                None,
                TransactionStatus.FAILED,
                failure_code=NEVER_CREATED,
            )
            return apply_provider_event(ctx, transaction["provider"], report, actor=ACTOR).applied
        ctx.repository.leave_reconciliation(transaction_id, now + ctx.settings.provider_reconcile_seconds)
        return False
    changed = False
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
        report = ProviderReport(
            f"reconcile:{transaction_id}:{state.status}",
            transaction_id,
            state.reference,
            state.status,
            failure_code=state.failure_code,
            amount=state.amount,
            currency=state.currency,
        )
        if apply_provider_event(ctx, transaction["provider"], report, actor=ACTOR).applied:
            return True
        # Not obeyed (the provider's payment disagrees with the record): asked again later, not every run.
        ctx.repository.leave_reconciliation(transaction_id, now + ctx.settings.provider_reconcile_seconds)
        return changed
    ctx.repository.leave_reconciliation(transaction_id, now + ctx.settings.provider_reconcile_seconds)
    return changed
