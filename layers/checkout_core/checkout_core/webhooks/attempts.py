"""One attempt of one delivery, driven by its queue message: sign, POST, record, and on failure hide the
message until the next attempt is due (its session's later events to the endpoint wait behind it).

A message first sent by the fan-out carries the event and the endpoint's version: its first attempt reads
nothing but the endpoint, and that only when this environment's copy is older. Any other message (a retry,
a resend, one the scheduled job sent again) reads the delivery first, so a delivery that already
SUCCEEDED is never sent again."""

from __future__ import annotations

import math
from typing import Any

from checkout_core.clock import from_epoch, to_iso
from checkout_core.models import DeliveryStatus
from checkout_core.observability import logger
from checkout_core.webhooks import schedule
from checkout_core.webhooks.deliveries import NOT_SENT_WHILE_DISABLED
from checkout_core.webhooks.endpoints import signing_secrets
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.signing import headers
from checkout_core.webhooks.store import Stale

_endpoint_copies: dict[str, dict[str, Any]] = {}
WAITING = ("deliveryShard", "checkAt")


def _endpoint(
    services: WebhookServices, tenant_id: str, endpoint_id: str, version: int
) -> dict[str, Any] | None:
    copy = _endpoint_copies.get(endpoint_id)
    if copy is not None and copy["version"] >= version:
        return copy
    endpoint = services.db.get_endpoint(tenant_id, endpoint_id)
    if endpoint is not None:
        _endpoint_copies[endpoint_id] = endpoint
    return endpoint


def _remember(endpoint: dict[str, Any]) -> None:
    _endpoint_copies[endpoint["endpointId"]] = endpoint


def attempt(services: WebhookServices, message: dict[str, Any], receive_count: int, receipt: str) -> bool:
    """True: the message is done (delete it). False: it was hidden until the delivery's next attempt."""
    now = services.now
    tenant_id, endpoint_id, delivery_id = message["tenantId"], message["endpointId"], message["deliveryId"]
    first = message.get("first")
    if first is not None and receive_count == 1:
        endpoint = _endpoint(services, tenant_id, endpoint_id, int(message.get("endpointVersion", 0)))
        delivery: dict[str, Any] | None = {
            "endpointId": endpoint_id,
            "deliveryId": delivery_id,
            "tenant": tenant_id,
            "eventId": first["eventId"],
            "body": first["body"],
            "retries": first["retries"],
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
        }
    else:
        endpoint, delivery = services.db.endpoint_and_delivery(tenant_id, endpoint_id, delivery_id)
        if endpoint is not None:
            _remember(endpoint)
        if delivery is None or "checkAt" not in delivery:
            return True  # gone, or nothing waits for a message (SUCCEEDED, EXHAUSTED, given up)
        due = int(delivery.get("nextAttemptAt", 0))
        if due > now:
            services.messages.hide(receipt, due - now)
            return False
    assert delivery is not None
    if endpoint is None:  # deleted: its pending deliveries are dropped
        services.db.drop_delivery(endpoint_id, delivery_id)
        return True
    if endpoint["status"] != "ENABLED":
        _record(
            services, delivery, {"status": DeliveryStatus.FAILED.value, "lastError": NOT_SENT_WHILE_DISABLED}
        )
        return True
    signed = headers(signing_secrets(endpoint, now), delivery["eventId"], now, delivery["body"])
    answer = services.send(
        endpoint["url"], signed, delivery["body"], services.settings.webhook_allow_private_urls
    )
    outcome = schedule.outcome_of(answer.status)
    attempts = int(delivery["attempts"]) + 1
    record: dict[str, Any] = {"attempts": attempts, "lastAttemptAt": to_iso(services.clock())}
    if answer.status is not None:
        record["lastResponseStatus"] = answer.status
    delay = None
    if outcome is schedule.Outcome.SUCCEEDED:
        record["status"] = DeliveryStatus.SUCCEEDED.value
    else:
        record["lastError"] = answer.error or f"answered {answer.status}"
        if outcome is schedule.Outcome.FAILED and delivery.get("retries", True):
            delay = schedule.retry_delay(attempts, answer.status, answer.retry_after, services.rng)
        if delay is None and outcome is schedule.Outcome.FAILED and delivery.get("retries", True):
            record["status"] = DeliveryStatus.EXHAUSTED.value
        else:
            record["status"] = DeliveryStatus.FAILED.value
    if delay is not None:
        delay = math.ceil(services.clock().timestamp() + delay) - now  # never earlier than asked
        record.update(
            nextAttemptAt=now + delay, checkAt=now + delay + services.settings.webhook_requeue_grace_seconds
        )
    recorded = _record(services, delivery, record, keep_waiting=delay is not None)
    _endpoint_health(services, endpoint, outcome, now)
    if outcome is not schedule.Outcome.SUCCEEDED:  # one line per failed attempt
        exhausted = record["status"] == DeliveryStatus.EXHAUSTED.value
        logger.warning(
            "webhook delivery exhausted" if exhausted else "webhook delivery attempt failed",
            extra={
                "endpointId": endpoint_id,
                "deliveryId": delivery_id,
                "eventId": delivery["eventId"],
                "tenantId": tenant_id,
                "attempt": attempts,
                "status": answer.status,
                "error": record["lastError"],
                "nextAttemptAt": to_iso(from_epoch(now + delay)) if delay is not None else None,
            },
        )
    if delay is not None and recorded:
        services.messages.hide(receipt, delay)
        return False
    return True


def _record(
    services: WebhookServices, delivery: dict[str, Any], changes: dict[str, Any], keep_waiting: bool = False
) -> bool:
    remove = [] if keep_waiting else ["nextAttemptAt", *WAITING]
    try:
        services.db.update_delivery(delivery, changes, remove)
    except Stale:
        return False  # someone else moved it on (a resend, a duplicate message): theirs stands
    return True


def _endpoint_health(
    services: WebhookServices, endpoint: dict[str, Any], outcome: schedule.Outcome, now: int
) -> None:
    """410 disables at once; five days of nothing but failures disables; a success ends a failing streak."""
    tenant_id, endpoint_id = endpoint["tenantId"], endpoint["endpointId"]
    changes: dict[str, Any] = {}
    remove: list[str] = []
    if outcome is schedule.Outcome.SUCCEEDED:
        if "failingSince" not in endpoint:
            return
        remove = ["failingSince"]
    elif outcome is schedule.Outcome.GONE:
        changes = {"status": "DISABLED", "disabledReason": "GONE"}
    elif "failingSince" not in endpoint:
        changes = {"failingSince": now}
    elif schedule.should_disable_failing(int(endpoint["failingSince"]), now):
        changes = {"status": "DISABLED", "disabledReason": "FAILING"}
    else:
        return
    if endpoint["status"] != "ENABLED" and "status" in changes:
        return
    try:
        updated = services.db.update_endpoint(
            endpoint,
            {**changes, "updatedAt": to_iso(services.clock())},
            remove,
            bump_tenant="status" in changes,  # the fan-out must see a disabled endpoint at once
        )
    except Stale:
        return  # changed meanwhile (by a person or another attempt): the next attempt sees the new state
    _remember(updated)
    if changes.get("status") == "DISABLED":
        logger.warning(
            "webhook endpoint disabled",
            extra={"endpointId": endpoint_id, "tenantId": tenant_id, "reason": changes["disabledReason"]},
        )
