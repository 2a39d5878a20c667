"""The capacity model: which DynamoDB partition keys and which SQS message groups a load touches, and how
hard, from the real handlers running in process against moto.

Each modelled session is what contract §10 counts: created, a payment attempt, then completed (the provider
settles it) or cancelled by the merchant, its webhooks fanned out and delivered to its tenant's endpoint,
and a page of the tenant's list read now and then. Every AWS call the code makes goes through the cached
clients of `checkout_core.aws`; botocore hooks on them (`before-parameter-build`, which sees the call's
parameters, and `after-call`) record, per call, the partition keys it reads or writes (table and index), and
the message group of every message it sends.

Index writes are derived as DynamoDB makes them: an item's entry in a global secondary index is written
when the write changes that entry (its keys or projected attributes), in the partition of its index key,
and not otherwise (the item is read from moto's backend before and after each write).

What AWS itself does is modelled from template.yaml: the Pipe that sends each new timeline event to the
fan-out's queue (its `MessageGroupId` evaluated on each event), and Lambda's SQS event source, which hands
the fan-out batches of up to ten messages in queue order and the delivery function what it receives.

Rates: a key touched `k` times by `S` modelled sessions takes `k / S * N` accesses a second at N new
sessions a second (a per-session key is thereby counted as if its session lived one second: an upper
bound). Partition limits are DynamoDB's 1,000 write and 3,000 read units a second per partition, taken
here per call (an item up to 1 KB written, up to 4 KB read); SQS FIFO's 300 messages a second per group.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench import harness

WRITES_PER_KEY_LIMIT = 1_000
READS_PER_KEY_LIMIT = 3_000
MESSAGES_PER_GROUP_LIMIT = 300
ONE_TENANT_RATE = 300  # new sessions a second, contract §10
ALL_TENANTS_RATE = 1_000
FANOUT_QUEUE = "WebhookEventsQueue"
DELIVERY_QUEUE = "WebhookDeliveryQueue"
LIST_EVERY = 10  # one list page per this many sessions of a tenant
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,}")
_TENANT = re.compile(r"tenant-\d+")
_SHARD = re.compile(r"(OPEN|PENDING|RECONCILE|DELIVERY|TENANT#<tenant>|ENDPOINT#(?:<id>|[0-9a-f-]{36}))#\d+")
_IDEMPOTENCY = re.compile(r"id=[^ ]*#<id>")


def pattern(key: str) -> str:
    """A key with its ids, tenant names and shard numbers replaced by placeholders:
    `SessionsTable pk=SESSION#<id>`, `SessionsTable/byExpiry openShard=OPEN#<n>`,
    `SessionsTable pk=ENDPOINT#<id>#<n>`."""
    key = _SHARD.sub(r"\1#<n>", _TENANT.sub("<tenant>", _ID.sub("<id>", key)))
    return _IDEMPOTENCY.sub("id=<function>#<id>", key)


@dataclass
class AccessLog:
    """Reads and writes per partition key (`<table>[/<index>] <attribute>=<value>`), messages per
    (queue, group)."""

    reads: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)
    messages: Counter[tuple[str, str]] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    events: list[dict[str, Any]] = field(default_factory=list)
    path: str = ""  # the handler being driven: its calls and keys are also counted under its name
    invocations: Counter[str] = field(default_factory=Counter)
    path_calls: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    path_keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def read(self, key: str) -> None:
        self.reads[key] += 1
        self.path_keys[self.path].add(f"read {pattern(key)}")

    def write(self, key: str) -> None:
        self.writes[key] += 1
        self.path_keys[self.path].add(f"write {pattern(key)}")

    def message(self, queue: str, group: str) -> None:
        self.messages[(queue, group)] += 1
        self.path_keys[self.path].add(f"send {queue} group={pattern(group)}")

    def invoke(self, path: str) -> None:
        self.path = path
        self.invocations[path] += 1


class KeyRecorder:
    """The botocore hooks: `before-parameter-build` notes the keys of a call (and reads the items it will
    write), `after-call` adds the index writes the call made and the timeline events it committed."""

    def __init__(
        self, log: AccessLog, tables: dict[str, str], indexes: dict[str, list[dict[str, Any]]], region: str
    ):
        self.log = log
        self.tables = tables  # table name -> logical id
        self.indexes = indexes  # logical id -> its global secondary indexes
        self.region = region
        self.queue_names: dict[str, str] = {}

    # -- hooks ------------------------------------------------------------------------------------------

    def before_call(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        operation = model.name
        service = model.service_model.service_name
        self.log.calls[f"{service}:{operation}"] += 1
        self.log.path_calls[self.log.path][f"{service}:{operation}"] += 1
        if service == "sqs":
            self._messages(operation, params)
            return
        if service != "dynamodb":
            return
        written = []
        for table, kind, key, item in self._items(operation, params):
            target = f"{self.tables.get(table, table)} pk={key['pk']['S'] if 'pk' in key else _first(key)}"
            (self.log.write if kind == "write" else self.log.read)(target)
            if kind == "write" and self.indexes.get(self.tables.get(table, "")):
                written.append((table, key, self._read(table, key), item))
        for table, index, value in self._index_reads(operation, params):
            self.log.read(f"{self.tables.get(table, table)}/{index} {value}")
        context["capacity_written"] = written

    def after_call(self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if model.service_model.service_name != "dynamodb" or parsed.get("Error"):
            return
        for table, key, before, written in context.pop("capacity_written", []):
            after = self._read(table, key)
            for index_key in self._index_writes(self.tables[table], before, after):
                self.log.write(index_key)
            if written is not None and written.get("entity", {}).get("S") == "EVENT" and before is None:
                self.log.events.append(written)

    # -- what a call touches ----------------------------------------------------------------------------

    def _items(self, operation: str, params: dict[str, Any]) -> Iterator[tuple[str, str, Any, Any]]:
        """(table, read | write, key, item written or None) of each item a call names."""
        table = params.get("TableName", "")
        if operation == "GetItem":
            yield table, "read", params["Key"], None
        elif operation == "PutItem":
            yield table, "write", self._key_of(table, params["Item"]), params["Item"]
        elif operation in ("UpdateItem", "DeleteItem"):
            yield table, "write", params["Key"], None
        elif operation == "BatchGetItem":
            for name, request in params["RequestItems"].items():
                for key in request["Keys"]:
                    yield name, "read", key, None
        elif operation == "BatchWriteItem":
            for name, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        yield name, "write", self._key_of(name, item), item
                    else:
                        yield name, "write", request["DeleteRequest"]["Key"], None
        elif operation == "TransactGetItems":
            for entry in params["TransactItems"]:
                get = entry["Get"]
                yield get["TableName"], "read", get["Key"], None
        elif operation == "TransactWriteItems":
            # Every item of a transaction, a ConditionCheck included, consumes write units of its key.
            for entry in params["TransactItems"]:
                ((kind, part),) = entry.items()
                if kind == "Put":
                    yield (
                        part["TableName"],
                        "write",
                        self._key_of(part["TableName"], part["Item"]),
                        part["Item"],
                    )
                else:
                    yield part["TableName"], "write", part["Key"], None

    def _index_reads(self, operation: str, params: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
        if operation != "Query":
            return
        condition = params["KeyConditionExpression"]
        names = params.get("ExpressionAttributeNames", {})
        values = params.get("ExpressionAttributeValues", {})
        match = re.match(r"\s*\(?\s*([#\w]+)\s*=\s*(:\w+)", condition)
        if match is None:
            raise ValueError(f"unmodelled key condition {condition!r}")
        attribute = names.get(match.group(1), match.group(1))
        value = _scalar(values[match.group(2)])
        table = params["TableName"]
        if "IndexName" in params:
            yield table, params["IndexName"], f"{attribute}={value}"
        else:
            # a table query reads one partition of the table: counted as a read of that key
            self.log.read(f"{self.tables.get(table, table)} {attribute}={value}")

    def _messages(self, operation: str, params: dict[str, Any]) -> None:
        queue = self.queue_names.get(params.get("QueueUrl", ""), params.get("QueueUrl", ""))
        if operation == "SendMessage":
            self.log.message(queue, params.get("MessageGroupId", ""))
        elif operation == "SendMessageBatch":
            for entry in params["Entries"]:
                self.log.message(queue, entry.get("MessageGroupId", ""))

    # -- items and index entries ------------------------------------------------------------------------

    def _key_of(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in ("pk", "sk", "id") if name in item}

    def _read(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The item as moto holds it (read from its backend: no request, no hook)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][self.region]
        item = backend.get_item(table, key)
        return None if item is None else dict(item.to_json()["Attributes"])

    def _index_writes(
        self, logical_id: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> Iterator[str]:
        for index in self.indexes.get(logical_id, []):
            old, new = _entry(index, before), _entry(index, after)
            if old == new:
                continue
            name = index["IndexName"]
            hash_key = index["KeySchema"][0]["AttributeName"]
            if old is not None:
                yield f"{logical_id}/{name} {hash_key}={_scalar(old[hash_key])}"
            if new is not None and (old is None or old[hash_key] != new[hash_key]):
                yield f"{logical_id}/{name} {hash_key}={_scalar(new[hash_key])}"


def _scalar(value: dict[str, Any]) -> str:
    ((_, inner),) = value.items()
    return str(inner)


def _first(key: dict[str, Any]) -> str:
    name = next(iter(key))
    return f"{name}={_scalar(key[name])}" if name != "pk" else _scalar(key[name])


def _entry(index: dict[str, Any], item: dict[str, Any] | None) -> dict[str, Any] | None:
    """The item's entry in `index` (None: not in it), as DynamoDB projects it."""
    if item is None:
        return None
    keys = [key["AttributeName"] for key in index["KeySchema"]]
    if not all(name in item for name in keys):
        return None
    projection = index["Projection"]
    if projection["ProjectionType"] == "ALL":
        return dict(item)
    names = {"pk", "sk", *keys, *projection.get("NonKeyAttributes", [])}
    return {name: item[name] for name in names if name in item}


