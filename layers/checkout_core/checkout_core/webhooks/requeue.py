"""The scheduled safety net: a delivery whose `checkAt` has passed untouched lost its message (a crash
between writing a delivery and sending it, a local restart that emptied the queue). Its group — the
session's deliveries to that endpoint — is sent again in sequence order; deliveries that only wait behind
a head that is still alive are given the head's check time instead.

A message that is only late (the queue has a backlog) cannot be told from a lost one, so a group sent again
is next checked as far away as it is overdue already (at least the grace, at most 12 h): the checks of a
delivery whose message stays in a backlog double, and it is sent again a few times at most, not every few
minutes. An attempt never sends a delivery twice (it reads the delivery, and its start is conditioned on
it). Each run looks at a bounded number of groups."""

from __future__ import annotations

import contextlib
from typing import Any

from checkout_core.observability import logger
from checkout_core.webhooks.deliveries import message_again
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.store import Stale, key_of_delivery

DUE_PER_RUN = 200
GROUPS_PER_RUN = 50
MAX_CHECK_DELAY_SECONDS = 12 * 3600


def requeue_due(services: WebhookServices, groups_per_run: int = GROUPS_PER_RUN) -> int:
    """Returns how many deliveries were sent again."""
    now = services.now
    grace = services.settings.webhook_requeue_grace_seconds
    seen_groups: set[str] = set()
    requeued = 0
    for due in services.db.due_deliveries(now, DUE_PER_RUN):
        group = due["groupKey"]
        if group in seen_groups:
            continue
        if len(seen_groups) == groups_per_run:
            break
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
        overdue = now - int(head.get("nextAttemptAt", now))
        later = min(max(grace, overdue), MAX_CHECK_DELAY_SECONDS)
        for member in waiting:
            _move(services, member, max(int(member.get("nextAttemptAt", now)), now) + later)
        requeued += len(waiting)
    if requeued:
        logger.info("webhook deliveries sent again", extra={"deliveries": requeued})
    return requeued


def _move(services: WebhookServices, member: dict[str, Any], check_at: int) -> None:
    # Stale: touched meanwhile, so it has a newer check time of its own.
    with contextlib.suppress(Stale):
        services.db.move_check(key_of_delivery(member), int(member["checkAt"]), check_at)
