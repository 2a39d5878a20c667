"""Deliveries: one per (event, endpoint). Their items, their messages, their log, resend and recover.

Status: PENDING (not tried yet, or queued again by resend / recover), SUCCEEDED, FAILED (the last attempt
failed; `nextAttemptAt` says whether another is scheduled) and EXHAUSTED (the schedule ran out). A delivery
that waits for a message carries `checkAt`; terminal ones do not."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from checkout_core.clock import from_epoch, from_iso, to_iso, uuid7_from
from checkout_core.errors import ConcurrentUpdate, DeliveryNotFound, InvalidRequest
from checkout_core.models import Delivery, DeliveryList, DeliveryStatus, RecoverResponse, Tenant
from checkout_core.webhooks.queue import Message
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.store import Stale, delivery_key, delivery_shard

RETENTION_SECONDS = 30 * 24 * 3600
RECOVER_PER_CALL = 100  # the oldest ones; a second call recovers the next
# A call stops marking once this much time has passed, well inside the function's timeout (a write each:
# on a slow table, 100 of them could outlast the call, which API Gateway would answer 502 after them all).
RECOVER_BUDGET_SECONDS = 3.0
NOT_SENT_WHILE_DISABLED = "endpoint disabled; recorded, not sent"


def delivery_id_for(event_id: str, endpoint_id: str, occurred_at: str) -> str:
    """The same event and endpoint always make the same id (a repeated fan-out writes nothing new); it
    sorts by the event's time, so the log lists newest first by its key."""
    entropy = hashlib.sha256(f"{event_id}|{endpoint_id}".encode()).digest()
    return uuid7_from(int(from_iso(occurred_at).timestamp() * 1000), entropy)


def group_of(endpoint_id: str, event: dict[str, Any]) -> str:
    """The FIFO message group: a session's events to one endpoint go in order; a test ping is alone."""
    return f"{endpoint_id}#{event.get('sessionId') or event['eventId']}"


def new_delivery(
    services: WebhookServices, tenant_id: str, endpoint: dict[str, Any], event: dict[str, Any], body: str
) -> dict[str, Any]:
    now = services.now
    delivery_id = delivery_id_for(event["eventId"], endpoint["endpointId"], event["occurredAt"])
    item: dict[str, Any] = {
        **delivery_key(endpoint["endpointId"], delivery_id),
        "entity": "DELIVERY",
        # `tenant`, not `tenantId`: with `sessionId` that would put it in the sessions' byTenantKeys index
        "tenant": tenant_id,
        "deliveryId": delivery_id,
        "endpointId": endpoint["endpointId"],
        "eventId": event["eventId"],
        "type": event["type"],
        "sequence": int(event.get("sequence") or 0),
        "groupKey": group_of(endpoint["endpointId"], event),
        "body": body,
        "attempts": 0,
        "retries": event["type"] != "webhook.test",
        "createdAt": to_iso(services.clock()),
        "ttl": now + RETENTION_SECONDS,
    }
    if event.get("sessionId"):
        item["sessionId"] = event["sessionId"]
    if endpoint["status"] == "ENABLED":
        item.update(
            status=DeliveryStatus.PENDING.value,
            nextAttemptAt=now,
            deliveryShard=delivery_shard(delivery_id),
            checkAt=now + services.settings.webhook_requeue_grace_seconds,
        )
    else:
        item.update(status=DeliveryStatus.FAILED.value, lastError=NOT_SENT_WHILE_DISABLED)
    return item


def first_message(delivery: dict[str, Any], endpoint_version: int) -> Message:
    """The message of a delivery just written: it carries what the first attempt needs, so that attempt
    reads nothing but (when its cached copy is older than `endpoint_version`) the endpoint."""
    return Message(
        group=delivery["groupKey"],
        deduplication_id=delivery["deliveryId"],
        body={
            "tenantId": delivery["tenant"],
            "endpointId": delivery["endpointId"],
            "deliveryId": delivery["deliveryId"],
            "endpointVersion": endpoint_version,
            "first": {
                "eventId": delivery["eventId"],
                "body": delivery["body"],
                "retries": delivery["retries"],
            },
        },
    )


def message_again(delivery: dict[str, Any], reason: str, own_group: bool = False) -> Message:
    """A message for a delivery already tried or queued: its attempt reads the delivery first. In a group
    of its own it does not wait behind a message of its group hidden until a later retry (the attempt's
    check still keeps the session's order)."""
    return Message(
        group=f"{delivery['groupKey']}#{reason}" if own_group else delivery["groupKey"],
        deduplication_id=f"{delivery['deliveryId']}.{reason}",
        body={
            "tenantId": delivery["tenant"],
            "endpointId": delivery["endpointId"],
            "deliveryId": delivery["deliveryId"],
        },
    )


def delivery_view(item: dict[str, Any], behind: dict[str, Any] | None = None) -> Delivery:
    """The API's view of a delivery item; `behind`: the session's earlier delivery it waits for."""
    next_attempt = item.get("nextAttemptAt")
    if next_attempt is not None and behind is not None:
        next_attempt = max(int(next_attempt), int(behind.get("nextAttemptAt", next_attempt)))
    next_attempt_at = None
    if next_attempt is not None and "checkAt" in item:  # due now at the earliest when it was made
        next_attempt_at = to_iso(max(from_epoch(next_attempt), from_iso(item["createdAt"])))
    return Delivery(
        deliveryId=item["deliveryId"],
        endpointId=item["endpointId"],
        eventId=item["eventId"],
        type=item["type"],
        sessionId=item.get("sessionId"),
        status=item["status"],
        attempts=item["attempts"],
        lastAttemptAt=item.get("lastAttemptAt"),
        lastResponseStatus=item.get("lastResponseStatus"),
        lastError=item.get("lastError"),
        nextAttemptAt=next_attempt_at,
        waitingFor=behind["deliveryId"] if behind is not None else None,
        createdAt=item["createdAt"],
    )


