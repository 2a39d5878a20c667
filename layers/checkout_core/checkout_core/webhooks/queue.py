"""The delivery queue (SQS FIFO, one message group per endpoint + session): the only webhook code that
talks to SQS."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from checkout_core import aws

# SQS keeps a message hidden at most 12 h from when it was received; an attempt runs within 60 s of that.
# A longer wait is made in steps: the message comes back, is found not due, and is hidden again.
MAX_HIDE_SECONDS = 12 * 3600 - 120
BATCH = 10


@dataclass(frozen=True)
class Message:
    group: str
    deduplication_id: str
    body: dict[str, Any]


class DeliveryQueue:
    def __init__(self, queue_url: str, client_factory: Callable[[], Any] | None = None) -> None:
        self.queue_url = queue_url
        self._client_factory = client_factory or (lambda: aws.client("sqs"))

    def send(self, messages: Sequence[Message]) -> None:
        """In order, ten per call; raises if any message was not taken."""
        for start in range(0, len(messages), BATCH):
            chunk = messages[start : start + BATCH]
            answer = self._client_factory().send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(index),
                        "MessageBody": json.dumps(message.body, separators=(",", ":")),
                        "MessageGroupId": message.group,
                        "MessageDeduplicationId": message.deduplication_id,
                    }
                    for index, message in enumerate(chunk)
                ],
            )
            if answer.get("Failed"):
                raise RuntimeError(f"SQS refused {len(answer['Failed'])} messages: {answer['Failed'][0]}")

    def hide(self, receipt_handle: str, seconds: int) -> None:
        """The message comes back in `seconds` (at most MAX_HIDE_SECONDS); meanwhile its group waits."""
        self._client_factory().change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(int(seconds), MAX_HIDE_SECONDS)),
        )
