"""The embedded runtime's SQS pollers wait for their queue to change, not for a fixed time: a message sent
while they wait, and the next message of a FIFO group once its head is deleted, are handled at once.

The pollers' fallback wait is made a minute long here, so a wake-up that did not happen shows as a missed
deadline far shorter than that."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import queues
from local.queues import EventSource, QueuePoller

DEADLINE_SECONDS = 15.0


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_SECONDS} s: {what}")
        time.sleep(0.01)


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(queues, "WAIT_SECONDS", 60)
    queues.install_wake_ups()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_a_waiting_poller_takes_a_new_message_and_the_next_of_its_group_at_once(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName="wake-ups.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    handled: list[str] = []
    receives = 0
    lock = threading.Lock()

    def count_receive(**_: Any) -> None:
        nonlocal receives
        with lock:
            receives += 1

    sqs.meta.events.register("before-call.sqs.ReceiveMessage", count_receive)

    def invoke(_function: str, event: dict[str, Any]) -> dict[str, Any]:
        handled.extend(record["body"] for record in event["Records"])
        return {"batchItemFailures": []}

    source = EventSource("Consumer", "Queue", batch_size=1, report_failures=True)
    poller = QueuePoller(sqs, source, url, invoke, workers=2)
    # Given pollers that found the queue empty and wait
    poller.start()
    try:
        wait_until(lambda: receives >= 2, "both pollers found the queue empty")
        # When two messages of one group are sent (each batch holds one)
        for body in ("first", "second"):
            sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="session-1")
        # Then both are handled, in order, well before the pollers' fallback wait would end
        wait_until(lambda: handled == ["first", "second"], f"both messages handled (got {handled})")
    finally:
        poller.stop()
