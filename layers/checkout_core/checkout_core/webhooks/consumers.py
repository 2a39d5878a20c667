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


def _failures(message_ids: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in message_ids]}


def fan_out_batch(services: WebhookServices, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Records of the events queue, in order. A failed record and every one after it are reported (a FIFO
    queue gives them back in the same order)."""
    from checkout_core.webhooks.fanout import FanOut, catch_up

    for index, record in enumerate(records):
        try:
            body = json.loads(record["body"])
            if "catchUp" in body:
                catch_up(services, str(body["catchUp"]))
            else:
                FanOut(services).run([body["detail"]])
        except Exception:
            logger.exception("fan-out failed", extra={"messageId": record["messageId"]})
            return _failures([r["messageId"] for r in records[index:]])
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
            try:
                done = time_left() and attempt(
                    services,
                    json.loads(record["body"]),
                    int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")),
                    record["receiptHandle"],
                )
            except Exception:
                logger.exception("webhook attempt failed", extra={"messageId": record["messageId"]})
                done = False
            if not done:
                return [r["messageId"] for r in group[index:]]
        return []

    with ThreadPoolExecutor(max_workers=min(10, len(groups)) or 1) as pool:
        failed = [message_id for ids in pool.map(work, groups.values()) for message_id in ids]
    return _failures(failed)
