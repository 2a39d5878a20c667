"""One attempt of one delivery, driven by its queue message: sign, POST, record, and on failure hide the
message until the next attempt is due (its session's later events to the endpoint wait behind it).

Before a byte is sent, one transaction records the attempt as started (as it must stay if the attempt
never finishes), proves the endpoint is still at the version this attempt uses (by the copy of its version
in the delivery's shard of the log, which every change of the endpoint writes; else the attempt decides
again on the endpoint as it is now: deleted, disabled, another URL), and checks that no earlier delivery of
its group still waits. A message first sent by the fan-out carries the event, so its first attempt reads
nothing else (the endpoint only when this environment has no copy); any other message (a retry, a resend,
one the scheduled job sent again) reads the delivery first, so a delivery that already SUCCEEDED is never
sent again."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from checkout_core.clock import from_epoch, to_iso
from checkout_core.errors import ConcurrentUpdate
from checkout_core.models import DeliveryStatus
from checkout_core.observability import count_transition, logger
from checkout_core.webhooks import schedule
from checkout_core.webhooks.deliveries import NOT_SENT_WHILE_DISABLED
from checkout_core.webhooks.endpoints import expired_secrets, signing_secrets, without_expired_secrets
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.signing import headers
from checkout_core.webhooks.store import EndpointMoved, GroupBlocked, Stale

_endpoint_copies: dict[str, dict[str, Any]] = {}
WAITING = ("deliveryShard", "checkAt")
START_ATTEMPTS = 3
INTERRUPTED = "no outcome recorded: the attempt was interrupted"


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
        event = json.loads(first["body"])
        delivery: dict[str, Any] | None = {
            "endpointId": endpoint_id,
            "deliveryId": delivery_id,
            "tenant": tenant_id,
            "eventId": first["eventId"],
            "body": first["body"],
            "retries": first["retries"],
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "sessionId": event.get("sessionId"),
            "sequence": int(event.get("sequence") or 0),
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
    for _ in range(START_ATTEMPTS):
        if endpoint is None:  # deleted: its pending deliveries are dropped
            _endpoint_copies.pop(endpoint_id, None)
            services.db.drop_delivery(delivery)
            return True
        if endpoint["status"] != "ENABLED":
            _record(
                services,
                delivery,
                {"status": DeliveryStatus.FAILED.value, "lastError": NOT_SENT_WHILE_DISABLED},
            )
            return True
        started, remove, still_waiting = _if_interrupted(services, delivery, now)
        try:
            services.db.start_attempt(delivery, started, remove, endpoint, still_waiting)
            break
        except EndpointMoved as moved:  # changed since this copy was read: decide on it as it is now
            endpoint = moved.endpoint
            if endpoint is not None:
                _remember(endpoint)
        except GroupBlocked:
            # An earlier event of the session has not reached the endpoint yet. This message is let go; the
            # delivery keeps waiting, and the scheduled job sends its group again in sequence order.
            return True
        except Stale:
            return True  # someone else moved it on (a resend, a duplicate message): theirs stands
    else:
        raise ConcurrentUpdate()
    delivery = {**{k: v for k, v in delivery.items() if k not in remove}, **started}
    signed = headers(signing_secrets(endpoint, now), delivery["eventId"], now, delivery["body"])
    answer = services.send(
        endpoint["url"], signed, delivery["body"], services.settings.webhook_allow_private_urls
    )
    outcome = schedule.outcome_of(answer.status)
    attempts = int(delivery["attempts"])
    record: dict[str, Any] = {"lastAttemptAt": to_iso(services.clock())}
    remove_after: list[str] = ["lastError"]
    if answer.status is not None:
        record["lastResponseStatus"] = answer.status
    delay = None
    if outcome is schedule.Outcome.SUCCEEDED:
        record["status"] = DeliveryStatus.SUCCEEDED.value
    else:
        record["lastError"] = answer.error or f"answered {answer.status}"
        remove_after = []
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
    recorded = _record(services, delivery, record, keep_waiting=delay is not None, also_remove=remove_after)
    succeeded = outcome is schedule.Outcome.SUCCEEDED
    count_transition("WebhookAttemptSucceeded" if succeeded else "WebhookAttemptFailed")
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


def _if_interrupted(
    services: WebhookServices, delivery: dict[str, Any], now: int
) -> tuple[dict[str, Any], list[str], bool]:
    """What an attempt records before it sends: the attempt counted, and the delivery as it must stay if
    the attempt never finishes (the function dies, times out): failed, with its next attempt scheduled or
    EXHAUSTED. The attempt's outcome replaces it. Returns (set, remove, still waiting)."""
    attempts = int(delivery["attempts"]) + 1
    retries = delivery.get("retries", True)
    started: dict[str, Any] = {
        "attempts": attempts,
        "lastAttemptAt": to_iso(services.clock()),
        "lastError": INTERRUPTED,
    }
    delay = schedule.retry_delay(attempts, rng=services.rng) if retries else None
    if delay is not None:
        started.update(
            status=DeliveryStatus.FAILED.value,
            nextAttemptAt=now + delay,
            checkAt=now + delay + services.settings.webhook_requeue_grace_seconds,
        )
        return started, ["lastResponseStatus"], True
    started["status"] = (DeliveryStatus.EXHAUSTED if retries else DeliveryStatus.FAILED).value
    return started, ["lastResponseStatus", "nextAttemptAt", *WAITING], False


def _record(
    services: WebhookServices,
    delivery: dict[str, Any],
    changes: dict[str, Any],
    keep_waiting: bool = False,
    also_remove: Sequence[str] = (),
) -> bool:
    remove = [*also_remove] if keep_waiting else ["nextAttemptAt", *WAITING, *also_remove]
    try:
        services.db.update_delivery(delivery, changes, remove, waiting=None if keep_waiting else False)
    except Stale:
        return False  # someone else moved it on (a resend, a duplicate message): theirs stands
    return True


def _endpoint_health(
    services: WebhookServices, endpoint: dict[str, Any], outcome: schedule.Outcome, now: int
) -> None:
    """410 disables at once; five days of nothing but failures disables; a success ends a failing streak.
    A secret rotated out more than 24 h ago is dropped in the same write (or alone, if nothing else)."""
    tenant_id, endpoint_id = endpoint["tenantId"], endpoint["endpointId"]
    changes: dict[str, Any] = {}
    remove: list[str] = []
    if outcome is schedule.Outcome.SUCCEEDED:
        if "failingSince" in endpoint:
            remove = ["failingSince"]
    elif outcome is schedule.Outcome.GONE:
        changes = {"status": "DISABLED", "disabledReason": "GONE"}
    elif "failingSince" not in endpoint:
        changes = {"failingSince": now}
    elif schedule.should_disable_failing(int(endpoint["failingSince"]), now):
        changes = {"status": "DISABLED", "disabledReason": "FAILING"}
    if endpoint["status"] != "ENABLED" and "status" in changes:
        changes = {}
    if expired_secrets(endpoint, now):
        kept = without_expired_secrets(endpoint, now)
        if kept:
            changes["previousSecrets"] = kept
        else:
            remove.append("previousSecrets")
    if not changes and not remove:
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