def list_deliveries(
    services: WebhookServices,
    tenant: Tenant,
    endpoint_id: str,
    status: DeliveryStatus | None,
    limit: int,
    cursor: str | None,
) -> DeliveryList:
    from checkout_core.webhooks.endpoints import owned_endpoint

    owned_endpoint(services, tenant, endpoint_id)
    items, next_cursor = services.db.list_deliveries(
        endpoint_id, status.value if status else None, limit, cursor
    )
    groups: dict[str, list[dict[str, Any]]] = {}  # one query per session on the page, if any waits

    def members(group_key: str) -> list[dict[str, Any]]:
        if group_key not in groups:
            groups[group_key] = services.db.group_members(group_key)
        return groups[group_key]

    return DeliveryList(
        data=[delivery_view(item, _waiting_behind(members, item)) for item in items], nextCursor=next_cursor
    )


def _waiting_behind(
    members: Callable[[str], list[dict[str, Any]]], item: dict[str, Any]
) -> dict[str, Any] | None:
    """The session's earliest unfinished delivery to the endpoint, when it is earlier than `item`: the
    queue's message group holds `item` back until that one has SUCCEEDED or is EXHAUSTED."""
    if "checkAt" not in item or not item.get("sessionId"):
        return None
    unfinished = [m for m in members(item["groupKey"]) if "checkAt" in m]
    first = min(unfinished, key=lambda m: (int(m["sequence"]), m["deliveryId"]), default=None)
    if first is None or first["deliveryId"] == item["deliveryId"]:
        return None
    if (int(first["sequence"]), first["deliveryId"]) > (int(item["sequence"]), item["deliveryId"]):
        return None
    return first


def queue_again(
    services: WebhookServices, delivery: dict[str, Any], reason: str, own_group: bool = False
) -> dict[str, Any]:
    """Marks a delivery PENDING for one more attempt (no automatic retries after it) and sends its message.
    It is sent only after the session's earlier deliveries to the endpoint, as every delivery is."""
    queued, message = mark_pending(services, delivery, reason, own_group)
    services.messages.send([message])
    return queued


def mark_pending(
    services: WebhookServices, delivery: dict[str, Any], reason: str, own_group: bool = False
) -> tuple[dict[str, Any], Message]:
    """The delivery marked PENDING for one more attempt, and the message to send for it."""
    now = services.now
    changes = {
        "status": DeliveryStatus.PENDING.value,
        "retries": False,
        "nextAttemptAt": now,
        "deliveryShard": delivery_shard(delivery["deliveryId"]),
        "checkAt": now + services.settings.webhook_requeue_grace_seconds,
    }
    services.db.update_delivery(delivery, changes, waiting=True)
    return {**delivery, **changes}, message_again(delivery, f"{reason}{now}", own_group)


def resend(services: WebhookServices, tenant: Tenant, endpoint_id: str, delivery_id: str) -> Delivery:
    from checkout_core.webhooks.endpoints import owned_endpoint

    owned_endpoint(services, tenant, endpoint_id)
    for _ in range(5):
        delivery = services.db.get_delivery(endpoint_id, delivery_id)
        if delivery is None or delivery.get("tenant") != tenant.tenant_id:
            raise DeliveryNotFound(delivery_id)
        try:
            return delivery_view(queue_again(services, delivery, "resend", own_group=True))
        except Stale:
            continue
    raise ConcurrentUpdate()


def recover(services: WebhookServices, tenant: Tenant, endpoint_id: str, since: str) -> RecoverResponse:
    """Sends again the FAILED or EXHAUSTED deliveries created since `since` (at most 30 days ago), oldest
    first, so each session's events go out in their order: at most RECOVER_PER_CALL of them (the answer's
    `recovered` says how many, fewer when RECOVER_BUDGET_SECONDS ran out; a second call takes the next ones,
    as those are PENDING now)."""
    from checkout_core.webhooks.endpoints import owned_endpoint

    try:
        moment = from_iso(since)
    except ValueError as exc:
        raise InvalidRequest("since must be an ISO 8601 time with Z or an offset.", "since") from exc
    # Nothing older is kept: an earlier time means the oldest delivery there is.
    moment = max(moment, services.clock() - timedelta(seconds=RETENTION_SECONDS))
    owned_endpoint(services, tenant, endpoint_id)
    lowest = uuid7_from(int(moment.timestamp() * 1000), bytes(10))
    failed = sorted(
        services.db.failed_deliveries_since(endpoint_id, lowest, RECOVER_PER_CALL),
        key=lambda item: (item["groupKey"], item["sequence"], item["deliveryId"]),
    )
    messages: list[Message] = []
    stop_at = time.monotonic() + RECOVER_BUDGET_SECONDS
    for delivery in failed:  # in each group's order: stopping early leaves only later ones for next time
        if messages and time.monotonic() > stop_at:  # at least one a call: calls again always progress
            break
        try:
            messages.append(mark_pending(services, delivery, "recover")[1])
        except Stale:
            continue  # changed meanwhile (an attempt, a resend): it is not waiting to be recovered any more
    services.messages.send(messages)  # ten to a call, in order
    return RecoverResponse(endpointId=endpoint_id, since=to_iso(moment), recovered=len(messages))


def body_of(event: dict[str, Any]) -> str:
    """The request body: the Event JSON exactly as the timeline gives it."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
