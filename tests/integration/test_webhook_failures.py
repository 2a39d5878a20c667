"""Webhooks under partial failure, in process against moto: a retried transaction that had committed, a
message lost after its delivery was written, an endpoint changed between the fan-out and the attempt, and an
attempt whose function dies mid-request."""

# ruff: noqa: F811 - `world` is the fixture imported from the schedule tests
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from checkout_core.errors import ServiceUnavailable
from checkout_core.models import CreateEndpointRequest, EndpointStatus, UpdateEndpointRequest
from checkout_core.settings import get_settings
from checkout_core.webhooks.attempts import INTERRUPTED
from checkout_core.webhooks.endpoints import create_endpoint, delete_endpoint, update_endpoint
from checkout_core.webhooks.fanout import FanOut
from checkout_core.webhooks.queue import DeliveryQueue, Message
from checkout_core.webhooks.requeue import requeue_due
from checkout_core.webhooks.schedule import MAX_ATTEMPTS
from checkout_core.webhooks.sender import Answer
from checkout_core.webhooks.store import TENANT_COPIES
from tests.integration.flows import cancel, create_session, events
from tests.integration.test_webhook_schedule import TENANT, World, endpoint, world  # noqa: F401


def retry_once_after_commit(client: Any, operation: str) -> list[int]:
    """Makes botocore retry the first `operation` call after DynamoDB answered it (as after a lost answer
    or a timeout): the request runs twice. Returns the list of calls made, to count."""
    calls: list[int] = []

    def needs_retry(attempts: int, **_: Any) -> int | None:
        calls.append(attempts)
        return 0 if len(calls) == 1 else None

    client.meta.events.register_first(f"needs-retry.dynamodb.{operation}", needs_retry, unique_id="retry")
    return calls


def stop_retrying(client: Any, operation: str) -> None:
    client.meta.events.unregister(f"needs-retry.dynamodb.{operation}", unique_id="retry")


def test_a_retried_endpoint_creation_that_had_committed_answers_with_the_endpoint(world: World) -> None:
    client = world.services.db._client_factory()
    calls = retry_once_after_commit(client, "TransactWriteItems")
    try:
        # When the transaction is sent twice (botocore's retry after a lost answer)
        made = create_endpoint(
            world.services, TENANT, CreateEndpointRequest(url="https://hooks.example.com/x")
        )
    finally:
        stop_retrying(client, "TransactWriteItems")
    # Then the second send is answered as the first: the endpoint, whose secret the merchant now holds
    assert len(calls) == 2
    version, endpoints = world.services.db.endpoints_of(TENANT.tenant_id)
    assert [e["endpointId"] for e in endpoints] == [made.endpointId]
    assert (version, world.services.db.any_endpoints()) == (1, True)


def test_every_webhook_transaction_carries_a_client_request_token(world: World) -> None:
    client = world.services.db._client_factory()
    seen: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems",
        lambda params, **_: seen.append(dict(params)),
        unique_id="tokens",
    )
    try:
        hook = endpoint(world)
        session = create_session()["sessionId"]
        cancel(session)
        world.fan_out(session)
        while world.work():
            pass
        update_endpoint(world.services, TENANT, hook["endpointId"], UpdateEndpointRequest(description="x"))
        delete_endpoint(world.services, TENANT, hook["endpointId"])
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems", unique_id="tokens")
    assert len(seen) >= 6
    assert all(params.get("ClientRequestToken") for params in seen)
    assert len({params["ClientRequestToken"] for params in seen}) == len(seen)


class LosingQueue(DeliveryQueue):
    """Takes no message while `losing` (the send after the fan-out's transaction fails)."""

    losing = False

    def send(self, messages: Sequence[Message]) -> None:
        if self.losing:
            raise ServiceUnavailable()
        super().send(messages)


