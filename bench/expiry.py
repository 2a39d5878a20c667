"""Items read by one expiry sweep with 100 due sessions, in a table of N and of 10N sessions."""

from __future__ import annotations

import os
import time
from typing import Any

from bench import harness

DUE = 100
# Of the sessions that are not due: most are OPEN and expire later, the rest have left OPEN.
OTHER_STATUS_SHARE = 0.2
OTHER_STATUSES = ("COMPLETED", "CANCELLED", "EXPIRED", "PENDING_CANCELLATION")


def _session_item(session_id: str, status: str, expires_at: int, now: int, serializer: Any) -> dict[str, Any]:
    """A session item of the documented shape (docs/data-model.md), in DynamoDB's wire format."""
    from checkout_core.clock import from_epoch, to_iso
    from checkout_core.repository import pending_level_pk, shard_of

    created = to_iso(from_epoch(now - 600))
    item: dict[str, Any] = {
        "pk": f"SESSION#{session_id}",
        "sk": "SESSION",
        "entity": "SESSION",
        "sessionId": session_id,
        "tenantId": "demo",
        "status": status,
        "amount": 5000,
        "currency": "USD",
        "referenceId": f"order-{session_id[-8:]}",
        "metadata": {},
        "returnUrl": "https://example.com/return",
        "createdAt": created,
        "updatedAt": created,
        "expiresAt": expires_at,
        "version": 1,
        "seq": 1,
        "inFlight": 0,
        "txCount": 0,
        "transactions": {},
    }
    if status == "OPEN":
        item["openShard"] = f"OPEN#{shard_of(session_id)}"
    elif status == "PENDING_CANCELLATION":
        item["pendingShard"] = f"PENDING#{shard_of(session_id)}"
        item["pendingLevel"] = pending_level_pk(session_id)
        item["recheckAt"] = now + 3600
        item["inFlight"] = 1
    elif status == "COMPLETED":
        item["completedAt"] = created
    elif status == "CANCELLED":
        item["cancelledAt"] = created
    elif status == "EXPIRED":
        item["expiredAt"] = created
    return {key: serializer.serialize(value) for key, value in item.items()}


def _fill(client: Any, table: str, total: int, due: int) -> None:
    """`due` OPEN sessions past expiresAt, and `total - due` that are not due."""
    from boto3.dynamodb.types import TypeSerializer

    from checkout_core.clock import uuid7

    serializer = TypeSerializer()
    now = int(time.time())
    others = int((total - due) * OTHER_STATUS_SHARE)
    items = []
    for index in range(total):
        if index < due:
            status, expires_at = "OPEN", now - 60 - index
        elif index < due + others:
            status, expires_at = OTHER_STATUSES[index % len(OTHER_STATUSES)], now - 3600 + index % 7200
        else:
            status, expires_at = "OPEN", now + 60 + index % 86_000
        items.append(_session_item(uuid7(), status, expires_at, now, serializer))
    # The pending-cancellation counters, as the locks of those sessions would have moved them, in a table
    # that has seen a few hundred cancellations wait (every counter made, most back at 0).
    from checkout_core.repository import PENDING_LEVEL_PKS, level_key

    levels = dict.fromkeys(PENDING_LEVEL_PKS, 0)
    for item in items:
        if "pendingLevel" in item:
            pk = item["pendingLevel"]["S"]
            levels[pk] = levels.get(pk, 0) + 1
    for pk, count in levels.items():
        level = {**level_key(pk), "sessions": count}
        items.append({key: serializer.serialize(value) for key, value in level.items()})
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _sweep_items_read(total: int) -> tuple[int, dict[str, int], dict[str, Any]]:
    from moto import mock_aws

    with mock_aws():
        harness.reset_caches()
        harness.create_tables()
        client = harness.domain_dynamodb()
        _fill(client, os.environ["TABLE_NAME"], total, DUE)
        handler = harness.load_handler("expire_sessions")
        context = harness.LambdaContext(function_name="expire_sessions", timeout_seconds=300)
        with harness.counting(client) as counter:
            report = handler({}, context)
        if counter.errors:
            raise AssertionError(f"DynamoDB calls failed during the sweep: {counter.errors}")
        if report["expired"] != DUE:
            raise AssertionError(f"the sweep expired {report['expired']} sessions, {DUE} were due: {report}")
        return counter.items_read, dict(counter.calls), report


def measure(n: int) -> dict[str, Any]:
    small, small_calls, _ = _sweep_items_read(n)
    large, large_calls, _ = _sweep_items_read(10 * n)
    return {
        "table_1x": small,
        "table_10x": large,
        "due": DUE,
        "n": n,
        "other_share": OTHER_STATUS_SHARE,
        "calls_1x": small_calls,
        "calls_10x": large_calls,
    }
