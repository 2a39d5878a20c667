"""Every state change reaches the EventBridge bus once, in order per session, via the table's stream.

The stream is read the way the template's Pipe reads it (local.streams with the template's filter and
the PublishEventsFunction enrichment), the bus forwards to an SQS queue through a rule, and the test
reads the queue.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from local.streams import PipeConfig, StreamPublisher
from tests.integration.flows import cancel, create_session, events, provider_event, transaction
from tests.support import invoke, wait_until


def read_queue(sqs: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []

    def drained() -> bool:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        for message in answer.get("Messages", []):
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(received) >= expected

    wait_until(drained, what=f"{expected} events on the queue")
    return received


def test_one_published_event_per_change_in_order_per_session(aws: Any) -> None:
    # Given a rule on the bus delivering every checkout event to a queue
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="checkout-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bus = "checkout-it"
    aws.events.put_rule(
        Name="all", EventBusName=bus, EventPattern=json.dumps({"source": ["checkout.sessions"]})
    )
    aws.events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    stream_arn = aws.dynamodb.describe_table(TableName=aws.table_name)["Table"]["LatestStreamArn"]
    publisher = StreamPublisher(
        # moto answers streams on the regional endpoint, not the account-based one botocore now prefers
        boto3.client("dynamodbstreams", endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com"),
        aws.events,
        stream_arn,
        bus,
        PipeConfig(enrichment_id="PublishEventsFunction"),
        enrich=lambda _function, records: invoke("publish_events", records),
    )
    publisher.start()
    # When two sessions change state, interleaved
    first, second = create_session()["sessionId"], create_session()["sessionId"]
    card = transaction(first)
    transaction(second, "sandbox_card")
    provider_event("sandbox_card", card, "AUTHORIZED")
    cancel(first)
    cancel(second)
    publisher.stop()  # after a last pass over the stream
    # Then each timeline event was published exactly once, in sequence order per session
    timelines = {session_id: events(session_id) for session_id in (first, second)}
    total = sum(len(timeline) for timeline in timelines.values())
    published = read_queue(sqs, queue_url, total)
    assert len(published) == total
    for session_id, timeline in timelines.items():
        mine = [message for message in published if message["detail"]["sessionId"] == session_id]
        assert [message["detail"] for message in mine] == timeline
        assert [message["detail-type"] for message in mine] == [event["type"] for event in timeline]
        assert {message["source"] for message in mine} == {"checkout.sessions"}
    assert len({message["detail"]["eventId"] for message in published}) == total