def test_an_event_is_not_sent_while_an_earlier_one_of_its_session_still_waits(world: World) -> None:
    hook = endpoint(world)
    queue = LosingQueue(world.queue_url)
    world.services.queue = queue
    session = create_session()["sessionId"]
    # Given the first event's delivery written, and its message lost after the transaction committed
    queue.losing = True
    with pytest.raises(ServiceUnavailable):
        FanOut(world.services).run(events(session))
    queue.losing = False
    # When the session's next event is fanned out and its message is handled
    cancel(session)
    world.fan_out(session)
    while world.work():
        pass
    # Then it is not sent before the first one
    assert world.merchant.got == []
    # And the scheduled job sends the group again, in order
    world.clock.advance(get_settings().webhook_requeue_grace_seconds + 10)
    assert requeue_due(world.services) == 2
    while world.work():
        pass
    assert [json.loads(body)["sequence"] for body, _ in world.merchant.got] == [1, 2]
    assert {d["status"] for d in world.delivery_log(hook["endpointId"])} == {"SUCCEEDED"}


def test_a_batch_whose_send_failed_after_its_transaction_still_goes_out_in_order(world: World) -> None:
    """The fan-out's batch is written in one transaction and its send fails: the batch reports success (the
    deliveries are in the table, the scheduled job sends them); the session's next event waits for them."""
    from checkout_core.webhooks.consumers import fan_out_batch

    endpoint(world)
    queue = LosingQueue(world.queue_url)
    world.services.queue = queue
    first, second = create_session()["sessionId"], create_session()["sessionId"]
    records = [
        {"messageId": str(i), "body": json.dumps({"detail": e})}
        for i, e in enumerate(events(first) + events(second))
    ]
    queue.losing = True
    assert fan_out_batch(world.services, records) == {"batchItemFailures": []}
    queue.losing = False
    cancel(first)
    fan_out_batch(world.services, [{"messageId": "3", "body": json.dumps({"detail": events(first)[-1]})}])
    while world.work():
        pass
    assert world.merchant.got == []
    world.clock.advance(get_settings().webhook_requeue_grace_seconds + 10)
    requeue_due(world.services)
    while world.work():
        pass
    sent = [json.loads(body) for body, _ in world.merchant.got]
    assert [e["sequence"] for e in sent if e["sessionId"] == first] == [1, 2]
    assert [e["sequence"] for e in sent if e["sessionId"] == second] == [1]


class Recording:
    """The merchant, noting which URL each request went to."""

    def __init__(self, world: World) -> None:
        self.urls: list[str] = []
        self.world = world

    def __call__(self, url: str, headers: dict[str, str], body: str, allow_private: bool) -> Answer:
        self.urls.append(url)
        return self.world.merchant(url, headers, body, allow_private)


def test_a_first_attempt_uses_the_endpoint_as_it_is_now(world: World) -> None:
    recording = Recording(world)
    world.services.send = recording
    hook = endpoint(world)
    warm = create_session()["sessionId"]
    world.fan_out(warm)
    world.work()  # this environment now holds a copy of the endpoint
    assert recording.urls == ["https://hooks.example.com/x"]

    # Given an event fanned out while the endpoint pointed at the old URL
    moved = create_session()["sessionId"]
    world.fan_out(moved)
    # When the endpoint is re-pointed and disabled before the attempt
    update_endpoint(
        world.services,
        TENANT,
        hook["endpointId"],
        UpdateEndpointRequest(url="https://hooks.example.com/new", status=EndpointStatus.DISABLED),
    )
    world.work()
    # Then nothing goes to the old URL: the delivery is recorded, not sent
    assert recording.urls == ["https://hooks.example.com/x"]
    (delivery,) = [d for d in world.delivery_log(hook["endpointId"]) if d.get("sessionId") == moved]
    assert delivery["status"] == "FAILED" and delivery["attempts"] == 0

    # Given another event pending, when the endpoint is deleted, then it is dropped, not sent
    update_endpoint(
        world.services, TENANT, hook["endpointId"], UpdateEndpointRequest(status=EndpointStatus.ENABLED)
    )
    gone = create_session()["sessionId"]
    world.fan_out(gone)
    delete_endpoint(world.services, TENANT, hook["endpointId"])
    world.work()
    assert recording.urls == ["https://hooks.example.com/x"]
    assert world.services.db.list_deliveries(hook["endpointId"], None, 100, None)[0] == [
        d for d in world.delivery_log(hook["endpointId"]) if d.get("sessionId") != gone
    ]


