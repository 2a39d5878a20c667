"""The scheduled job: persist EXPIRED for due OPEN sessions, then run the cancellation safety net for due
pending cancellations. It reads only the sparse indexes' due entries and the sessions they name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from checkout_core import finalisation, transitions
from checkout_core.changes import Guard, attempts, epoch, expires_at_iso, new_event, session_change
from checkout_core.clock import to_iso
from checkout_core.context import Context
from checkout_core.errors import WriteConflict
from checkout_core.observability import count_transition, logger
from checkout_core.transitions import SessionStatus


@dataclass
class SweepReport:
    expired: int = 0
    recovered: int = 0
    examined: int = 0
    stopped_early: bool = False


def sweep(ctx: Context, time_left_ms: Callable[[], int], margin_ms: int = 5000) -> SweepReport:
    """Stops submitting work when the invocation is about to run out of time; what is left is still
    due for the next run."""
    report = SweepReport()
    now = epoch(ctx.clock())
    page_size = ctx.settings.sweep_page_size
    due_expiries = ctx.repository.due_keys("byExpiry", "openShard", "OPEN", "expiresAt", now, page_size)
    report.expired = _run_bounded(
        ctx, due_expiries, lambda session_id: expire_session(ctx, session_id), time_left_ms, margin_ms, report
    )
    if not report.stopped_early:
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
        )
    logger.info("sweep finished", extra={"report": report.__dict__})
    return report


def _run_bounded(
    ctx: Context,
    keys: Iterable[dict[str, Any]],
    work: Callable[[str], bool],
    time_left_ms: Callable[[], int],
    margin_ms: int,
    report: SweepReport,
) -> int:
    concurrency = ctx.settings.sweep_concurrency
    done = 0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        batch: list[str] = []
        for key in keys:
            if time_left_ms() < margin_ms:
                report.stopped_early = True
                break
            batch.append(key["pk"].split("#", 1)[1])
            if len(batch) == concurrency:
                done += sum(pool.map(work, batch))
                report.examined += len(batch)
                batch = []
        if batch:
            done += sum(pool.map(work, batch))
            report.examined += len(batch)
    return done


def expire_session(ctx: Context, session_id: str) -> bool:
    """OPEN, past expiresAt, nothing in flight -> EXPIRED. False when another outcome won."""
    for _ in attempts():
        item = ctx.repository.get_session(session_id)
        now = ctx.clock()
        if item is None or item["status"] != SessionStatus.OPEN:
            return False
        effective = transitions.effective_status(
            item["status"], item["expiresAt"], item["inFlight"], epoch(now)
        )
        if effective is not SessionStatus.EXPIRED:
            return False
        guard = Guard.move(SessionStatus.OPEN, SessionStatus.EXPIRED).past_expiry(now).nothing_in_flight()
        change = session_change(
            item,
            "expire",
            set={
                "status": SessionStatus.EXPIRED.value,
                "expiredAt": expires_at_iso(item),
                "updatedAt": to_iso(now),
            },
            remove=["openShard"],
            guard=guard,
            events=[new_event("session.expired", "scheduler", now, {"expiresAt": expires_at_iso(item)})],
        )
        try:
            ctx.repository.apply(change)
        except WriteConflict:
            continue
        count_transition("SessionExpired")
        logger.info("session expired", extra={"sessionId": session_id, "tenantId": item["tenantId"]})
        return True
    return False
