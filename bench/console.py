"""DynamoDB calls of one console overview page, with N and with 10N sessions in the tenant.

The console handler in process against moto, signed in by its own cookie. The tenant's sessions are
written as the create path writes them: the session item, and its create counted in the hourly counter
item of its hour and shard (tallies.counter_moves, the same function the create transaction uses), over the
last seven days; a few are waiting on a pending cancellation or need attention (the sparse per-tenant
indexes), and the tenant has two webhook endpoints. The overview must cost the same number of calls at both
sizes, and never a Scan.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from bench import harness

TENANT = "demo"
PENDING = 5
ATTENTION = 2
ENDPOINTS = 2


def _items(total: int, now: int) -> list[dict[str, Any]]:
    from checkout_core import tallies
    from checkout_core.clock import from_epoch, to_iso, uuid7
    from checkout_core.repository import reference_partition

    sessions: list[dict[str, Any]] = []
    counters: dict[tuple[str, str], Counter[str]] = {}
    ttl: dict[tuple[str, str], int] = {}
    span = 6 * 24 * 3600  # within the overview's seven calendar days
    for index in range(total):
        session_id = uuid7()
        created_epoch = now - (index * 7919) % span
        created = to_iso(from_epoch(created_epoch))
        reference = f"order-{index}"
        item: dict[str, Any] = {
            "pk": f"SESSION#{session_id}",
            "sk": "SESSION",
            "entity": "SESSION",
            "sessionId": session_id,
            "tenantId": TENANT,
            "tenantReference": reference_partition(TENANT, reference),
            "status": "CANCELLED",
            "amount": 5000,
            "currency": "USD",
            "referenceId": reference,
            "metadata": {},
            "returnUrl": "https://example.com/return",
            "createdAt": created,
            "updatedAt": created,
            "cancelledAt": created,
            "expiresAt": created_epoch + 1800,
            "version": 2,
            "seq": 2,
            "inFlight": 0,
            "txCount": 0,
            "transactions": {},
        }
        if index < PENDING + ATTENTION:
            finalize_by = to_iso(from_epoch(created_epoch + 259_200))
            item.update(
                status="PENDING_CANCELLATION",
                inFlight=1,
                cancellation={
                    "reason": None,
                    "reasonType": None,
                    "referenceId": None,
                    "requestedAt": created,
                    "finalizedAt": None,
                    "finalizeBy": finalize_by,
                    "cancelledTransactionIds": [],
                    "pendingTransactionIds": ["t"],
                    "settledTransactionIds": [],
                    "attentionRequired": index >= PENDING,
                },
            )
            item["pendingTenant"], item["pendingSince"] = TENANT, created_epoch
            if index >= PENDING:
                item["attentionTenant"], item["attentionSince"] = TENANT, created_epoch
        sessions.append(item)
        events = [
            {"type": "session.created", "occurredAt": created},
            *([] if index < PENDING + ATTENTION else [{"type": "session.cancelled", "occurredAt": created}]),
        ]
        for key, counts, expires in tallies.counter_moves(TENANT, session_id, events):
            cell = counters.setdefault((key["pk"], key["sk"]), Counter())
            cell.update(counts)
            ttl[(key["pk"], key["sk"])] = expires
    counter_items = [
        {"pk": pk, "sk": sk, **dict(cell), "ttl": ttl[(pk, sk)]} for (pk, sk), cell in counters.items()
    ]
    return sessions + counter_items


def _write(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    wire = [{key: serializer.serialize(value) for key, value in item.items()} for item in items]
    for start in range(0, len(wire), 25):
        request = {table: [{"PutRequest": {"Item": item}} for item in wire[start : start + 25]]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _overview(total: int) -> tuple[int, dict[str, int], int]:
    from moto import mock_aws

    with mock_aws():
        harness.reset_caches()
        harness.create_tables()
        client = harness.domain_dynamodb()
        table = os.environ["TABLE_NAME"]
        _write(client, table, _items(total, int(time.time())))
        from checkout_core.api_keys import hash_api_key
        from checkout_core.console import access
        from checkout_core.context import get_context
        from checkout_core.models import CreateEndpointRequest, Tenant
        from checkout_core.repository import SessionRepository
        from checkout_core.settings import get_settings
        from checkout_core.webhooks.endpoints import create_endpoint
        from checkout_core.webhooks.services import WebhookServices

        SessionRepository(table).put_api_key(
            hash_api_key("sk_bench"), TENANT, ["example.com"], "2026-01-01T00:00:00Z"
        )
        services = WebhookServices(settings=replace(get_settings(), webhook_allow_private_urls=True))
        for index in range(ENDPOINTS):
            create_endpoint(
                services,
                Tenant(TENANT, frozenset()),
                CreateEndpointRequest(url=f"http://127.0.0.1:9/hooks/{index}"),
            )
        signed = access.sign_in(get_context(), "sk_bench")
        assert signed is not None
        event = harness.api_event(
            "GET",
            "/console",
            "/console",
            headers={"Cookie": f"{access.SESSION_COOKIE}={signed.cookie_value}"},
            authorizer=None,
        )
        handler = harness.load_handler("console")
        with harness.counting(client) as counter:
            response = handler(event, harness.LambdaContext(function_name="console"))
        if counter.errors:
            raise AssertionError(f"DynamoDB calls failed during the overview: {counter.errors}")
        if response["statusCode"] != 200 or "Cancellations pending" not in response["body"]:
            raise AssertionError(f"the overview answered {response['statusCode']}")
        if f">{total}<" not in response["body"]:
            raise AssertionError(f"the overview does not count the {total} sessions created this week")
        return counter.total, dict(counter.calls), counter.items_read


def measure(n: int) -> dict[str, Any]:
    small, small_calls, small_read = _overview(n)
    large, large_calls, large_read = _overview(10 * n)
    return {
        "n": n,
        "overview_calls_1x": small,
        "overview_calls_10x": large,
        "scans": small_calls.get("Scan", 0) + large_calls.get("Scan", 0),
        "calls_1x": small_calls,
        "calls_10x": large_calls,
        "items_read_1x": small_read,
        "items_read_10x": large_read,
    }