class FunctionDies(BaseException):
    """What a Lambda timeout or a crash looks like from inside: nothing after it runs."""


def test_an_attempt_is_counted_even_when_its_function_dies_during_the_request(world: World) -> None:
    hook = endpoint(world)

    def dies(url: str, headers: dict[str, str], body: str, allow_private: bool) -> Answer:
        world.merchant.got.append((body, headers))
        raise FunctionDies()

    world.services.send = dies
    session = create_session()["sessionId"]
    world.fan_out(session)
    attempts = 0
    while True:
        messages = world.receive()
        if not messages:
            break
        from checkout_core.webhooks.attempts import attempt

        (message,) = messages
        with pytest.raises(FunctionDies):
            attempt(
                world.services,
                json.loads(message["Body"]),
                int(message["Attributes"]["ApproximateReceiveCount"]),
                message["ReceiptHandle"],
            )
        attempts += 1
        (delivery,) = world.delivery_log(hook["endpointId"])
        assert delivery["attempts"] == attempts and delivery["lastError"] == INTERRUPTED
        if delivery["status"] == "EXHAUSTED":
            break
        assert delivery["status"] == "FAILED" and delivery["nextAttemptAt"] > world.clock.now.timestamp()
        world.clock.advance(delivery["nextAttemptAt"] - world.clock.now.timestamp())
        world.make_visible()  # the message comes back when its visibility timeout ends
    assert attempts == MAX_ATTEMPTS == len(world.merchant.got)
    assert "checkAt" not in delivery
    world.make_visible()
    assert world.work() == 1 and len(world.merchant.got) == MAX_ATTEMPTS  # read, found done, deleted


def test_a_resend_goes_now_not_behind_its_own_message_hidden_until_the_retry(world: World) -> None:
    from checkout_core.webhooks.deliveries import resend

    hook = endpoint(world)
    world.merchant.status = 500
    session = create_session()["sessionId"]
    world.fan_out(session)
    world.work()  # fails: its message is hidden until the retry, minutes away
    (delivery,) = world.delivery_log(hook["endpointId"])
    assert delivery["status"] == "FAILED" and delivery["nextAttemptAt"] > world.clock.now.timestamp()
    world.merchant.status = 200
    resend(world.services, TENANT, hook["endpointId"], delivery["deliveryId"])
    assert world.work() == 1
    assert world.merchant.answers == [500, 200]
    (delivery,) = world.delivery_log(hook["endpointId"])
    assert delivery["status"] == "SUCCEEDED"
    world.make_visible()  # the old message comes back, finds it done, and sends nothing
    world.work()
    assert world.merchant.answers == [500, 200]


def test_the_safety_net_fans_out_a_session_whose_last_event_never_reached_the_fan_out(world: World) -> None:
    from checkout_core.webhooks.safety_net import catch_up_lagging

    hook = endpoint(world)
    session = create_session()["sessionId"]
    world.fan_out(session)  # session.created reaches the fan-out
    cancel(session)  # session.cancelled never does (its message went to a dead-letter queue)
    while world.work():
        pass
    assert [json.loads(body)["sequence"] for body, _ in world.merchant.got] == [1]
    assert catch_up_lagging(world.services) == 0  # not due yet
    world.clock.advance(get_settings().webhook_requeue_grace_seconds + 1)
    assert catch_up_lagging(world.services) == 1
    while world.work():
        pass
    assert [json.loads(body)["sequence"] for body, _ in world.merchant.got] == [1, 2]
    assert len(world.delivery_log(hook["endpointId"])) == 2
    # Caught up: it is looked at again later, less and less often, and then no more
    gaps = []
    while due := world.services.db.due_watermarks(2**40, 10):
        (watermark,) = due
        gaps.append(watermark["catchUpAt"] - int(world.clock.now.timestamp()))
        world.clock.advance(gaps[-1])  # to its next look
        assert catch_up_lagging(world.services) == 0
        assert len(gaps) < 24 * 8
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]
    assert len(world.merchant.got) == 2


