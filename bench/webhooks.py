"""Webhooks: the AWS calls of an event delivered on its first attempt (exact, in process against moto) and
the local delivery path's throughput and latency (the runtime over HTTP, 8 sessions at once, to a
receiver on loopback).

Counted: every DynamoDB and SQS call the fan-out and the delivery function make, through hooks on the
cached clients their code uses. Not counted: what AWS does around them (the pipe's send to the events
queue, the event source mapping's receive and delete, batched ten messages per call)."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import requests

from bench import harness
from tests.webhook_receiver import Receiver

SESSIONS = 8


def _sqs_record(body: dict[str, Any], group: str, receive_count: int = 1) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": str(uuid.uuid4()),
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receive_count), "MessageGroupId": group},
    }


def count_calls() -> dict[str, Any]:
    from moto import mock_aws

    from checkout_core import aws
    from checkout_core.models import CreateEndpointRequest, Tenant
    from checkout_core.webhooks import consumers, fanout
    from checkout_core.webhooks.consumers import deliver_batch, fan_out_batch
    from checkout_core.webhooks.endpoints import create_endpoint
    from checkout_core.webhooks.services import WebhookServices

    receiver = Receiver()
    calls: Counter[str] = Counter()

    def hook(event_name: str, **_: Any) -> None:
        calls[event_name.split(".", 1)[1]] += 1

    with mock_aws():
        harness.reset_caches()
        harness.create_tables()
        queue_url = aws.client("sqs").create_queue(
            QueueName="bench-deliveries.fifo", Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        from dataclasses import replace

        from checkout_core.settings import get_settings

        services = WebhookServices(
            settings=replace(get_settings(), webhook_allow_private_urls=True, webhook_queue_url=queue_url)
        )
        fanout._tenant_of_session.clear()
        fanout._endpoints_of_tenant.clear()
        consumers._endpoints_seen = False
        create_endpoint(services, Tenant("demo", frozenset()), CreateEndpointRequest(url=receiver.url))
        timeline: list[dict[str, Any]] = []
        for _ in range(SESSIONS):
            session_id = harness.create_session()
            harness.cancel_session(session_id)
            timeline += [
                {k: e[k] for k in ("eventId", "type", "sessionId", "sequence", "occurredAt", "actor", "data")}
                for e in services.db.events_after(session_id, 0)
            ]
        import boto3

        platform = boto3.client("sqs")  # the event source mapping's own receives and deletes
        for client in (aws.client("dynamodb"), aws.client("sqs")):
            client.meta.events.register("before-call.*.*", hook, unique_id="bench-webhooks")
        for event in timeline:  # one bus event per fan-out invocation: the least favourable batching
            fan_out_batch(services, [_sqs_record({"detail": event}, event["sessionId"])])
            answer = platform.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            )
            for message in answer.get("Messages", []):
                record = _sqs_record(json.loads(message["Body"]), message["Attributes"]["MessageGroupId"])
                record["receiptHandle"] = message["ReceiptHandle"]
                assert deliver_batch(services, [record], None) == {"batchItemFailures": []}
                platform.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        for client in (aws.client("dynamodb"), aws.client("sqs")):
            client.meta.events.unregister("before-call.*.*", unique_id="bench-webhooks")
    delivered = [r for r in receiver.received if r.answered == 200]
    receiver.close()
    if len(delivered) != len(timeline):
        raise AssertionError(f"{len(delivered)} of {len(timeline)} events delivered")
    total = sum(calls.values())
    return {
        "events": len(timeline),
        "sessions": SESSIONS,
        "calls": dict(calls),
        "calls_total": total,
        "aws_calls_per_first_attempt": round(total / len(timeline), 3),
    }


def throughput(sessions_per_client: int = 6) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from bench.runtime import Runtime

    folder = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    runtime = Runtime(folder / "state", folder / "runtime.log")
    receiver = Receiver()
    try:
        runtime.wait_until_serving()
        api = requests.Session()
        headers = {"Authorization": "Bearer sk_test_demo"}
        api.post(f"{runtime.base_url}/v1/webhook-endpoints", json={"url": receiver.url}, headers=headers)
        lock = threading.Lock()
        expected = 0

        def client(_: int) -> None:
            nonlocal expected
            own = requests.Session()
            for _ in range(sessions_per_client):
                created = own.post(
                    f"{runtime.base_url}/v1/sessions",
                    headers=headers,
                    json={
                        "amount": 100,
                        "currency": "EUR",
                        "referenceId": "b",
                        "returnUrl": "https://example.com/r",
                    },
                ).json()
                own.post(
                    f"{runtime.base_url}/v1/sessions/{created['sessionId']}/cancel", headers=headers, json={}
                )
                with lock:
                    expected += 2

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
        deadline = time.monotonic() + 120
        while (
            sum(1 for r in receiver.received if r.answered == 200) < expected and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        delivered = [r for r in receiver.received if r.answered == 200]
        elapsed = max(r.arrived for r in delivered) - started
        latencies = []
        for received in delivered:
            occurred = datetime.fromisoformat(received.event["occurredAt"].replace("Z", "+00:00")).timestamp()
            latencies.append((received.arrived - time.monotonic() + time.time() - occurred) * 1000)
        return {
            "deliveries": len(delivered),
            "expected": expected,
            "deliveries_per_second": round(len(delivered) / elapsed, 1),
            "first_attempt_p50_ms": round(statistics.median(latencies), 1),
        }
    finally:
        receiver.close()
        runtime.stop()


def measure(sessions_per_client: int = 10) -> dict[str, Any]:
    counted = count_calls()
    moved = throughput(sessions_per_client)
    return {**counted, **moved}


if __name__ == "__main__":
    harness.prepare_environment()
    print(json.dumps(measure(), indent=2))
