"""Provider events: a provider reports a transaction's new status; a report that disagrees with the record
is not obeyed (report_matching.py); the move is applied once (deduplicated by the provider's event id in
the same write) and the session follows (completed, expired, or a pending cancellation told that one more
transaction has ended)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from checkout_core import cancel_requests, finalisation, refunds, transitions
from checkout_core.changes import (
    Guard,
    attempts,
    epoch,
    expires_at_iso,
    new_event,
    reconcile_keys,
    seen_provider_event,
    session_change,
    transaction_move,
    transaction_moved_event,
)
from checkout_core.clock import is_uuid7, to_iso
from checkout_core.context import Context
from checkout_core.errors import ConcurrentUpdate, TransactionNotFound, WriteConflict
from checkout_core.observability import count_transition, logger
from checkout_core.providers import CancelOutcome, ProviderReport
from checkout_core.report_matching import Match, match_report, mismatch_data
from checkout_core.repository import SessionChange, TransactionChange
from checkout_core.transitions import SessionStatus, TransactionStatus

REFUND_RETRY_SECONDS = 60
CONTRADICTED = frozenset({TransactionStatus.CANCELLED, TransactionStatus.FAILED})


@dataclass
class ProviderEventResult:
    applied: bool


def apply_provider_event(
    ctx: Context,
    provider_name: str,
    event: ProviderReport,
    actor: str | None = None,
    known: dict[str, Any] | None = None,
) -> ProviderEventResult:
    """Applies what a provider reports (its webhook, its answer to a call, or reconciliation's reading):
    the transaction's move with the event id recorded in the same write, then the session's follow-up;
    a payment that settles where it cannot complete the session is refunded at once (refunds.py).
    `known`: the transaction item as the caller just read it (it is not read again)."""
    if event.status is None or event.transaction_id is None:
        logger.info(
            "provider event of a kind this service does not act on", extra={"eventId": event.event_id}
        )
        return ProviderEventResult(applied=False)
    transaction_id = event.transaction_id
    target = event.status.value
    transaction = known
    if transaction is None and is_uuid7(transaction_id):
        transaction = ctx.repository.get_transaction(transaction_id)
    if transaction is None or transaction["provider"] != provider_name:
        raise TransactionNotFound(transaction_id)
    session_id = transaction["sessionId"]
    for attempt in attempts():
        if attempt:
            transaction = ctx.repository.get_transaction(transaction_id) or transaction
        previous = transaction["status"]
        log_extra = {
            "sessionId": session_id,
            "transactionId": transaction_id,
            "from": previous,
            "to": target,
        }
        movable = transitions.can_move_transaction(previous, target)
        contradicted = target == TransactionStatus.SETTLED and previous in CONTRADICTED
        if not movable and not contradicted:
            logger.info("provider event ignored", extra=log_extra)
            return ProviderEventResult(applied=False)
        if event.never_reached_provider and transaction.get("providerReference"):
            logger.info("the attempt reached its provider meanwhile: not marked FAILED", extra=log_extra)
            return ProviderEventResult(applied=False)
        item = ctx.repository.get_session(session_id)
        if item is None:
            raise TransactionNotFound(transaction_id)
        match = match_report(transaction, item["currency"], event)
        if match is Match.OTHER_REFERENCE:
            logger.warning(
                "provider event about another payment at the provider ignored",
                extra={**log_extra, "provider": provider_name, "reportedReference": event.reference},
            )
            return ProviderEventResult(applied=False)
        if match is not Match.MATCHES:
            if _raise_mismatch(ctx, item, transaction, provider_name, event, match):
                return ProviderEventResult(applied=False)
            continue
        if contradicted:
            if _raise_contradiction(ctx, item, transaction, provider_name, event):
                return ProviderEventResult(applied=False)
            continue
        if target == TransactionStatus.REFUNDED:
            # The refund's own bookkeeping (transaction.refunded, refundedTransactionIds), as when the
            # service's own refund call is answered with the refund made.
            made = refunds.record_refund(
                ctx, session_id, transaction, event.refund_id or "", actor or f"provider:{provider_name}"
            )
            return ProviderEventResult(applied=made)
        change = _transaction_move(item, transaction, provider_name, event, ctx.clock(), actor)
        try:
            version = ctx.repository.apply(change)
        except WriteConflict as conflict:
            if conflict.part.startswith("item:PROVIDER_EVENT#"):
                return ProviderEventResult(applied=False)
            continue
        count_transition(f"Transaction{target.title()}")
        for event_record in change.events:
            if event_record["type"].startswith("session."):
                count_transition("Session" + event_record["type"].split(".", 1)[1].title().replace("_", ""))
        logger.info("provider event applied", extra={**log_extra, "tenantId": item["tenantId"]})
        token = transaction.get("taskToken")
        if token and not transitions.is_in_flight(target):
            ctx.finaliser.release(token, {"transactionId": transaction_id, "status": target})
        if change.set.get("status") == SessionStatus.COMPLETED:
            completed = {**item, "status": SessionStatus.COMPLETED.value, "version": version}
            completed["seq"] = item["seq"] + len(change.events)
            _cancel_competing_attempts(ctx, completed, transaction_id)
        elif target == TransactionStatus.SETTLED:
            # Settled where it cannot complete the session: cancelled, expired, or paid already.
            settled = {**transaction, **reported_fields(transaction, event), "status": target}
            refunds.refund_settled(ctx, session_id, settled)
        return ProviderEventResult(applied=True)
    raise ConcurrentUpdate()


def _seen_item(provider_name: str, event: ProviderReport, tx_id: str, now: datetime) -> dict[str, Any]:
    return seen_provider_event(provider_name, event.event_id, tx_id, now)


def _raise_contradiction(
    ctx: Context,
    item: dict[str, Any],
    transaction: dict[str, Any],
    provider_name: str,
    event: ProviderReport,
) -> bool:
    """SETTLED for a transaction recorded CANCELLED or FAILED: the move is not made (the table forbids it),
    but money moved, so a refund is flagged and session.attention_required raised, once per event.
    False when the session changed meanwhile (read it again and retry)."""
    now = ctx.clock()
    tx_id, previous = transaction["transactionId"], transaction["status"]
    change = session_change(
        item,
        f"contradiction:{provider_name}:{event.event_id}",
        set={"refundRequired": True, "updatedAt": to_iso(now)},
        events=[
            new_event(
                "session.attention_required",
                f"provider:{provider_name}",
                now,
                {
                    "reason": "SETTLED_AFTER_" + previous,
                    "transactionId": tx_id,
                    "refundRequired": True,
                },
            )
        ],
        new_items=[_seen_item(provider_name, event, tx_id, now)],
    )
    try:
        ctx.repository.apply(change)
    except WriteConflict as conflict:
        return conflict.part.startswith("item:PROVIDER_EVENT#")  # a resent event: already raised
    count_transition("SessionAttentionRequired")
    logger.warning(
        "provider reports a settlement the service recorded as ended; refund flagged",
        extra={"sessionId": item["sessionId"], "transactionId": tx_id, "from": previous},
    )
    return True


def raise_reported_failure(
    ctx: Context, provider_name: str, transaction: dict[str, Any], report: ProviderReport
) -> bool:
    """A failure the provider reports that moves nothing (`report.attention`: a capture or a refund the
    card scheme refused, a reversal refused): session.attention_required with its reason, once per report.
    False when there is nothing to record (a resent report)."""
    tx_id, session_id = transaction["transactionId"], transaction["sessionId"]
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
            f"reported_failure:{provider_name}:{report.event_id}",
            set=updates,
            events=[
                new_event(
                    "session.attention_required",
                    f"provider:{provider_name}",
                    now,
                    {
                        "reason": report.attention,
                        "transactionId": tx_id,
                        "provider": provider_name,
                        "providerReference": report.reference or transaction.get("providerReference"),
                        "refundRequired": report.attention != "CAPTURE_FAILED",
                    },
                )
            ],
            new_items=[_seen_item(provider_name, report, tx_id, now)],
            transactions=[
                # A refund reported not made is the alarm the scheduled job would raise at the deadline.
                TransactionChange(
                    transaction_id=tx_id,
                    expected_statuses=[transaction["status"]],
                    set={"refundAttentionRaised": True},
                )
            ]
            if report.attention == "REFUND_NOT_MADE"
            else [],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict as conflict:
            if conflict.part.startswith("item:PROVIDER_EVENT#"):
                return False
            if conflict.part.startswith("transaction:"):
                transaction = ctx.repository.get_transaction(tx_id) or transaction
            continue
        count_transition("SessionAttentionRequired")
        logger.warning(
            "provider reports a failure a person must look at",
            extra={"sessionId": session_id, "transactionId": tx_id, "reason": report.attention},
        )
        return True
    raise ConcurrentUpdate()


def _raise_mismatch(
    ctx: Context,
    item: dict[str, Any],
    transaction: dict[str, Any],
    provider_name: str,
    event: ProviderReport,
    match: Match,
) -> bool:
    """A report about our payment that disagrees with the record on its amount or currency: nothing is
    moved (the provider holds another payment than the one the session asked for), and a person is
    told through session.attention_required, once per event. False when the session changed meanwhile."""
    now = ctx.clock()
    tx_id = transaction["transactionId"]
    updates: dict[str, Any] = {"updatedAt": to_iso(now)}
    if item.get("cancellation"):
        updates["cancellation.attentionRequired"] = True
    change = session_change(
        item,
        f"mismatch:{provider_name}:{event.event_id}",
        set=updates,
        events=[
            new_event(
                "session.attention_required",
                f"provider:{provider_name}",
                now,
                {"reason": match.value, **mismatch_data(transaction, item["currency"], event)},
            )
        ],
        new_items=[_seen_item(provider_name, event, tx_id, now)],
    )
    try:
        ctx.repository.apply(change)
    except WriteConflict as conflict:
        return conflict.part.startswith("item:PROVIDER_EVENT#")  # a resent event: already raised
    count_transition("SessionAttentionRequired")
    logger.warning(
        "provider event disagrees with the recorded payment; nothing moved",
        extra={"sessionId": item["sessionId"], "transactionId": tx_id, "reason": match.value},
    )
    return True


def _cancel_competing_attempts(ctx: Context, item: dict[str, Any], settled_id: str) -> None:
    """Once one payment completes the session, every other attempt still in flight is cancelled at its
    provider where it can be; what cannot be stays in flight, and settles into a flagged refund if it does.
    `item` is the session as the completing write left it; a conflict re-reads it."""
    session_id = item["sessionId"]
    competing = [
        tx["transactionId"]
        for tx in (item.get("transactions") or {}).values()
        if tx["transactionId"] != settled_id
        and transitions.is_in_flight(tx["status"])
        and ctx.can_cancel_in_flight(tx["provider"])
    ]
    if not competing:
        return
    outcomes = finalisation.cancel_at_providers(ctx, item, competing)
    cancelled = [tx_id for tx_id, outcome in outcomes.items() if outcome is CancelOutcome.CANCELLED]
    requested = [tx_id for tx_id, outcome in outcomes.items() if outcome is CancelOutcome.REQUESTED]
    for attempt in attempts():
        if attempt:
            item = ctx.repository.get_session(session_id) or item
        transactions = item.get("transactions") or {}
        still = [tx_id for tx_id in cancelled if transitions.is_in_flight(transactions[tx_id]["status"])]
        if not still:
            cancel_requests.record_cancel_requested(ctx, item, requested)
            return
        now = ctx.clock()
        updates, requests = cancel_requests.requested_parts(item, requested, now)
        updates["updatedAt"] = to_iso(now)
        for tx_id in still:
            updates[f"transactions.{tx_id}.status"] = TransactionStatus.CANCELLED.value
            updates[f"transactions.{tx_id}.updatedAt"] = to_iso(now)
        change = session_change(
            item,
            "cancel_competing",
            guard=Guard.status_is(SessionStatus.COMPLETED),
            set=updates,
            add={"inFlight": -len(still)},
            events=[
                transaction_moved_event(
                    "api",
                    now,
                    transactions[tx_id],
                    transactions[tx_id]["status"],
                    TransactionStatus.CANCELLED,
                )
                for tx_id in still
            ],
            transactions=[
                *(
                    transaction_move(tx_id, transactions[tx_id]["status"], TransactionStatus.CANCELLED, now)
                    for tx_id in still
                ),
                *requests,
            ],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        for _ in still:
            count_transition("TransactionCancelled")
        return
    logger.warning(
        "competing attempts cancelled at their providers but not recorded", extra={"sessionId": session_id}
    )


def _transaction_move(
    item: dict[str, Any],
    transaction: dict[str, Any],
    provider_name: str,
    event: ProviderReport,
    now: datetime,
    actor: str | None,
) -> SessionChange:
    tx_id = transaction["transactionId"]
    previous, target = transaction["status"], TransactionStatus(str(event.status))
    actor = actor or f"provider:{provider_name}"
    leaves_flight = transitions.is_in_flight(previous) and not transitions.is_in_flight(target)
    in_flight_after = item["inFlight"] - (1 if leaves_flight else 0)
    past_expiry = transitions.is_past_expiry(item["expiresAt"], epoch(now))
    session_after = transitions.session_status_after_transaction_move(
        item["status"], target, in_flight_after, past_expiry
    )
    recorded = reported_fields(transaction, event)
    refund_due = target == TransactionStatus.SETTLED and item["status"] != SessionStatus.OPEN
    tx_fields: dict[str, Any] = dict(recorded)
    if refund_due:
        # Kept due for the scheduled job, in case the refund asked for right after this write fails.
        tx_fields.update(refundDue=True, **reconcile_keys(tx_id, epoch(now) + REFUND_RETRY_SECONDS))
    updates: dict[str, Any] = {
        f"transactions.{tx_id}.status": target.value,
        f"transactions.{tx_id}.updatedAt": to_iso(now),
        **{f"transactions.{tx_id}.{name}": value for name, value in recorded.items()},
        "updatedAt": to_iso(now),
    }
    if transaction.get("nextAction") and target != TransactionStatus.PROCESSING:
        # No longer waiting for the customer.
        updates[f"transactions.{tx_id}.nextAction"] = None
        tx_fields["nextAction"] = None
    remove: list[str] = []
    events = [transaction_moved_event(actor, now, transaction, previous, target)]
    if item["status"] == SessionStatus.PENDING_CANCELLATION and leaves_flight:
        cancellation = dict(item["cancellation"])
        cancellation["pendingTransactionIds"] = [
            pending for pending in cancellation.get("pendingTransactionIds", []) if pending != tx_id
        ]
        if target == TransactionStatus.SETTLED:
            cancellation["settledTransactionIds"] = [*cancellation.get("settledTransactionIds", []), tx_id]
            updates["refundRequired"] = True
        updates["cancellation"] = cancellation
    if session_after is not SessionStatus(item["status"]):
        # The only moves a transaction can cause: OPEN -> COMPLETED, OPEN -> EXPIRED.
        if not transitions.can_move_session(item["status"], session_after):
            raise ValueError(
                f"the transition table forbids a session move {item['status']} -> {session_after}"
            )
        remove.append("openShard")
        if session_after is SessionStatus.COMPLETED:
            updates.update({"status": session_after.value, "completedAt": to_iso(now)})
            events.append(new_event("session.completed", actor, now, {"transactionId": tx_id}))
        else:
            updates.update({"status": session_after.value, "expiredAt": to_iso(now)})
            events.append(new_event("session.expired", actor, now, {"expiresAt": expires_at_iso(item)}))
    elif target == TransactionStatus.SETTLED and item["status"] == SessionStatus.COMPLETED:
        # Another payment already completed this session: the customer has paid twice; refunds.py
        # refunds this one right after this write.
        updates["refundRequired"] = True
    return session_change(
        item,
        f"provider_event:{provider_name}:{event.event_id}",
        set=updates,
        add={"inFlight": -1} if leaves_flight else {},
        remove=remove,
        events=events,
        transactions=[
            replace(
                transaction_move(
                    tx_id,
                    previous,
                    target,
                    now,
                    expected_token=transaction.get("taskToken"),
                    check_token=True,
                    also_set=tx_fields,
                ),
                reference_unset="providerReference" in recorded or event.never_reached_provider,
            )
        ],
        new_items=[_seen_item(provider_name, event, tx_id, now)],
    )


def reported_fields(transaction: dict[str, Any], event: ProviderReport) -> dict[str, Any]:
    """What the provider's report adds to the transaction: its id there, why it failed, its refund."""
    fields: dict[str, Any] = {}
    if event.reference and not transaction.get("providerReference"):
        fields["providerReference"] = event.reference
    if event.status == TransactionStatus.FAILED and event.failure_code:
        fields["failureCode"] = event.failure_code
    if event.status == TransactionStatus.REFUNDED and event.refund_id:
        fields["refundId"] = event.refund_id
    return fields


def record_provider_reference(
    ctx: Context,
    session_id: str,
    transaction_id: str,
    reference: str,
    amount: int | None = None,
    currency: str | None = None,
) -> bool:
    """The provider's id of an attempt still in flight, recorded once the call that created it answered
    (or reconciliation found it), unless the provider holds it for another amount or currency. True when
    the record holds this id (recorded now or before)."""
    for _ in attempts():
        item = ctx.repository.get_session(session_id)
        summary = ((item or {}).get("transactions") or {}).get(transaction_id)
        if item is None or summary is None or summary.get("providerReference"):
            return summary is not None and summary.get("providerReference") == reference
        if not transitions.is_in_flight(summary["status"]):
            return False  # ended meanwhile (reconciliation found nothing at the provider): not to be revived
        found = ProviderReport("", transaction_id, reference, None, amount=amount, currency=currency)
        match = match_report(summary, item["currency"], found)
        if match is not Match.MATCHES:
            logger.warning(
                "the provider's payment disagrees with the recorded attempt; its reference not recorded",
                extra={"sessionId": session_id, "transactionId": transaction_id, "reason": match.value},
            )
            return False
        now = ctx.clock()
        change = session_change(
            item,
            f"reference:{transaction_id}",
            set={
                f"transactions.{transaction_id}.providerReference": reference,
                f"transactions.{transaction_id}.updatedAt": to_iso(now),
            },
            transactions=[
                TransactionChange(
                    transaction_id=transaction_id,
                    expected_statuses=[summary["status"]],
                    set={"providerReference": reference, "updatedAt": to_iso(now)},
                    reference_unset=True,
                )
            ],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        return True
    raise ConcurrentUpdate()