def test_a_session_the_safety_net_cannot_catch_up_is_not_looked_at_every_run(world: World) -> None:
    from checkout_core.webhooks.safety_net import catch_up_lagging

    hook = endpoint(world)
    session = create_session()["sessionId"]
    world.fan_out(session)
    cancel(session)  # never reaches the fan-out
    delete_endpoint(world.services, TENANT, hook["endpointId"])  # and nothing is left to deliver it to
    world.clock.advance(get_settings().webhook_requeue_grace_seconds + 1)
    assert catch_up_lagging(world.services) == 1
    world.clock.advance(60)
    assert catch_up_lagging(world.services) == 0  # its next look is later, not the next run


def test_the_safety_net_drains_the_dead_letter_queues_from_the_table(world: World) -> None:
    import dataclasses

    from checkout_core.webhooks.safety_net import drain_dead_letters

    endpoint(world)
    dead = world.sqs.create_queue(QueueName="events-dlq-it.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    world.services.settings = dataclasses.replace(
        world.services.settings, webhook_events_dead_letter_url=dead
    )
    session = create_session()["sessionId"]
    cancel(session)
    for event in events(session):  # both of the session's events failed to fan out, ten times each
        world.sqs.send_message(
            QueueUrl=dead,
            MessageBody=json.dumps({"detail": event}),
            MessageGroupId="events",
            MessageDeduplicationId=event["eventId"],
        )
    assert drain_dead_letters(world.services) == 2
    while world.work():
        pass
    assert [json.loads(body)["sequence"] for body, _ in world.merchant.got] == [1, 2]
    assert world.sqs.receive_message(QueueUrl=dead).get("Messages", []) == []


def test_during_a_backlog_the_requeue_job_sends_a_group_again_a_few_times_not_every_few_minutes(
    world: World,
) -> None:
    endpoint(world)
    session = create_session()["sessionId"]
    world.fan_out(session)  # its message sits in a queue nobody reads for an hour (a backlog)
    sent = 0
    for _ in range(60):
        world.clock.advance(60)
        sent += requeue_due(world.services)
    assert 1 <= sent <= 4  # at about 5, 10, 20 and 40 minutes; every 5 minutes would be 11
    while world.work():
        pass
    assert len(world.merchant.got) == 1  # the duplicates found it done


