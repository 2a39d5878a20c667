"""Webhook capabilities in process against moto's DynamoDB and SQS, with a clock the test moves: the retry
schedule to EXHAUSTED, the five-day disable, the fan-out's order when the bus reorders, and the scheduled
job that re-derives lost queue messages from the Delivery items."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from checkout_core import observability
from checkout_core.models import CreateEndpointRequest, Tenant
from checkout_core.settings import get_settings
from checkout_core.webhooks import attempts as attempts_module
from checkout_core.webhooks import consumers as consumers_module
from checkout_core.webhooks import fanout as fanout_module
from checkout_core.webhooks.attempts import attempt
from checkout_core.webhooks.endpoints import create_endpoint
from checkout_core.webhooks.fanout import FanOut
from checkout_core.webhooks.queue import DeliveryQueue
from checkout_core.webhooks.requeue import requeue_due
from checkout_core.webhooks.schedule import MAX_ATTEMPTS
from checkout_core.webhooks.sender import Answer
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.store import WebhookStore
from tests.integration.flows import cancel, create_session, events

TENANT = Tenant("demo", frozenset({"example.com"}))


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Merchant:
    """What the receiver answered, in order, and what it will answer next."""

    answers: list[int] = field(default_factory=list)
    status: int = 200
    got: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __call__(self, url: str, headers: dict[str, str], body: str, allow_private: bool) -> Answer:
        self.got.append((body, headers))
        self.answers.append(self.status)
        return Answer(self.status, None, None if self.status < 300 else f"answered {self.status}")


@dataclass
class World:
    services: WebhookServices
    clock: Clock
    merchant: Merchant
    sqs: Any
    queue_url: str

    def receive(self) -> list[dict[str, Any]]:
        """What the delivery queue hands out now (visible messages, FIFO groups respected)."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=30
        )
        return list(answer.get("Messages", []))

    def work(self) -> int:
        """One pass of the delivery function over what is visible; returns how many messages it handled."""
        handled = 0
        for message in self.receive():
            done = attempt(
                self.services,
                json.loads(message["Body"]),
                int(message["Attributes"]["ApproximateReceiveCount"]),
                message["ReceiptHandle"],
            )
            if done:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
        return handled

    def make_visible(self) -> None:
        """Every hidden message comes back now: the test moves the clock instead of waiting hours."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        del answer
        from moto.sqs.models import sqs_backends

        queue = sqs_backends["123456789012"]["us-east-1"].queues[self.queue_url.rsplit("/", 1)[-1]]
        for message in queue._messages:
            message.change_visibility(0)
        queue._pending_messages.clear()

    def fan_out(self, session_id: str) -> None:
        FanOut(self.services).run(events(session_id))

    def delivery_log(self, endpoint_id: str) -> list[dict[str, Any]]:
        items, _ = self.services.db.list_deliveries(endpoint_id, None, 100, None)
        return items


@pytest.fixture
def world(aws: Any) -> Iterator[World]:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="deliveries-it.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    clock = Clock()
    merchant = Merchant()
    services = WebhookServices(
        settings=dataclasses.replace(get_settings(), webhook_allow_private_urls=True),  # no DNS here
        clock=clock,
        send=merchant,
        rng=random.Random(7),
        store=WebhookStore(aws.table_name),
        queue=DeliveryQueue(queue_url),
    )
    attempts_module._endpoint_copies.clear()  # each test has a table of its own: forget the last one's
    fanout_module._endpoints_of_tenant.clear()
    fanout_module._tenant_of_session.clear()
    consumers_module._endpoints_seen = False
    yield World(services, clock, merchant, sqs, queue_url)


def endpoint(world: World) -> dict[str, Any]:
    made = create_endpoint(world.services, TENANT, CreateEndpointRequest(url="https://hooks.example.com/x"))
    return made.model_dump()


def test_a_delivery_that_always_fails_is_tried_ten_times_on_the_schedule_then_exhausted(world: World) -> None:
    hook = endpoint(world)
    session = create_session()["sessionId"]
    world.merchant.status = 500
    world.fan_out(session)
    started = world.clock.now
    waits = []
    for _ in range(MAX_ATTEMPTS):
        assert world.work() == 1
        (delivery,) = world.delivery_log(hook["endpointId"])
        if delivery["status"] == "EXHAUSTED":
            break
        waits.append(delivery["nextAttemptAt"] - int(world.clock.now.timestamp()))
        world.clock.advance(waits[-1])
        world.make_visible()
    assert delivery["status"] == "EXHAUSTED" and delivery["attempts"] == MAX_ATTEMPTS
    assert "checkAt" not in delivery and "nextAttemptAt" not in delivery
    assert len(world.merchant.answers) == MAX_ATTEMPTS
    schedule = [5, 300, 1800, 7200, 18000, 36000, 36000, 43200, 43200]
    assert all(
        0.8 * base - 1 <= wait <= 1.2 * base + 1 for wait, base in zip(waits, schedule, strict=True)
    ), waits
    assert 0.8 * sum(schedule) <= (world.clock.now - started).total_seconds() <= 1.2 * sum(schedule)
    assert {headers["webhook-id"] for _, headers in world.merchant.got} == {delivery["eventId"]}
    world.make_visible()
    assert world.work() == 0  # nothing left in the queue


def test_an_endpoint_failing_for_five_days_is_disabled_and_a_success_resets_the_count(world: World) -> None:
    hook = endpoint(world)
    store = world.services.db
    world.merchant.status = 500
    first = create_session()["sessionId"]
    world.fan_out(first)
    world.work()
    assert "failingSince" in store.get_endpoint("demo", hook["endpointId"])
    world.clock.advance(4 * 86400)
    world.merchant.status = 200  # one success within the five days resets the streak
    second = create_session()["sessionId"]
    world.fan_out(second)
    world.make_visible()
    world.clock.advance(60)
    while world.work():
        world.make_visible()
    assert "failingSince" not in store.get_endpoint("demo", hook["endpointId"])

    world.merchant.status = 500  # from here every delivery fails: a new session's event every 12 h
    while True:
        world.fan_out(create_session()["sessionId"])
        world.make_visible()
        world.work()
        world.work()
        failing = store.get_endpoint("demo", hook["endpointId"])
        if failing["status"] == "DISABLED":
            break
        assert world.clock.now.timestamp() - failing["failingSince"] < 5 * 86400
        world.clock.advance(12 * 3600)
    assert world.clock.now.timestamp() - failing["failingSince"] >= 5 * 86400
    disabled = store.get_endpoint("demo", hook["endpointId"])
    assert (disabled["status"], disabled["disabledReason"]) == ("DISABLED", "FAILING")
    fourth = create_session()["sessionId"]  # recorded, not sent, while disabled
    sent = len(world.merchant.got)
    world.fan_out(fourth)
    world.make_visible()
    world.work()
    assert len(world.merchant.got) == sent
    assert any(
        d.get("sessionId") == fourth and d["status"] == "FAILED"
        for d in world.delivery_log(hook["endpointId"])
    )


def test_events_the_bus_reorders_are_fanned_out_in_sequence_and_repeats_write_nothing(world: World) -> None:
    hook = endpoint(world)
    session = create_session()["sessionId"]
    cancel(session)
    timeline = events(session)
    assert len(timeline) >= 2
    fan_out = FanOut(world.services)
    fan_out.run([timeline[-1]])  # the last event arrives first: its predecessors go out before it
    fan_out.run(timeline)  # then everything again: nothing new
    while world.work():
        pass
    sent = [json.loads(body)["sequence"] for body, _ in world.merchant.got]
    assert sent == [event["sequence"] for event in timeline]
    assert len(world.delivery_log(hook["endpointId"])) == len(timeline)


def test_the_scheduled_job_sends_again_what_a_lost_queue_held_in_order(world: World) -> None:
    hook = endpoint(world)
    world.merchant.status = 500
    session = create_session()["sessionId"]
    world.fan_out(session)
    world.work()  # the first event fails: it waits 5 s; the session's later events wait behind it
    cancel(session)
    world.fan_out(session)
    world.sqs.purge_queue(QueueUrl=world.queue_url)  # the queue loses everything
    world.merchant.status = 200
    assert requeue_due(world.services) == 0  # nothing is overdue yet
    world.clock.advance(get_settings().webhook_requeue_grace_seconds + 10)
    assert requeue_due(world.services) == len(events(session))
    while world.work():
        pass
    sent = [
        (json.loads(body)["sequence"], status)
        for (body, _), status in zip(world.merchant.got, world.merchant.answers, strict=True)
    ]
    assert sent == [(1, 500), *[(event["sequence"], 200) for event in events(session)]]
    assert {d["status"] for d in world.delivery_log(hook["endpointId"])} == {"SUCCEEDED"}
    world.clock.advance(10 * 86400)
    assert requeue_due(world.services) == 0  # nothing waits any more


def test_a_group_stopped_by_a_failure_leaves_its_later_messages_waiting_behind_the_head(world: World) -> None:
    """One batch holds a session's two events; the first fails. The second must not stay in flight (it
    would hold the group for the queue's visibility timeout, hours past the head's 5 s retry): it is
    released, and waits behind the hidden head."""
    from moto.sqs.models import sqs_backends

    from checkout_core.webhooks.consumers import deliver_batch

    endpoint(world)
    world.merchant.status = 500
    session = create_session()["sessionId"]
    cancel(session)
    world.fan_out(session)
    messages = world.receive()
    assert len(messages) == 2 and len({m["Attributes"]["MessageGroupId"] for m in messages}) == 1
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
        }
        for m in messages
    ]
    answer = deliver_batch(world.services, records, None)
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [m["MessageId"] for m in messages]
    assert len(world.merchant.got) == 1  # the second was not sent
    queue = sqs_backends["123456789012"]["us-east-1"].queues[world.queue_url.rsplit("/", 1)[-1]]
    visible = {m.id: m.visible for m in queue._messages}
    assert visible == {messages[0]["MessageId"]: False, messages[1]["MessageId"]: True}
    assert world.receive() == []  # visible, yet behind its group's head


def test_a_batch_of_events_is_fanned_out_in_one_transaction_and_a_repeat_falls_back(world: World) -> None:
    from checkout_core.webhooks.consumers import fan_out_batch

    hook = endpoint(world)
    first, second = create_session()["sessionId"], create_session()["sessionId"]
    cancel(first)
    cancel(second)
    timeline = events(first) + events(second)
    records = [
        {"messageId": str(index), "body": json.dumps({"detail": event})}
        for index, event in enumerate(timeline)
    ]
    transactions = []
    client = world.services.db._client_factory()
    client.meta.events.register(
        "before-call.dynamodb.TransactWriteItems", lambda **kw: transactions.append(1), unique_id="count-tx"
    )
    try:
        assert fan_out_batch(world.services, records) == {"batchItemFailures": []}
        assert len(transactions) == 1
        assert fan_out_batch(world.services, records) == {"batchItemFailures": []}  # the bus repeats itself
    finally:
        client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="count-tx")
    assert len(world.delivery_log(hook["endpointId"])) == len(timeline)
    while world.work():
        pass
    sent = [json.loads(body) for body, _ in world.merchant.got]
    for session in (first, second):
        assert [e["sequence"] for e in sent if e["sessionId"] == session] == [
            e["sequence"] for e in events(session)
        ]
    assert len(sent) == len(timeline)


def test_without_endpoints_nothing_is_written_and_a_later_endpoint_gets_only_later_events(
    world: World,
) -> None:
    session = create_session()["sessionId"]
    world.fan_out(session)
    assert world.services.db.fanned_out(session) == 0  # no watermark written for a tenant with no endpoints
    world.clock.now = datetime.now(UTC)
    hook = endpoint(world)
    cancel(session)
    world.fan_out(session)
    while world.work():
        pass
    assert [json.loads(body)["type"] for body, _ in world.merchant.got] == ["session.cancelled"]
    assert [d["type"] for d in world.delivery_log(hook["endpointId"])] == ["session.cancelled"]
    assert world.services.db.fanned_out(session) == len(events(session))


def test_while_no_tenant_has_an_endpoint_the_fan_out_reads_one_item_and_writes_nothing(world: World) -> None:
    from checkout_core.webhooks.consumers import fan_out_batch

    session = create_session()["sessionId"]
    records = [{"messageId": "1", "body": json.dumps({"detail": events(session)[0]})}]
    calls: list[str] = []
    client = world.services.db._client_factory()
    client.meta.events.register(
        "before-call.dynamodb.*", lambda event_name, **kw: calls.append(event_name), unique_id="c"
    )
    try:
        assert fan_out_batch(world.services, records) == {"batchItemFailures": []}
        assert calls == ["before-call.dynamodb.GetItem"]
        endpoint(world)  # the first endpoint anywhere: the same event (if it came again) is looked at in full
        calls.clear()
        fan_out_batch(world.services, records)
        assert "before-call.dynamodb.Query" in calls
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", unique_id="c")
    assert world.services.db.fanned_out(session) == 1


def test_a_delivery_waiting_behind_a_failing_one_says_so_and_when(world: World) -> None:
    from checkout_core.clock import from_iso
    from checkout_core.webhooks.deliveries import list_deliveries

    hook = endpoint(world)
    session_id = create_session()["sessionId"]
    cancel(session_id)
    world.fan_out(session_id)
    # Given the session's first event failing at the merchant (its second waits behind it in the group)
    world.merchant.status = 500
    failed_lines: list[logging.LogRecord] = []
    listener = logging.Handler(logging.WARNING)
    listener.emit = failed_lines.append  # type: ignore[method-assign]
    logging.getLogger(observability.logger.name).addHandler(listener)
    first_message = world.receive()[0]  # the group's first; the second is not tried while it waits
    assert not attempt(
        world.services,
        json.loads(first_message["Body"]),
        int(first_message["Attributes"]["ApproximateReceiveCount"]),
        first_message["ReceiptHandle"],
    )
    # Then the failed attempt is one log line: endpoint, event, status, next attempt
    logging.getLogger(observability.logger.name).removeHandler(listener)
    (failed,) = [vars(r) for r in failed_lines if r.getMessage() == "webhook delivery attempt failed"]
    logged = list_deliveries(world.services, TENANT, hook["endpointId"], None, 100, None).data
    by_type = {d.type: d for d in logged}
    first, second = by_type["session.created"], by_type["session.cancelled"]
    # Then the first says when it is tried again, and the second that it waits behind the first, not before
    assert first.status == "FAILED" and first.nextAttemptAt is not None and first.waitingFor is None
    assert second.status == "PENDING" and second.waitingFor == first.deliveryId
    assert second.nextAttemptAt == first.nextAttemptAt
    assert (failed["endpointId"], failed["eventId"], failed["status"], failed["nextAttemptAt"]) == (
        hook["endpointId"],
        first.eventId,
        500,
        first.nextAttemptAt,
    )
    # And no delivery is due before it was made
    for delivery in logged:
        assert delivery.nextAttemptAt is None or from_iso(delivery.nextAttemptAt) >= from_iso(
            delivery.createdAt
        )
    # When the first succeeds, the second waits for nothing
    world.clock.advance(3600)
    world.merchant.status = 200
    world.make_visible()
    world.work()
    logged = list_deliveries(world.services, TENANT, hook["endpointId"], None, 100, None).data
    assert all(d.waitingFor is None for d in logged)
