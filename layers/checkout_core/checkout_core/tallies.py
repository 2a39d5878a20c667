"""What the console's overview reads without reading the sessions: per-tenant hourly counters and two
sparse per-tenant lists, both moved by the write that makes the change they record.

- **Counters.** A change whose events include `session.created`, `.completed`, `.cancelled` or `.expired`
  adds one to that outcome in the tenant's counter item for the event's hour, in the same
  TransactWriteItems. A tenant's counters are spread over `TALLY_SHARDS` items per hour (by session id),
  so no counter item takes more than a shard's share of a large tenant's writes, and two writes of
  different sessions seldom meet on one item. Seven days of hours are one Query per shard: the overview
  costs the same number of reads at a thousand sessions as at a million. Counter items expire (TTL) after
  eight days.
- **Watch lists.** A session waiting on a pending cancellation carries `pendingTenant` / `pendingSince`
  (index `byTenantPending`); a session that raised `session.attention_required` carries `attentionTenant`
  / `attentionSince` (index `byTenantAttention`). Both are sparse: only the few sessions that need a look
  are in them, and the overview reads a bounded page of each, oldest first. A cancellation that finishes
  leaves both lists; a refund made leaves the attention list.

| item | pk | sk |
|---|---|---|
| counter | `STATS#<tenantId>#<shard>` | `HOUR#<yyyy-mm-ddThh>`: created, completed, cancelled, expired |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

TALLY_SHARDS = 8
COUNTER_RETENTION = timedelta(days=8)
OUTCOMES = ("created", "completed", "cancelled", "expired")
COUNTED_EVENTS = {f"session.{outcome}": outcome for outcome in OUTCOMES}
PENDING_KEYS = ("pendingTenant", "pendingSince")
ATTENTION_KEYS = ("attentionTenant", "attentionSince")


def tally_shard(session_id: str) -> int:
    return int(session_id.replace("-", "")[-8:], 16) % TALLY_SHARDS


def counter_pk(tenant_id: str, shard: int) -> str:
    return f"STATS#{tenant_id}#{shard}"


def hour_key(moment: datetime) -> str:
    return "HOUR#" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def hour_of(key: str) -> datetime:
    return datetime.strptime(key.removeprefix("HOUR#"), "%Y-%m-%dT%H").replace(tzinfo=UTC)


def _moment(event: dict[str, Any]) -> datetime:
    text = str(event["occurredAt"]).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def counter_moves(
    tenant_id: str, session_id: str, events: Sequence[dict[str, Any]]
) -> list[tuple[dict[str, str], dict[str, int], int]]:
    """(key, {outcome: +n}, ttl) of each counter item the events move; none for events not counted."""
    by_hour: dict[str, dict[str, int]] = {}
    expiry: dict[str, int] = {}
    for event in events:
        outcome = COUNTED_EVENTS.get(event.get("type", ""))
        if outcome is None:
            continue
        moment = _moment(event)
        key = hour_key(moment)
        counts = by_hour.setdefault(key, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        expiry[key] = int((hour_of(key) + COUNTER_RETENTION).timestamp())
    pk = counter_pk(tenant_id, tally_shard(session_id))
    return [({"pk": pk, "sk": key}, counts, expiry[key]) for key, counts in by_hour.items()]


@dataclass
class WatchChange:
    set: dict[str, Any] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)


def watch_changes(tenant_id: str, session_id: str, events: Sequence[dict[str, Any]]) -> WatchChange:
    """How the events move the session on the tenant's watch lists (pending cancellations, attention)."""
    state: dict[str, Any] = {}
    for event in events:
        kind = event.get("type")
        since = int(_moment(event).timestamp()) if "occurredAt" in event else 0
        if kind == "session.cancellation_pending":
            state.update(pendingTenant=tenant_id, pendingSince=since)
        elif kind == "session.attention_required":
            state.update(attentionTenant=tenant_id, attentionSince=since)
        elif kind == "session.cancelled":
            state.update(dict.fromkeys((*PENDING_KEYS, *ATTENTION_KEYS)))
        elif kind == "transaction.refunded":
            state.update(dict.fromkeys(ATTENTION_KEYS))
    return WatchChange(
        set={name: value for name, value in state.items() if value is not None},
        remove=[name for name, value in state.items() if value is None],
    )


def hours_back(now: datetime, hours: int) -> tuple[str, str]:
    """The first and last hour keys of the `hours` hours up to and including now's."""
    last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour_key(last - timedelta(hours=hours - 1)), hour_key(last)
