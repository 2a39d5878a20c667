"""The scheduled job: persist EXPIRED for due OPEN sessions, run the cancellation safety net for due
pending cancellations, then reconcile due transactions with their providers (reconciliation.py). It
reads only the sparse indexes' due entries and the items they name.

One session's failure is logged and counted, never the end of the sweep; expiries may use two thirds of the
invocation's time at most, so the safety net always gets its share; and an OPEN session past expiresAt with
a payment in flight leaves the expiry index (the payment's end decides its fate), so it is not re-read on
every run ahead of new work."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from checkout_core import customer_actions, finalisation, reconciliation, transitions
from checkout_core.changes import (
    Guard,
    attempts,
    epoch,
    expires_at_iso,
    leave_open,
    new_event,
    session_change,
)
from checkout_core.context import Context
from checkout_core.errors import WriteConflict
from checkout_core.observability import count_transition, gauge, logger
from checkout_core.transitions import SessionStatus

SAFETY_NET_SHARE = 1 / 3
RECONCILIATION_SHARE = 1 / 2  # of what the expiries leave


@dataclass
class SweepReport:
    expired: int = 0
    recovered: int = 0
    reconciled: int = 0
    examined: int = 0
    failed: int = 0
    stopped_early: bool = False


def sweep(ctx: Context, time_left_ms: Callable[[], int], margin_ms: int = 5000) -> SweepReport:
    """Stops submitting work when the invocation is about to run out of time; what is left is still
    due for the next run."""
    report = SweepReport()
    now = epoch(ctx.clock())
    page_size = ctx.settings.sweep_page_size
    due_expiries = ctx.repository.due_keys("byExpiry", "openShard", "OPEN", "expiresAt", now, page_size)
    report.expired = _run_bounded(
        ctx,
        due_expiries,
        lambda session_id: expire_session(ctx, session_id),
        time_left_ms,
        margin_ms,
        report,
        reserve_share=SAFETY_NET_SHARE,
    )
    due_recoveries = ctx.repository.due_keys(
        "byPendingCancellation", "pendingShard", "PENDING", "recheckAt", now, page_size
    )
    report.recovered = _run_bounded(
        ctx,
        due_recoveries,
        lambda session_id: finalisation.recover_cancellation(ctx, session_id),
        time_left_ms,
        margin_ms,
        report,
        reserve_share=RECONCILIATION_SHARE,
    )
    due_reconciliations = ctx.repository.due_keys(
        "byReconcile", "reconcileShard", "RECONCILE", "reconcileAt", now, page_size
    )
    report.reconciled = _run_bounded(
        ctx,
        due_reconciliations,
        lambda transaction_id: reconciliation.reconcile_transaction(ctx, transaction_id),
        time_left_ms,
        margin_ms,
        report,
    )
    # A level the dashboard draws, from counters moved with each session entering and leaving the wait.
    # The sweep's work is done by now: a failed read costs one point of the gauge, not the report.
    try:
        gauge("PendingCancellations", ctx.repository.pending_cancellations())
    except Exception:
        logger.exception("pending cancellations not counted")
    logger.info("sweep finished", extra={"report": report.__dict__})
    return report


def _run_bounded(
    ctx: Context,
    keys: Iterable[dict[str, Any]],
    work: Callable[[str], bool],
    time_left_ms: Callable[[], int],
    margin_ms: int,
    report: SweepReport,
    reserve_share: float = 0.0,
) -> int:
    """Runs `work` on each key's session, `sweep_concurrency` at a time, until the time left falls under
    the margin; `reserve_share` of the time there was at the start is kept for what runs after."""
    concurrency = ctx.settings.sweep_concurrency
    stop_below: int | None = None

    def isolated(session_id: str) -> bool | None:
        try:
            return work(session_id)
        except Exception:
            logger.exception(
                "sweep could not handle an item; the next run retries it", extra={"itemId": session_id}
            )
            return None

    def run(pool: ThreadPoolExecutor, batch: list[str]) -> int:
        outcomes = list(pool.map(isolated, batch))
        report.examined += len(batch)
        report.failed += sum(1 for outcome in outcomes if outcome is None)
        return sum(1 for outcome in outcomes if outcome)

    done = 0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        batch: list[str] = []
        for key in keys:
            left = time_left_ms()
            if stop_below is None:
                stop_below = margin_ms + int(max(0, left - margin_ms) * reserve_share)
            if left < stop_below:
                report.stopped_early = True
                break
            batch.append(key["pk"].split("#", 1)[1])
            if len(batch) == concurrency:
                done += run(pool, batch)
                batch = []
        if batch:
            done += run(pool, batch)
    return done


def expire_session(ctx: Context, session_id: str) -> bool:
    """OPEN, past expiresAt, nothing in flight -> EXPIRED. False when another outcome won."""
    for _ in attempts():
        item = ctx.repository.get_session(session_id)
        now = ctx.clock()
        if item is None or item["status"] != SessionStatus.OPEN:
            return False
        if transitions.is_past_expiry(item["expiresAt"], epoch(now)) and item["inFlight"] > 0:
            if customer_actions.cancel_due(item):
                # Nothing is authorised while a payment waits for the customer: it is cancelled at its
                # provider, and the end of the last payment in flight expires the session
                # (provider_events). One whose cancel did not go through is tried again next run.
                if customer_actions.cancel_waiting_payments(ctx, item, "scheduler"):
                    return False
                continue
            _leave_expiry_index(ctx, item, now)
            return False
        effective = transitions.effective_status(
            item["status"], item["expiresAt"], item["inFlight"], epoch(now)
        )
        if effective is not SessionStatus.EXPIRED:
            return False
        target = SessionStatus.EXPIRED
        change = leave_open(
            item,
            "expire",
            target,
            Guard.move(SessionStatus.OPEN, target).past_expiry(now).nothing_in_flight(),
            now,
            new_event("session.expired", "scheduler", now, {"expiresAt": expires_at_iso(item)}),
            expiredAt=expires_at_iso(item),
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        count_transition("SessionExpired")
        logger.info("session expired", extra={"sessionId": session_id, "tenantId": item["tenantId"]})
        return True
    return False


def _leave_expiry_index(ctx: Context, item: dict[str, Any], now: datetime) -> None:
    """OPEN past expiresAt with a payment in flight: nothing for the sweep to do until the payment ends,
    and its end (provider_events) completes or expires the session itself."""
    guard = Guard.status_is(SessionStatus.OPEN).past_expiry(now)
    change = session_change(item, "leave_expiry_index", guard=guard, remove=["openShard"])
    try:
        ctx.repository.apply(change)
    except WriteConflict:
        return
    logger.info(
        "payment in flight past expiresAt; left the expiry index", extra={"sessionId": item["sessionId"]}
    )