# -- the load --------------------------------------------------------------------------------------------


def _tenant(tenant_id: str) -> dict[str, str]:
    return {"tenantId": tenant_id, "returnHosts": "example.com"}


def _call(name: str, event: dict[str, Any], status: int) -> dict[str, Any]:
    return harness.body_of(harness.invoke(name, event), status)


def _session(log: AccessLog, tenant_id: str, index: int) -> str:
    """One session's life through the API handlers, each POST with an Idempotency-Key."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    body = {
        "amount": 5000,
        "currency": "USD",
        "referenceId": f"order-{index}",
        "returnUrl": "https://example.com/return",
    }
    event = harness.api_event(
        "POST", "/v1/sessions", "/v1/sessions", body=body, headers=headers, authorizer=_tenant(tenant_id)
    )
    log.invoke("create")
    session_id = str(_call("create_session", event, 201)["sessionId"])
    path = {"sessionId": session_id}
    attempt = harness.api_event(
        "POST",
        "/v1/sessions/{sessionId}/transactions",
        f"/v1/sessions/{session_id}/transactions",
        path,
        body={"provider": "sandbox_card"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
        authorizer=_tenant(tenant_id),
    )
    log.invoke("attempt")
    transaction_id = str(_call("create_transaction", attempt, 201)["transactionId"])
    if index % 2 == 0:
        log.invoke("provider event (completes)")
        harness.send_provider_event("sandbox_card", transaction_id, "SETTLED")
    else:
        cancel = harness.api_event(
            "POST",
            "/v1/sessions/{sessionId}/cancel",
            f"/v1/sessions/{session_id}/cancel",
            path,
            body={"reasonType": "CUSTOMER_REQUESTED"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
            authorizer=_tenant(tenant_id),
        )
        log.invoke("cancel")
        _call("cancel_session", cancel, 200)
    get = harness.api_event(
        "GET", "/v1/sessions/{sessionId}", f"/v1/sessions/{session_id}", path, authorizer=_tenant(tenant_id)
    )
    log.invoke("get")
    _call("get_session", get, 200)
    return session_id


def _list_page(log: AccessLog, tenant_id: str) -> None:
    event = harness.api_event("GET", "/v1/sessions", "/v1/sessions", authorizer=_tenant(tenant_id))
    event["queryStringParameters"] = {"limit": "20"}
    event["multiValueQueryStringParameters"] = {"limit": ["20"]}
    log.invoke("list page")
    _call("list_sessions", event, 200)


def _get_att(value: Any) -> Any:
    """The argument of a `!GetAtt` (YAML tag or mapping), else None."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"]
    return getattr(value, "value", None) if getattr(value, "tag", None) == "GetAtt" else None


