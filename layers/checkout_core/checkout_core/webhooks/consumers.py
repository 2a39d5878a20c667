"""The queue consumers' batches (Lambda SQS event source, ReportBatchItemFailures): the fan-out reads the
bus's events in order; the delivery function works its message groups side by side, each group in order,
and stops a group at its first message that must wait."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from checkout_core.observability import logger
from checkout_core.webhooks.services import WebhookServices

STOP_BEFORE_TIMEOUT_MS = 20_000  # an attempt can take 15 s
AFTER_ERROR_SECONDS = 10
_endpoints_seen = False


def _release(services: WebhookServices, record: dict[str, Any], seconds: int | None) -> None:
    """A message this batch will not finish: visible again after `seconds` (None: as the attempt left it).
    The group's later messages are released at once: while its head is hidden they stay behind it, and
    left in flight they would hold the whole group for the queue's visibility timeout."""
    if seconds is None:
        return
    try:
        services.messages.hide(record["receiptHandle"], seconds)
    except Exception:
        logger.exception("could not release a message", extra={"messageId": record["messageId"]})


def _failures(message_ids: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in message_ids]}


def fan_out_batch(services: WebhookServices, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Records of the events queue, in order, as one fan-out: endpoints read once per tenant, messages sent
    once. A failed record and every one after it are reported (a FIFO queue gives them back in the same
    order); the messages of the records before it are sent."""
    from checkout_core.webhooks.fanout import FanOut, catch_up

    fan_out = FanOut(services)
    try:
        # Read after every event of the batch was committed: an endpoint made before them is counted. Once
        # there was one, the per-tenant reads decide (a yes may be kept, a no may not).
        global _endpoints_seen
        if not _endpoints_seen:
            if not services.db.any_endpoints():
                return _failures([])  # nothing to deliver, nothing to keep in order
            _endpoints_seen = True
        bodies = [json.loads(record["body"]) for record in records]
        tenants = fan_out.tenants([b["detail"]["sessionId"] for b in bodies if "detail" in b])
    except Exception:
        logger.exception("fan-out failed before its first record")
        return _failures([r["messageId"] for r in records])
    if len(bodies) > 1 and all("detail" in b and b["detail"]["sessionId"] in tenants for b in bodies):
        pairs = [(tenants[b["detail"]["sessionId"]], b["detail"]) for b in bodies]
        try:
            if fan_out.together(pairs):
                fan_out.flush()
                return _failures([])
        except Exception:
            logger.exception("fan-out of the whole batch failed; one record at a time")
            fan_out.messages = []
    for index, (record, body) in enumerate(zip(records, bodies, strict=True)):
        try:
            if "catchUp" in body:
                fan_out.flush()
                catch_up(services, str(body["catchUp"]))
            elif body["detail"]["sessionId"] not in tenants:
                logger.warning("event of an unknown session", extra={"messageId": record["messageId"]})
            else:
                fan_out.event(tenants[body["detail"]["sessionId"]], body["detail"])
        except Exception:
            logger.exception("fan-out failed", extra={"messageId": record["messageId"]})
            fan_out.flush()
            return _failures([r["messageId"] for r in records[index:]])
    fan_out.flush()
    return _failures([])


def deliver_batch(services: WebhookServices, records: list[dict[str, Any]], context: Any) -> dict[str, Any]:
    from checkout_core.webhooks.attempts import attempt

    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record.get("attributes", {}).get("MessageGroupId", record["messageId"]), []).append(
            record
        )

    def time_left() -> bool:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return remaining is None or remaining() > STOP_BEFORE_TIMEOUT_MS

    def work(group: list[dict[str, Any]]) -> list[str]:
        for index, record in enumerate(group):
            failed = False
            if not time_left():  # not tried: back at once, for the next invocation
                for unfinished in group[index:]:
                    _release(services, unfinished, 0)
                return [r["messageId"] for r in group[index:]]
            try:
                done = attempt(
                    services,
                    json.loads(record["body"]),
                    int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")),
                    record["receiptHandle"],
                )
            except Exception:
                logger.exception("webhook attempt failed", extra={"messageId": record["messageId"]})
                done, failed = False, True
            if not done:
                _release(services, group[index], AFTER_ERROR_SECONDS if failed else None)
                for later in group[index + 1 :]:
                    _release(services, later, 0)
                return [r["messageId"] for r in group[index:]]
        return []

    with ThreadPoolExecutor(max_workers=min(10, len(groups)) or 1) as pool:
        failed = [message_id for ids in pool.map(work, groups.values()) for message_id in ids]
    return _failures(failed)
