"""The scheduled safety net: a delivery whose `checkAt` has passed untouched lost its message (a crash
between writing a delivery and sending it, a local restart that emptied the queue). Its group — the
session's deliveries to that endpoint — is sent again in sequence order; deliveries that only wait behind
a head that is still alive are given the head's check time instead."""

from __future__ import annotations

import contextlib
from typing import Any

from checkout_core.observability import logger
from checkout_core.webhooks.deliveries import message_again
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.store import Stale, delivery_key

PAGE_SIZE = 100


def requeue_due(services: WebhookServices) -> int:
    """Returns how many deliveries were sent again."""
    now = services.now
    grace = services.settings.webhook_requeue_grace_seconds
    seen_groups: set[str] = set()
    requeued = 0
    for due in list(services.db.due_deliveries(now, PAGE_SIZE)):
        group = due["groupKey"]
        if group in seen_groups:
            continue
        seen_groups.add(group)
        waiting = sorted(
            (m for m in services.db.group_members(group) if "checkAt" in m),
            key=lambda m: (m["sequence"], m["deliveryId"]),
        )
        if not waiting:
            continue
        head = waiting[0]
        if int(head["checkAt"]) > now:
            for member in waiting[1:]:
                if int(member["checkAt"]) <= now:
                    _move(services, member, int(head["checkAt"]))
            continue
        services.messages.send([message_again(member, f"requeue{now}") for member in waiting])
        for member in waiting:
            _move(services, member, max(int(member.get("nextAttemptAt", now)), now) + grace)
        requeued += len(waiting)
    if requeued:
        logger.info("webhook deliveries sent again", extra={"deliveries": requeued})
    return requeued


def _move(services: WebhookServices, member: dict[str, Any], check_at: int) -> None:
    # Stale: touched meanwhile, so it has a newer check time of its own.
    with contextlib.suppress(Stale):
        services.db.move_check(
            delivery_key(member["endpointId"], member["deliveryId"]), int(member["checkAt"]), check_at
        )