def _is_queue(value: Any, logical_id: str) -> bool:
    return _get_att(value) in (f"{logical_id}.Arn", [logical_id, "Arn"])


def pipe_group(template: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    """How the template's feed of the fan-out's queue picks an event's message group: a Pipe's
    `MessageGroupId` (a `$.path` of the event, or static), or a bus rule's static one."""
    from local import cfn
    from local.streams import _dynamic

    for pipe in cfn.resources("AWS::Pipes::Pipe", template).values():
        properties = pipe["Properties"]
        if _is_queue(properties.get("Target"), FANOUT_QUEUE):
            group = properties["TargetParameters"]["SqsQueueParameters"]["MessageGroupId"]
            return lambda event: str(_dynamic(group, event))
    for rule in cfn.resources("AWS::Events::Rule", template).values():
        for target in rule["Properties"].get("Targets", []):
            if _is_queue(target.get("Arn"), FANOUT_QUEUE):
                static = str(target.get("SqsParameters", {}).get("MessageGroupId", ""))
                return lambda event: static
    raise LookupError(f"nothing in the template feeds {FANOUT_QUEUE}")


def run_load(sessions: int, tenants: int, template: dict[str, Any] | None = None) -> AccessLog:
    """Drives `sessions` sessions spread round-robin over `tenants` tenants, each tenant with one webhook
    endpoint, inside an active moto with the template's tables; returns what they touched. `template`
    (default: template.yaml) decides the indexes' projections and the fan-out's message groups."""
    from dataclasses import replace

    import boto3

    from checkout_core import aws
    from checkout_core.models import CreateEndpointRequest, Tenant
    from checkout_core.repository import item_from_dynamo
    from checkout_core.settings import get_settings
    from checkout_core.views import event_view
    from checkout_core.webhooks import consumers, fanout
    from checkout_core.webhooks.consumers import deliver_batch, fan_out_batch
    from checkout_core.webhooks.endpoints import create_endpoint
    from checkout_core.webhooks.sender import Answer
    from checkout_core.webhooks.services import WebhookServices
    from local import cfn

    settings = get_settings()
    platform = boto3.client("sqs")  # the event source mapping's receives and deletes: AWS's, not counted
    queue_url = platform.create_queue(
        QueueName=f"capacity-{uuid.uuid4().hex[:8]}.fifo",
        Attributes={
            "FifoQueue": "true",
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )["QueueUrl"]
    delivered: list[str] = []

    def send(url: str, headers: dict[str, str], body: str, allow_private: bool) -> Answer:
        delivered.append(headers["webhook-id"])
        return Answer(200)

    services = WebhookServices(
        settings=replace(settings, webhook_allow_private_urls=True, webhook_queue_url=queue_url), send=send
    )
    fanout._tenant_of_session.clear()
    fanout._endpoints_of_tenant.clear()
    consumers._endpoints_seen = False
    tenant_ids = [f"tenant-{n}" for n in range(tenants)]
    for tenant_id in tenant_ids:
        create_endpoint(
            services,
            Tenant(tenant_id, frozenset()),
            CreateEndpointRequest(url="https://hooks.example.com/in"),
        )

    template = template or cfn.load_template()
    tables = {settings.table_name: "SessionsTable", settings.idempotency_table_name: "IdempotencyTable"}
    indexes = {
        logical_id: template["Resources"][logical_id]["Properties"].get("GlobalSecondaryIndexes", [])
        for logical_id in tables.values()
    }
    log = AccessLog()
    recorder = KeyRecorder(log, tables, indexes, platform.meta.region_name)
    recorder.queue_names[queue_url] = DELIVERY_QUEUE
    group_of = pipe_group(template)
    clients = [aws.client("dynamodb"), aws.client("sqs")]
    for client in clients:
        client.meta.events.register(
            "before-parameter-build.*.*", recorder.before_call, unique_id="capacity-before"
        )
        client.meta.events.register("after-call.*.*", recorder.after_call, unique_id="capacity-after")
    try:
        for index in range(sessions):
            tenant_id = tenant_ids[index % tenants]
            _session(log, tenant_id, index)
            if (index // tenants) % LIST_EVERY == 0:
                _list_page(log, tenant_id)
        # The Pipe: each committed event, in commit order, to the fan-out's queue in its group.
        events = [event_view(item_from_dynamo(item)).model_dump(mode="json") for item in log.events]
        for event in events:
            log.path = "pipe"
            log.message(FANOUT_QUEUE, group_of(event))
        # The fan-out's event source: batches of up to ten messages, in queue order.
        for start in range(0, len(events), 10):
            records = [
                {
                    "messageId": str(uuid.uuid4()),
                    "receiptHandle": str(uuid.uuid4()),
                    "body": json.dumps({"detail": event}),
                    "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": group_of(event)},
                }
                for event in events[start : start + 10]
            ]
            log.invoke("fan-out batch")
            assert fan_out_batch(services, records) == {"batchItemFailures": []}
        # The delivery function's event source: what the queue hands out, ten at a time.
        while True:
            answer = platform.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            records = [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m["Attributes"],
                }
                for m in messages
            ]
            log.invoke("delivery batch")
            assert deliver_batch(services, records, None) == {"batchItemFailures": []}
            platform.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
    finally:
        for client in clients:
            client.meta.events.unregister("before-parameter-build.*.*", unique_id="capacity-before")
            client.meta.events.unregister("after-call.*.*", unique_id="capacity-after")
    if sorted(delivered) != sorted(event["eventId"] for event in events):
        raise AssertionError(f"{len(delivered)} webhooks delivered for {len(events)} events")
    return log


# -- the report --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hottest:
    key: str
    count: int
    per_second: float


def _hottest(counts: Counter[str], sessions: int, rate: int) -> Hottest:
    key, count = counts.most_common(1)[0]
    return Hottest(key, count, round(count / sessions * rate, 1))


def _per_key_counts(counts: Counter[str]) -> dict[str, float]:
    """Each key's count, except that a shard key (`OPEN#<n>`, `DELIVERY#<n>`, ...) is given its pattern's
    mean over the shards used: its shard comes from random bits of an id, so every shard takes the same
    share in expectation, and the maximum of a small sample is noise (20 sessions' 80 deliveries in 32
    shards put 7 in one about as often as not). A shard number that is not random, such as a single
    shard, still shows: the mean over one shard is all of it."""
    per_key: dict[str, float] = {}
    sharded: dict[str, list[str]] = defaultdict(list)
    for key, count in counts.items():
        if _SHARD.search(key):
            sharded[pattern(key)].append(key)
        else:
            per_key[key] = count
    for keys in sharded.values():
        mean = sum(counts[key] for key in keys) / len(keys)
        per_key.update(dict.fromkeys(keys, mean))
    return per_key


def summary(log: AccessLog, sessions: int, rate: int) -> dict[str, Any]:
    """Per key and per group: the hottest, their share, and their rate at `rate` new sessions a second."""
    groups: Counter[str] = Counter({f"{queue} {group}": n for (queue, group), n in log.messages.items()})
    fanout_groups = {group for (queue, group) in log.messages if queue == FANOUT_QUEUE}
    write, read, message = (
        _hottest(log.writes, sessions, rate),
        _hottest(log.reads, sessions, rate),
        _hottest(groups, sessions, rate),
    )
    by_pattern: dict[str, dict[str, float]] = defaultdict(lambda: {"writes": 0.0, "reads": 0.0})
    for kind, counts in (("writes", log.writes), ("reads", log.reads)):
        for key, per_key in _per_key_counts(counts).items():
            entry = by_pattern[pattern(key)]
            entry[kind] = max(entry[kind], round(per_key / sessions * rate, 1))
    return {
        "sessions": sessions,
        "rate": rate,
        "writes_total": sum(log.writes.values()),
        "reads_total": sum(log.reads.values()),
        "messages_total": sum(groups.values()),
        "hottest_write": write.__dict__,
        "hottest_read": read.__dict__,
        "hottest_group": message.__dict__,
        "max_writes_per_key_share": round(write.count / sum(log.writes.values()), 4),
        "max_reads_per_key_share": round(read.count / sum(log.reads.values()), 4),
        "max_messages_per_group_share": round(message.count / sum(groups.values()), 4),
        "fanout_groups_used": len(fanout_groups),
        "keys": dict(sorted(by_pattern.items())),
        "calls_per_session": {name: round(n / sessions, 2) for name, n in sorted(log.calls.items())},
        "paths": {
            path: {
                "invocations": log.invocations[path],
                "calls_per_invocation": {
                    name: round(n / max(1, log.invocations[path]), 2)
                    for name, n in sorted(log.path_calls[path].items())
                },
                "keys": sorted(log.path_keys[path]),
            }
            for path in sorted(set(log.path_calls) | set(log.path_keys))
            if path
        },
    }


def over_limits(result: dict[str, Any]) -> list[str]:
    """The keys and groups that pass a limit at the result's rate."""
    problems = []
    for key, rates in result["keys"].items():
        if rates["writes"] > WRITES_PER_KEY_LIMIT:
            problems.append(f"{key}: {rates['writes']} writes/s")
        if rates["reads"] > READS_PER_KEY_LIMIT:
            problems.append(f"{key}: {rates['reads']} reads/s")
    if result["hottest_group"]["per_second"] > MESSAGES_PER_GROUP_LIMIT:
        problems.append(
            f"{pattern(result['hottest_group']['key'])}: {result['hottest_group']['per_second']} msgs/s"
        )
    return problems


def model(sessions: int, tenants: int, rate: int, template: dict[str, Any] | None = None) -> dict[str, Any]:
    return summary(run_load(sessions, tenants, template), sessions, rate)


def measure(
    one_tenant_sessions: int = 200, all_tenants_sessions: int = 1000, tenants: int = 100
) -> dict[str, Any]:
    from moto import mock_aws

    results = {}
    for name, sessions, count, rate in (
        ("one_tenant", one_tenant_sessions, 1, ONE_TENANT_RATE),
        ("all_tenants", all_tenants_sessions, tenants, ALL_TENANTS_RATE),
    ):
        with mock_aws():
            harness.reset_caches()
            harness.create_tables()
            results[name] = model(sessions, count, rate)
    one, every = results["one_tenant"], results["all_tenants"]
    return {
        **results,
        "tenants": tenants,
        "max_writes_per_key_share_1_tenant": one["max_writes_per_key_share"],
        "max_messages_per_group_share": max(
            one["max_messages_per_group_share"], every["max_messages_per_group_share"]
        ),
        "fanout_groups_used": every["fanout_groups_used"],
        "max_writes_per_key_per_second_1_tenant": one["hottest_write"]["per_second"],
        "max_reads_per_key_per_second_1_tenant": one["hottest_read"]["per_second"],
        "max_messages_per_group_per_second": every["hottest_group"]["per_second"],
        "over_limits": over_limits(one) + over_limits(every),
    }


if __name__ == "__main__":
    import sys

    harness.prepare_environment()
    harness.silence_stdout()
    sizes = [int(n) for n in sys.argv[1:3]] or [200, 1000]
    harness.say(json.dumps(measure(*sizes), indent=2))
