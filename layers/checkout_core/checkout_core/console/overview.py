"""What the overview shows, read at a cost that does not grow with the tenant's sessions: the hourly
counters (one Query per counter shard), the first page of each watch list (pending cancellations and
sessions that need attention: one Query each, then one BatchGetItem of the sessions they name), and per
webhook endpoint (at most 16) one page of its newest deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from checkout_core import tallies
from checkout_core.clock import from_iso
from checkout_core.context import Context
from checkout_core.models import Session, Tenant, WebhookEndpoint
from checkout_core.views import session_view
from checkout_core.webhooks.endpoints import endpoint_view
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.store import MAX_ENDPOINTS

WATCH_LIMIT = 10
DELIVERY_WINDOW = 100
HOURS = 24
DAYS = 7


@dataclass
class Series:
    labels: list[str]
    counts: dict[str, list[int]]  # outcome -> one count per label


@dataclass
class EndpointHealth:
    endpoint: WebhookEndpoint
    delivered: int
    failed: int
    window: int
    window_full: bool
    oldest_undelivered: str | None

    @property
    def success_rate(self) -> float | None:
        finished = self.delivered + self.failed
        return None if finished == 0 else self.delivered / finished


@dataclass
class Overview:
    hours: Series
    days: Series
    pending: list[Session] = field(default_factory=list)
    more_pending: bool = False
    attention: list[Session] = field(default_factory=list)
    more_attention: bool = False
    endpoints: list[EndpointHealth] = field(default_factory=list)


def overview(ctx: Context, services: WebhookServices, tenant: Tenant) -> Overview:
    now = ctx.clock()
    hours, days = _series(ctx, tenant, now)
    repository = ctx.repository
    pending_ids, more_pending = repository.watch_list(
        "byTenantPending", "pendingTenant", tenant.tenant_id, WATCH_LIMIT
    )
    attention_ids, more_attention = repository.watch_list(
        "byTenantAttention", "attentionTenant", tenant.tenant_id, WATCH_LIMIT
    )
    wanted = pending_ids + attention_ids
    items = repository.get_sessions(wanted) if wanted else {}

    def views(ids: list[str]) -> list[Session]:
        return [
            session_view(items[i], now) for i in ids if items.get(i, {}).get("tenantId") == tenant.tenant_id
        ]

    return Overview(
        hours=hours,
        days=days,
        pending=views(pending_ids),
        more_pending=more_pending,
        attention=views(attention_ids),
        more_attention=more_attention,
        endpoints=endpoint_health(services, tenant),
    )


def _series(ctx: Context, tenant: Tenant, now: datetime) -> tuple[Series, Series]:
    first, last = tallies.hours_back(now, DAYS * 24)
    by_hour: dict[str, dict[str, int]] = {}
    for item in ctx.repository.counters(tenant.tenant_id, first, last):
        cell = by_hour.setdefault(item["sk"], dict.fromkeys(tallies.OUTCOMES, 0))
        for outcome in tallies.OUTCOMES:
            cell[outcome] += int(item.get(outcome, 0))
    this_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hour_starts = [this_hour - timedelta(hours=back) for back in range(HOURS - 1, -1, -1)]
    hours = Series(
        labels=[start.strftime("%H:00") for start in hour_starts],
        counts={
            outcome: [by_hour.get(tallies.hour_key(start), {}).get(outcome, 0) for start in hour_starts]
            for outcome in tallies.OUTCOMES
        },
    )
    today = this_hour.date()
    day_list = [today - timedelta(days=back) for back in range(DAYS - 1, -1, -1)]
    per_day: dict[Any, dict[str, int]] = {day: dict.fromkeys(tallies.OUTCOMES, 0) for day in day_list}
    for key, cell in by_hour.items():
        day = tallies.hour_of(key).date()
        if day in per_day:
            for outcome, count in cell.items():
                per_day[day][outcome] += count
    days = Series(
        labels=[day.strftime("%a %d") for day in day_list],
        counts={outcome: [per_day[day][outcome] for day in day_list] for outcome in tallies.OUTCOMES},
    )
    return hours, days


def endpoint_health(services: WebhookServices, tenant: Tenant) -> list[EndpointHealth]:
    """Per endpoint, over its newest `DELIVERY_WINDOW` deliveries: how many succeeded and failed, and the
    oldest not delivered yet (PENDING, or FAILED: retrying, or waiting for a recover)."""
    endpoints, _ = services.db.list_endpoints(tenant.tenant_id, MAX_ENDPOINTS, None)
    health = []
    for endpoint in sorted(endpoints, key=lambda item: item["endpointId"], reverse=True):
        deliveries, more = services.db.list_deliveries(endpoint["endpointId"], None, DELIVERY_WINDOW, None)
        delivered = sum(1 for d in deliveries if d["status"] == "SUCCEEDED")
        failed = sum(1 for d in deliveries if d["status"] in ("FAILED", "EXHAUSTED"))
        waiting = [d["createdAt"] for d in deliveries if d["status"] in ("PENDING", "FAILED")]
        health.append(
            EndpointHealth(
                endpoint=endpoint_view(endpoint),
                delivered=delivered,
                failed=failed,
                window=len(deliveries),
                window_full=more is not None,
                oldest_undelivered=min(waiting, key=from_iso) if waiting else None,
            )
        )
    return health