def test_the_requeue_job_and_recover_do_a_bounded_amount_of_work_per_call(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checkout_core.webhooks import deliveries
    from checkout_core.webhooks.deliveries import recover

    hook = endpoint(world)
    sessions = [create_session()["sessionId"] for _ in range(3)]
    for session in sessions:
        world.fan_out(session)
    world.sqs.purge_queue(QueueUrl=world.queue_url)
    world.clock.advance(get_settings().webhook_requeue_grace_seconds + 10)
    assert requeue_due(world.services, groups_per_run=2) == 2
    assert requeue_due(world.services, groups_per_run=2) == 1  # the third, the next run
    world.merchant.status = 500
    while world.work():
        pass
    assert all(d["status"] == "FAILED" for d in world.delivery_log(hook["endpointId"]))
    world.merchant.status = 200
    since = (world.clock.now.replace(year=2000)).isoformat()
    # A call whose time budget is spent stops after the one it must make (calls again always progress)
    monkeypatch.setattr(deliveries, "RECOVER_BUDGET_SECONDS", -1.0)
    assert recover(world.services, TENANT, hook["endpointId"], since).recovered == 1
    monkeypatch.setattr(deliveries, "RECOVER_BUDGET_SECONDS", 3.0)
    monkeypatch.setattr(deliveries, "RECOVER_PER_CALL", 1)
    assert recover(world.services, TENANT, hook["endpointId"], since).recovered == 1
    assert recover(world.services, TENANT, hook["endpointId"], since).recovered == 1
    assert recover(world.services, TENANT, hook["endpointId"], since).recovered == 0


def test_a_slow_endpoint_holds_only_its_own_group_and_only_its_message_is_reported(world: World) -> None:
    import threading

    from checkout_core.webhooks.consumers import deliver_batch

    slow = create_endpoint(world.services, TENANT, CreateEndpointRequest(url="https://slow.example.com/x"))
    endpoint(world)  # https://hooks.example.com/x, quick
    quick_answered = threading.Event()
    saw_quick_while_slow: list[bool] = []

    def send(url: str, headers: dict[str, str], body: str, allow_private: bool) -> Answer:
        if url.startswith("https://slow."):
            # The slow endpoint's attempt is still running when the other group's request is answered
            saw_quick_while_slow.append(quick_answered.wait(10))
            return Answer(None, error="no complete answer within 15 s")
        quick_answered.set()
        return Answer(200)

    world.services.send = send
    world.fan_out(create_session()["sessionId"])
    messages = world.receive()
    assert len({m["Attributes"]["MessageGroupId"] for m in messages}) == 2
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
    assert saw_quick_while_slow == [True]
    slow_ids = [m["MessageId"] for m in messages if json.loads(m["Body"])["endpointId"] == slow.endpointId]
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == slow_ids


def test_an_endpoint_made_while_the_fan_out_keeps_the_tenants_endpoints_gets_the_next_event(
    world: World,
) -> None:
    # Given a fan-out that keeps the tenant's endpoints from an earlier batch
    first = endpoint(world)
    world.fan_out(create_session()["sessionId"])
    kept = create_session()["sessionId"]
    kept_events = events(kept)
    calls: list[str] = []
    client = world.services.db._client_factory()
    client.meta.events.register(
        "before-call.dynamodb.*", lambda event_name, **kw: calls.append(event_name), unique_id="c"
    )
    try:
        # When the kept endpoints are still the tenant's, a batch reads only the session's tenant, and
        # writes one transaction per event
        FanOut(world.services).run(kept_events)
        assert calls == ["before-call.dynamodb.BatchGetItem", "before-call.dynamodb.TransactWriteItems"]
        # When a second endpoint is made, then a session's event is committed and fanned out
        second = create_endpoint(
            world.services, TENANT, CreateEndpointRequest(url="https://hooks.example.com/y")
        ).endpointId
        session = create_session()["sessionId"]
        session_events = events(session)
        calls.clear()
        FanOut(world.services).run(session_events)
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", unique_id="c")
    # Then its transaction found the tenant's endpoints changed, read them again, and both endpoints have it
    assert calls.count("before-call.dynamodb.TransactWriteItems") == 2
    assert "before-call.dynamodb.Query" in calls
    for endpoint_id in (first["endpointId"], second):
        assert [d for d in world.delivery_log(endpoint_id) if d.get("sessionId") == session]
    # And a deleted endpoint is dropped from what the fan-out keeps, by the same check
    delete_endpoint(world.services, TENANT, second)
    later = create_session()["sessionId"]
    world.fan_out(later)
    assert [d for d in world.delivery_log(first["endpointId"]) if d.get("sessionId") == later]
    assert not [d for d in world.delivery_log(second) if d.get("sessionId") == later]


def test_a_tenant_whose_endpoints_were_made_before_the_tags_is_given_one(world: World) -> None:
    # Given an endpoint made before the tenant's endpoints tag and its copies existed
    hook = endpoint(world)
    client = world.services.db._client_factory()
    table = world.services.db.table_name
    client.update_item(
        TableName=table,
        Key={"pk": {"S": f"TENANT#{TENANT.tenant_id}"}, "sk": {"S": "ENDPOINTS"}},
        UpdateExpression="REMOVE endpointsTag",
    )
    for n in range(TENANT_COPIES):
        client.delete_item(
            TableName=table, Key={"pk": {"S": f"TENANT#{TENANT.tenant_id}#{n}"}, "sk": {"S": "ENDPOINTS"}}
        )
    # When a session's events are fanned out
    session = create_session()["sessionId"]
    world.fan_out(session)
    # Then the tenant has a tag, in its count item and every copy, and the event has its delivery
    version, tag, endpoints = world.services.db.endpoints_and_tag(TENANT.tenant_id)
    assert tag is not None and version == 1 and endpoints
    for n in range(TENANT_COPIES):
        copy = client.get_item(
            TableName=table, Key={"pk": {"S": f"TENANT#{TENANT.tenant_id}#{n}"}, "sk": {"S": "ENDPOINTS"}}
        )["Item"]
        assert copy["endpointsTag"] == {"S": tag}
    assert [d for d in world.delivery_log(hook["endpointId"]) if d.get("sessionId") == session]
