"""Automatic refunds: a payment that settles on a session that is PENDING_CANCELLATION, CANCELLED or
EXPIRED, or a second payment on a session another one completed, is refunded at its provider.

The settlement is recorded first (with `refundRequired` on the session); then the provider is asked;
then its refund is recorded: the transaction REFUNDED with `refundId`, `transaction.refunded` on the
timeline, and the id in `cancellation.refundedTransactionIds` where there is a cancellation. A refund
call that fails leaves the transaction SETTLED with `refundRequired` set, for the scheduled job to ask
again; nothing is recorded as refunded that the provider did not refund. A provider that answers a
refund later (`refund_is_async`: Adyen's reversal) gets `refundRequestedAt` instead, and the refund is
recorded when the provider reports it made; the job does not ask again, and past the deadline raises
attention as for a refund never made.
"""

from __future__ import annotations

from typing import Any

from checkout_core.changes import attempts, new_event, session_change
from checkout_core.clock import to_iso
from checkout_core.context import Context
from checkout_core.errors import ConcurrentUpdate, WriteConflict
from checkout_core.observability import count_transition, logger
from checkout_core.repository import TransactionChange
from checkout_core.transitions import TransactionStatus


def refund_settled(ctx: Context, session_id: str, transaction: dict[str, Any]) -> bool:
    """Refunds one settled transaction (its item as the caller holds it) at its provider and records it;
    False when the call failed. Recording it twice is refused by the write's condition."""
    transaction_id, provider_name = transaction["transactionId"], transaction["provider"]
    provider = ctx.providers.get(provider_name)
    if provider is None or transaction["status"] != TransactionStatus.SETTLED:
        return False
    log_extra = {"sessionId": session_id, "transactionId": transaction_id, "provider": provider_name}
    try:
        refund_id = provider.refund(transaction.get("providerReference"), transaction_id)
    except Exception:
        logger.exception("provider refund call failed; the scheduled job will ask again", extra=log_extra)
        return False
    if provider.refund_is_async:
        _record_refund_requested(ctx, session_id, transaction_id)
        logger.info(
            "refund requested; the provider reports it later", extra={**log_extra, "request": refund_id}
        )
        return True
    record_refund(ctx, session_id, transaction, refund_id, f"provider:{provider_name}")
    logger.info("settled payment refunded", extra={**log_extra, "refundId": refund_id})
    return True


def _record_refund_requested(ctx: Context, session_id: str, transaction_id: str) -> None:
    """`refundRequestedAt` on a SETTLED transaction whose provider will report the refund's outcome."""
    for _ in attempts():
        item = ctx.repository.get_session(session_id)
        summary = ((item or {}).get("transactions") or {}).get(transaction_id) or {}
        if item is None or summary.get("status") != TransactionStatus.SETTLED:
            return
        now = ctx.clock()
        change = session_change(
            item,
            f"refund_requested:{transaction_id}",
            set={f"transactions.{transaction_id}.refundRequestedAt": to_iso(now), "updatedAt": to_iso(now)},
            transactions=[
                TransactionChange(
                    transaction_id=transaction_id,
                    expected_statuses=[TransactionStatus.SETTLED.value],
                    set={"refundRequestedAt": to_iso(now)},
                )
            ],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        return
    raise ConcurrentUpdate()


def record_refund(
    ctx: Context, session_id: str, transaction: dict[str, Any], refund_id: str, actor: str
) -> bool:
    """SETTLED -> REFUNDED with the provider's refund id, once (a second call finds it REFUNDED): True
    when this call recorded it."""
    tx_id = transaction["transactionId"]
    for _ in attempts():
        item = ctx.repository.get_session(session_id)
        if item is None:
            return False
        summary = (item.get("transactions") or {}).get(tx_id) or {}
        if summary.get("status") != TransactionStatus.SETTLED:
            return False  # refunded already (a webhook of the refund, or another call)
        now = ctx.clock()
        updates: dict[str, Any] = {
            f"transactions.{tx_id}.status": TransactionStatus.REFUNDED.value,
            f"transactions.{tx_id}.refundId": refund_id,
            f"transactions.{tx_id}.updatedAt": to_iso(now),
            "updatedAt": to_iso(now),
        }
        if item.get("cancellation"):
            refunded = list(item["cancellation"].get("refundedTransactionIds") or [])
            updates["cancellation.refundedTransactionIds"] = [*refunded, tx_id]
        change = session_change(
            item,
            f"refund:{tx_id}",
            set=updates,
            events=[
                new_event(
                    "transaction.refunded",
                    actor,
                    now,
                    {"transactionId": tx_id, "provider": summary.get("provider"), "refundId": refund_id},
                )
            ],
            transactions=[
                TransactionChange(
                    transaction_id=tx_id,
                    expected_statuses=[TransactionStatus.SETTLED.value],
                    set={
                        "status": TransactionStatus.REFUNDED.value,
                        "refundId": refund_id,
                        "updatedAt": to_iso(now),
                    },
                )
            ],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        count_transition("TransactionRefunded")
        return True
    raise ConcurrentUpdate()


def raise_refund_attention(ctx: Context, session_id: str, transaction: dict[str, Any]) -> bool:
    """A refund still not made `CANCELLATION_DEADLINE_SECONDS` after the payment settled: a person must
    look (session.attention_required, once; the scheduled job keeps asking the provider meanwhile)."""
    tx_id = transaction["transactionId"]
    for _ in attempts():
        item = ctx.repository.get_session(session_id)
        if item is None:
            return False
        now = ctx.clock()
        updates: dict[str, Any] = {"updatedAt": to_iso(now)}
        if item.get("cancellation"):
            updates["cancellation.attentionRequired"] = True
        change = session_change(
            item,
            f"refund_attention:{tx_id}",
            set=updates,
            events=[
                new_event(
                    "session.attention_required",
                    "scheduler",
                    now,
                    {"reason": "REFUND_NOT_MADE", "transactionId": tx_id, "refundRequired": True},
                )
            ],
            transactions=[
                TransactionChange(
                    transaction_id=tx_id,
                    expected_statuses=[TransactionStatus.SETTLED.value],
                    set={"refundAttentionRaised": True},
                )
            ],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        count_transition("SessionAttentionRequired")
        logger.warning(
            "a refund is still not made past the deadline",
            extra={"sessionId": session_id, "transactionId": tx_id},
        )
        return True
    raise ConcurrentUpdate()
