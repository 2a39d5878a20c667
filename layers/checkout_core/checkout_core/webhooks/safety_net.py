"""The scheduled safety net of the fan-out, from DynamoDB: an event that never reached the fan-out (its
queue message failed until the dead-letter queue took it, the bus lost it) leaves its session's timeline
ahead of the session's fan-out watermark. Every watermark carries its next look (`catchUpAt`, index
byFanOutCheck), set by the fan-out each time it moves the watermark: a few minutes after, then at doubling
intervals up to a day, for as long as the session has had an event in the last QUIET_SECONDS. Each look
reads the session's last sequence and, when the timeline is ahead, fans out what is missing from it.

A watermark exists once one of the session's events was fanned out to a tenant with endpoints; a session none
of whose events ever reached the fan-out is found through the dead-letter queue that holds them, which this
job drains too: each message of the events queue's dead-letter queue is fanned out from its session's
timeline, each message of the delivery queue's makes its delivery due for the requeue job, and then it is
deleted. Each run does a bounded amount of work; what is left waits for the next run."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from checkout_core import aws
from checkout_core.observability import logger
from checkout_core.webhooks.fanout import catch_up
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.store import Stale, key_of_delivery

WATERMARKS_PER_RUN = 200
DEAD_LETTERS_PER_RUN = 100
MAX_CHECK_INTERVAL_SECONDS = 86_400
QUIET_SECONDS = 7 * 86_400


def catch_up_lagging(services: WebhookServices, limit: int = WATERMARKS_PER_RUN) -> int:
    """Fans out the sessions whose timeline is ahead of their watermark; returns how many there were."""
    now = services.now
    grace = services.settings.webhook_requeue_grace_seconds
    due = services.db.due_watermarks(now, limit)
    if not due:
        return 0
    sequences = services.db.session_sequences([item["pk"].removeprefix("WEBHOOKS#") for item in due])
    lagging = 0
    for watermark in due:
        session_id = watermark["pk"].removeprefix("WEBHOOKS#")
        if sequences.get(session_id, 0) > int(watermark.get("fannedOut", 0)):
            lagging += 1
            try:
                catch_up(services, session_id)  # a move of the watermark sets its own next look
            except Exception:
                logger.exception("safety net: fan-out failed", extra={"sessionId": session_id})
        # Look again later, at doubling intervals, until the session has been quiet a week. Conditioned on
        # the watermark as read: a catch-up that moved it wins; one that could not (the tenant has no
        # endpoints any more, a failure) does not bring the session back every run.
        checks = int(watermark.get("catchUpChecks", 0))
        interval = min(grace * 2 ** (checks + 1), MAX_CHECK_INTERVAL_SECONDS)
        quiet = now - int(watermark.get("movedAt", 0)) >= QUIET_SECONDS
        services.db.next_watermark_check(watermark, None if quiet else now + interval)
    if lagging:
        logger.warning("safety net: sessions fanned out from their timeline", extra={"sessions": lagging})
    return lagging


def drain_dead_letters(services: WebhookServices, limit: int = DEAD_LETTERS_PER_RUN) -> int:
    """At most `limit` messages of each webhook dead-letter queue, handled from the table and deleted."""
    drained = 0
    settings = services.settings
    if settings.webhook_events_dead_letter_url:
        drained += _drain(
            settings.webhook_events_dead_letter_url, limit, lambda body: _fan_out(services, body)
        )
    if settings.webhook_delivery_dead_letter_url:
        drained += _drain(
            settings.webhook_delivery_dead_letter_url, limit, lambda body: _make_due(services, body)
        )
    if drained:
        logger.warning("webhook dead letters drained", extra={"messages": drained})
    return drained


def _drain(queue_url: str, limit: int, handle: Any) -> int:
    sqs = aws.client("sqs")
    drained = 0
    while drained < limit:
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=min(10, limit - drained), VisibilityTimeout=60
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            try:
                handle(json.loads(message["Body"]))
            except Exception:
                logger.exception("dead letter not handled", extra={"messageId": message["MessageId"]})
                continue  # back in a minute, for the next run
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            drained += 1
    return drained


def _fan_out(services: WebhookServices, body: dict[str, Any]) -> None:
    session_id = body.get("catchUp") or (body.get("detail") or {}).get("sessionId")
    if session_id:
        catch_up(services, str(session_id))


def _make_due(services: WebhookServices, body: dict[str, Any]) -> None:
    delivery = services.db.get_delivery(str(body["endpointId"]), str(body["deliveryId"]))
    if delivery is None or "checkAt" not in delivery:
        return  # gone or done: nothing waits for this message
    with contextlib.suppress(Stale):  # touched meanwhile: it has a check time of its own
        services.db.move_check(key_of_delivery(delivery), int(delivery["checkAt"]), 0)
