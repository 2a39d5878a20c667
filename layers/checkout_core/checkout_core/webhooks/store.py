"""Webhook endpoints, deliveries and the fan-out watermark in the sessions table: the only webhook code that
talks to DynamoDB.

| item | pk | sk |
|---|---|---|
| endpoint | `TENANT#<tenantId>` | `ENDPOINT#<endpointId>`: version, secrets, failingSince |
| endpoint count | `TENANT#<tenantId>` | `ENDPOINTS`: at most 16; `endpointsVersion`, `endpointsTag` |
| endpoints tag copy | `TENANT#<tenantId>#<n>` | `ENDPOINTS`: `endpointsTag`, what the fan-out checks |
| delivery | `ENDPOINT#<endpointId>#<n>` | `DELIVERY#<deliveryId>`: UUIDv7, newest first by key; TTL 30 days |
| endpoint version copy | `ENDPOINT#<endpointId>#<n>` | `VERSION`: the endpoint's, what attempts check |
| fan-out watermark | `WEBHOOKS#<sessionId>` | `FANOUT`: `fannedOut` (events done), `waiting#<endpointId>` |

An endpoint's delivery log is in LOG_SHARDS shards, `n` from the delivery id (so a read by id knows its
key); a page of it merges the shards by delivery id. Deliveries made before the sharding are under
`ENDPOINT#<endpointId>`, read as one more shard. Every write of an endpoint also writes its version into
each shard's copy, so an attempt's start checks a key its delivery's shard already takes, not the
tenant's.

Every change of a tenant's endpoints that the fan-out chooses by (made, deleted, enabled or disabled, its
event types) gives the tenant a new random `endpointsTag`, written to the count item and to each of its
TENANT_COPIES copies in the same transaction. The fan-out keeps a tenant's endpoints with the tag it read
and checks that tag in the transaction that writes an event's deliveries, on the copy of the session's
shard: a write of one of 16 keys, not of the tenant's one key, and no read. A tenant whose endpoints were
made before the tags has none: the fan-out gives it one (only while its endpoints version is still the one
it read), copies included.

`waiting#<endpointId>` holds the sequences of the session's deliveries to that endpoint still waiting.

A delivery that expects a message carries `deliveryShard` and `checkAt` (sparse index `byDeliveryCheck`):
when `checkAt` passes and nothing has touched the delivery, its message is gone and the scheduled job sends
another. `groupKey` (endpoint + session) and `sequence` (index `byDeliveryGroup`) put a session's
deliveries to one endpoint in order: a delivery is sent only when no lower sequence of its group is in the
watermark's `waiting#<endpointId>` set, checked in the transaction that records the attempt as started.

Every transaction carries a ClientRequestToken: botocore's retry of one that committed is answered as the
first was, instead of running it twice."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from checkout_core import aws
from checkout_core.errors import EndpointLimitReached, InvalidRequest, ServiceUnavailable
from checkout_core.repository import _THROTTLING, event_sort_key, item_from_dynamo

MAX_ENDPOINTS = 16
MAX_TRANSACTION_ITEMS = 100
ALL_ENDPOINTS_KEY = {"pk": "ENDPOINTS", "sk": "ALL"}
# Every delivery enters and leaves byDeliveryCheck: ~8 index writes per session with one endpoint, so at
# 1,000 new sessions a second ten shards took ~800 writes a second each. 32 keep each near 250; shards
# 0..9 of before are among them, so nothing waiting there is missed.
DELIVERY_SHARDS = 32
# An endpoint that takes every event of a tenant at 300 sessions a second wrote its one delivery-log key
# ~13.5 times per session (each delivery made, its attempt started, then recorded), and each start checks
# the endpoint's version: ~18 writes per session, 5,400 a second. 16 shards keep each near 340.
LOG_SHARDS = 16
# The fan-out checks the tenant's endpoints tag in every transaction that writes an event's deliveries: on
# one key, ~5 writes per session (1,500 a second at 300 sessions a second). 16 copies keep each near 100.
TENANT_COPIES = 16


def endpoint_key(tenant_id: str, endpoint_id: str) -> dict[str, str]:
    return {"pk": f"TENANT#{tenant_id}", "sk": f"ENDPOINT#{endpoint_id}"}


def log_shard(delivery_id: str) -> int:
    """The shard of the endpoint's delivery log a delivery lives in: from its id, so a read by id knows it."""
    return int(delivery_id.replace("-", "")[-16:-8], 16) % LOG_SHARDS


def log_partitions(endpoint_id: str) -> list[str]:
    """Every partition of an endpoint's delivery log: its shards, then the one key of before the sharding."""
    return [f"ENDPOINT#{endpoint_id}#{shard}" for shard in range(LOG_SHARDS)] + [f"ENDPOINT#{endpoint_id}"]


def delivery_key(endpoint_id: str, delivery_id: str) -> dict[str, str]:
    return {"pk": f"ENDPOINT#{endpoint_id}#{log_shard(delivery_id)}", "sk": f"DELIVERY#{delivery_id}"}


def unsharded_delivery_key(endpoint_id: str, delivery_id: str) -> dict[str, str]:
    """Where a delivery made before the log was sharded lives."""
    return {"pk": f"ENDPOINT#{endpoint_id}", "sk": f"DELIVERY#{delivery_id}"}


def key_of_delivery(delivery: dict[str, Any]) -> dict[str, str]:
    """The key of a delivery as read (an item read carries its own, perhaps unsharded), else as made now."""
    if "pk" in delivery and "sk" in delivery:
        return {"pk": delivery["pk"], "sk": delivery["sk"]}
    return delivery_key(delivery["endpointId"], delivery["deliveryId"])


def version_copy_key(endpoint_id: str, shard: int) -> dict[str, str]:
    """The copy of the endpoint's version in one shard of its delivery log: what an attempt's start checks."""
    return {"pk": f"ENDPOINT#{endpoint_id}#{shard}", "sk": "VERSION"}


def tenant_copy_key(tenant_id: str, session_id: str) -> dict[str, str]:
    """The copy of the tenant's endpoints tag that the fan-out of a session's events checks (n from the
    session id)."""
    return {"pk": f"TENANT#{tenant_id}#{_hash_shard(session_id, TENANT_COPIES)}", "sk": "ENDPOINTS"}


def _hash_shard(some_id: str, shards: int) -> int:
    return int(some_id.replace("-", "")[-8:], 16) % shards


def watermark_key(session_id: str) -> dict[str, str]:
    return {"pk": f"WEBHOOKS#{session_id}", "sk": "FANOUT"}


def waiting_attribute(endpoint_id: str) -> str:
    """The watermark's set of the sequences of a session's deliveries to one endpoint still waiting."""
    return f"waiting#{endpoint_id}"


def catch_up_shard(session_id: str) -> str:
    return f"FANOUT#{int(session_id.replace('-', '')[-8:], 16) % DELIVERY_SHARDS}"


def delivery_shard(delivery_id: str) -> str:
    return f"DELIVERY#{int(delivery_id.replace('-', '')[-8:], 16) % DELIVERY_SHARDS}"


class Stale(Exception):
    """A conditional write found the item changed (or gone) since it was read."""


class GroupBlocked(Exception):
    """A lower sequence of the delivery's group (endpoint + session) still waits: it goes first."""


@dataclass(frozen=True)
class EndpointMoved(Exception):
    """The endpoint is not at the version the attempt knew: `endpoint` is it as it is now (None: deleted)."""

    endpoint: dict[str, Any] | None


class EndpointsChanged(Exception):
    """The tenant's endpoints changed since the fan-out read them (its tag copy says another tag)."""


@dataclass(frozen=True)
class WatermarkMoved(Exception):
    """The session's fan-out watermark is not where this event needs it: `fanned_out` events are done."""

    fanned_out: int


FAN_OUT_FIELDS = (
    "pk",
    "sk",
    "tenantId",
    "endpointId",
    "eventTypes",
    "status",
    "version",
    "createdAt",
    "endpointsVersion",
    "endpointsTag",
)
GROUP_CHECK_DEPTH = 100  # a session has far fewer events; the condition stays well within 4 KB
_AS_READ = "#st = :status AND #at = :attempts"


def _as_read_values(delivery: dict[str, Any]) -> dict[str, Any]:
    return {
        "#st": "status",
        "#at": "attempts",
        ":status": delivery["status"],
        ":attempts": delivery["attempts"],
    }


class WebhookStore:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] | None = None) -> None:
        self.table_name = table_name
        self._client_factory = client_factory or (lambda: aws.client("dynamodb"))
        self._serializer: Any = None

    # -- plumbing -------------------------------------------------------------------------------------

    def _serialize(self, item: dict[str, Any]) -> dict[str, Any]:
        if self._serializer is None:
            from boto3.dynamodb.types import TypeSerializer

            self._serializer = TypeSerializer()
        return {key: self._serializer.serialize(value) for key, value in item.items()}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            result: dict[str, Any] = getattr(self._client_factory(), operation)(**kwargs)
            return result
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _THROTTLING:
                raise ServiceUnavailable() from exc
            raise

    def _update(
        self,
        key: dict[str, str],
        set_values: dict[str, Any],
        remove: Sequence[str] = (),
        condition: str = "attribute_exists(pk)",
        condition_values: dict[str, Any] | None = None,
        add: dict[str, int] | None = None,
    ) -> None:
        """One conditional UpdateItem; Stale when the condition fails. `condition` names attributes as
        `#name` of the attributes set, removed or listed in `condition_values`' `#` keys."""
        from botocore.exceptions import ClientError

        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        assignments = []
        for index, (name, value) in enumerate(set_values.items()):
            names[f"#s{index}"] = name
            values[f":s{index}"] = value
            assignments.append(f"#s{index} = :s{index}")
        for index, (name, delta) in enumerate((add or {}).items()):
            names[f"#a{index}"] = name
            values[f":a{index}"] = delta
            assignments.append(f"#a{index} = if_not_exists(#a{index}, :zero) + :a{index}")
            values[":zero"] = 0
        expression = "SET " + ", ".join(assignments) if assignments else ""
        if remove:
            for index, name in enumerate(remove):
                names[f"#r{index}"] = name
            expression += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(remove)))
        for placeholder, value in (condition_values or {}).items():
            if placeholder.startswith("#"):
                names[placeholder] = value
            else:
                values[placeholder] = value
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": self._serialize(key),
            "UpdateExpression": expression.strip(),
            "ConditionExpression": condition,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = self._serialize(values)
        try:
            self._call("update_item", **kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Stale() from exc
            raise

    def _query(self, max_pages: int | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs["TableName"] = self.table_name
        pages = 0
        while True:
            answer = self._call("query", **kwargs)
            pages += 1
            for item in answer.get("Items", []):
                yield item_from_dynamo(item)
            if "LastEvaluatedKey" not in answer or (max_pages is not None and pages >= max_pages):
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _page(
        self, kwargs: dict[str, Any], limit: int, cursor: str | None, key_names: tuple[str, str], pk: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a list, newest first, `limit` items that pass the filter at most."""
        kwargs = {**kwargs, "TableName": self.table_name, "ScanIndexForward": False, "Limit": limit}
        if cursor:
            kwargs["ExclusiveStartKey"] = self._serialize(decode_cursor(cursor, pk))
        found: list[dict[str, Any]] = []
        for _ in range(10):
            answer = self._call("query", **kwargs)
            for raw in answer.get("Items", []):
                found.append(item_from_dynamo(raw))
                if len(found) == limit:
                    more = raw is not answer["Items"][-1] or "LastEvaluatedKey" in answer
                    return found, encode_cursor(found[-1], key_names) if more else None
            if "LastEvaluatedKey" not in answer:
                return found, None
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return found, encode_cursor(item_from_dynamo(kwargs["ExclusiveStartKey"]), key_names)

    def _transact(self, items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """TransactWriteItems; None when it went through, else the cancellation reasons."""
        from botocore.exceptions import ClientError

        try:
            # One token per logical write: botocore's retries of this call reuse it.
            self._call("transact_write_items", TransactItems=items, ClientRequestToken=str(uuid.uuid4()))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "TransactionConflictException":
                raise ServiceUnavailable() from exc
            if error.get("Code") != "TransactionCanceledException":
                raise
            reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons", [])
            if any(r.get("Code") not in ("None", "ConditionalCheckFailed", None) for r in reasons):
                raise ServiceUnavailable() from exc
            return reasons
        return None

    # -- endpoints ------------------------------------------------------------------------------------

    def create_endpoint(self, endpoint: dict[str, Any]) -> None:
        """Saves a new endpoint and counts it; EndpointLimitReached past MAX_ENDPOINTS."""
        counter = {"pk": endpoint["pk"], "sk": "ENDPOINTS"}
        tenant_id, tag = endpoint["tenantId"], new_tag()
        reasons = self._transact(
            [
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": self._serialize(counter),
                        "UpdateExpression": "SET #c = if_not_exists(#c, :zero) + :one, "
                        "#v = if_not_exists(#v, :zero) + :one, #t = :tag",
                        "ConditionExpression": "attribute_not_exists(#c) OR #c < :max",
                        "ExpressionAttributeNames": {
                            "#c": "endpointCount",
                            "#v": "endpointsVersion",
                            "#t": "endpointsTag",
                        },
                        "ExpressionAttributeValues": self._serialize(
                            {":zero": 0, ":one": 1, ":max": MAX_ENDPOINTS, ":tag": tag}
                        ),
                    }
                },
                self._put_new(endpoint),
                self._count_all(+1),
                *self._version_copies(endpoint["endpointId"], endpoint["version"]),
                *self._tag_copies(tenant_id, tag),
            ]
        )
        if reasons is not None:
            if reasons[0].get("Code") == "ConditionalCheckFailed":
                raise EndpointLimitReached(MAX_ENDPOINTS)
            raise ServiceUnavailable()

    def _count_all(self, delta: int) -> dict[str, Any]:
        """The move of the count of every tenant's endpoints, in the transaction that adds or removes one."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._serialize(ALL_ENDPOINTS_KEY),
                "UpdateExpression": "SET #c = if_not_exists(#c, :zero) + :delta",
                "ExpressionAttributeNames": {"#c": "endpointCount"},
                "ExpressionAttributeValues": self._serialize({":zero": 0, ":delta": delta}),
            }
        }

    def any_endpoints(self) -> bool:
        """Whether any tenant has an endpoint (one strongly consistent GetItem)."""
        answer = self._call(
            "get_item", TableName=self.table_name, Key=self._serialize(ALL_ENDPOINTS_KEY), ConsistentRead=True
        )
        return int(item_from_dynamo(answer.get("Item") or {}).get("endpointCount", 0)) > 0

    def get_endpoint(self, tenant_id: str, endpoint_id: str) -> dict[str, Any] | None:
        answer = self._call(
            "get_item",
            TableName=self.table_name,
            Key=self._serialize(endpoint_key(tenant_id, endpoint_id)),
            ConsistentRead=True,
        )
        return item_from_dynamo(answer["Item"]) if "Item" in answer else None

    def endpoints_of(self, tenant_id: str) -> tuple[int | None, list[dict[str, Any]]]:
        """Every endpoint of a tenant (at most 16), without its secrets, and the tenant's endpoints version
        (None: never set), in one Query: the count item (`ENDPOINTS`) sorts with the endpoints."""
        version, _, endpoints = self.endpoints_and_tag(tenant_id)
        return version, endpoints

    def endpoints_and_tag(self, tenant_id: str) -> tuple[int | None, str | None, list[dict[str, Any]]]:
        """The tenant's endpoints version, its endpoints tag (None: none yet) and its endpoints, as
        `endpoints_of` reads them."""
        items = list(
            self._query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues=self._serialize(
                    {":pk": f"TENANT#{tenant_id}", ":prefix": "ENDPOINT"}
                ),
                # What the fan-out chooses by; never the secrets.
                ProjectionExpression=", ".join(f"#p{i}" for i in range(len(FAN_OUT_FIELDS))),
                ExpressionAttributeNames={f"#p{i}": name for i, name in enumerate(FAN_OUT_FIELDS)},
                ConsistentRead=True,
            )
        )
        counter = next((item for item in items if item["sk"] == "ENDPOINTS"), {})
        version = counter.get("endpointsVersion")
        endpoints = [item for item in items if item["sk"] != "ENDPOINTS"]
        return (None if version is None else int(version)), counter.get("endpointsTag"), endpoints

    def tag_endpoints(self, tenant_id: str, version: int) -> str | None:
        """Gives a tenant whose endpoints were made before the tags a tag, in its count item and every copy,
        if its endpoints version is still `version` and it has no tag yet; None when not (read again)."""
        tag = new_tag()
        reasons = self._transact(
            [
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": self._serialize({"pk": f"TENANT#{tenant_id}", "sk": "ENDPOINTS"}),
                        "UpdateExpression": "SET #t = :tag",
                        "ConditionExpression": "#v = :v AND attribute_not_exists(#t)",
                        "ExpressionAttributeNames": {"#v": "endpointsVersion", "#t": "endpointsTag"},
                        "ExpressionAttributeValues": self._serialize({":v": version, ":tag": tag}),
                    }
                },
                *self._tag_copies(tenant_id, tag),
            ]
        )
        return tag if reasons is None else None

    def list_endpoints(
        self, tenant_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        kwargs = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": self._serialize(
                {":pk": f"TENANT#{tenant_id}", ":prefix": "ENDPOINT#"}
            ),
        }
        return self._page(kwargs, limit, cursor, ("pk", "sk"), f"TENANT#{tenant_id}")

    def update_endpoint(
        self,
        current: dict[str, Any],
        set_values: dict[str, Any],
        remove: Sequence[str] = (),
        bump_tenant: bool = False,
    ) -> dict[str, Any]:
        """Changes the endpoint `current` (as read) if it is still at its version, bumps that version and
        returns the endpoint as written; Stale otherwise. `bump_tenant` also moves the tenant's endpoints
        version, in the same transaction: the fan-out's copy of the tenant's endpoints is then stale."""
        key = endpoint_key(current["tenantId"], current["endpointId"])
        written = {**set_values, "version": current["version"] + 1}
        names = {f"#s{i}": name for i, name in enumerate(written)}
        values = {f":s{i}": value for i, value in enumerate(written.values())}
        expression = "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(names)))
        if remove:
            names.update({f"#r{i}": name for i, name in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        update = {
            "TableName": self.table_name,
            "Key": self._serialize(key),
            "UpdateExpression": expression,
            "ConditionExpression": "#version = :seen",
            "ExpressionAttributeNames": {**names, "#version": "version"},
            "ExpressionAttributeValues": self._serialize({**values, ":seen": current["version"]}),
        }
        items = [{"Update": update}, *self._version_copies(current["endpointId"], written["version"])]
        if bump_tenant:
            tag = new_tag()
            items += [
                self._bump_endpoints_version(current["tenantId"], tag),
                *self._tag_copies(current["tenantId"], tag),
            ]
        if self._transact(items) is not None:
            raise Stale()
        return {k: v for k, v in {**current, **written}.items() if k not in remove}

    def _version_copies(self, endpoint_id: str, version: int) -> list[dict[str, Any]]:
        """The endpoint's version into its copy in each shard of its delivery log, in the transaction that
        makes or changes the endpoint: an attempt's start then checks a key its delivery's shard already
        takes, instead of the tenant's (every attempt of every endpoint of the tenant)."""
        return [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._serialize(version_copy_key(endpoint_id, shard)),
                    "UpdateExpression": "SET #v = :v",
                    "ConditionExpression": "attribute_not_exists(#v) OR #v < :v",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": self._serialize({":v": version}),
                }
            }
            for shard in range(LOG_SHARDS)
        ]

    def _bump_endpoints_version(self, tenant_id: str, tag: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._serialize({"pk": f"TENANT#{tenant_id}", "sk": "ENDPOINTS"}),
                "UpdateExpression": "SET #v = if_not_exists(#v, :zero) + :one, #t = :tag",
                "ExpressionAttributeNames": {"#v": "endpointsVersion", "#t": "endpointsTag"},
                "ExpressionAttributeValues": self._serialize({":zero": 0, ":one": 1, ":tag": tag}),
            }
        }

    def _tag_copies(self, tenant_id: str, tag: str) -> list[dict[str, Any]]:
        """The tenant's new endpoints tag into each of its copies, in the transaction that changes its
        endpoints (or gives it its first tag)."""
        return [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._serialize({"pk": f"TENANT#{tenant_id}#{n}", "sk": "ENDPOINTS"}),
                    "UpdateExpression": "SET #t = :tag",
                    "ExpressionAttributeNames": {"#t": "endpointsTag"},
                    "ExpressionAttributeValues": self._serialize({":tag": tag}),
                }
            }
            for n in range(TENANT_COPIES)
        ]

    def _tag_check(self, tenant_id: str, session_id: str, tag: str) -> dict[str, Any]:
        """The fan-out's proof that the tenant's endpoints are still those it read with `tag`: on the copy
        of the session's shard (a missing copy fails it)."""
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": self._serialize(tenant_copy_key(tenant_id, session_id)),
                "ConditionExpression": "#t = :tag",
                "ExpressionAttributeNames": {"#t": "endpointsTag"},
                "ExpressionAttributeValues": self._serialize({":tag": tag}),
            }
        }

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        """Deletes the endpoint and uncounts it; False when it was not there."""
        key = endpoint_key(tenant_id, endpoint_id)
        tag = new_tag()
        reasons = self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.table_name,
                        "Key": self._serialize(key),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": self._serialize({"pk": key["pk"], "sk": "ENDPOINTS"}),
                        "UpdateExpression": "SET #c = #c - :one, #v = #v + :one, #t = :tag",
                        "ConditionExpression": "#c > :zero",
                        "ExpressionAttributeNames": {
                            "#c": "endpointCount",
                            "#v": "endpointsVersion",
                            "#t": "endpointsTag",
                        },
                        "ExpressionAttributeValues": self._serialize({":zero": 0, ":one": 1, ":tag": tag}),
                    }
                },
                self._count_all(-1),
                *self._tag_copies(tenant_id, tag),
                *(
                    {
                        "Delete": {
                            "TableName": self.table_name,
                            "Key": self._serialize(version_copy_key(endpoint_id, shard)),
                        }
                    }
                    for shard in range(LOG_SHARDS)
                ),
            ]
        )
        return reasons is None

    # -- deliveries -----------------------------------------------------------------------------------

    def fan_out(
        self,
        deliveries: Sequence[dict[str, Any]],
        session_id: str,
        tenant_id: str,
        sequence: int,
        check_at: tuple[int, int],
        tag: str,
    ) -> None:
        """Writes an event's deliveries and moves its session's watermark from `sequence - 1` to
        `sequence`, in one transaction that checks the tenant's endpoints are still those of `tag`.
        WatermarkMoved (with where it is) when the watermark is elsewhere; EndpointsChanged when the tag is
        not the tenant's any more."""
        items = [
            self._watermark_move(session_id, tenant_id, sequence, sequence, deliveries, check_at),
            self._tag_check(tenant_id, session_id, tag),
            *(self._put_new(delivery) for delivery in deliveries),
        ]
        reasons = self._transact(items)
        if reasons is None:
            return
        if reasons[0].get("Code") == "ConditionalCheckFailed":
            old = reasons[0].get("Item")
            raise WatermarkMoved(int(item_from_dynamo(old).get("fannedOut", 0)) if old else 0)
        if reasons[1].get("Code") == "ConditionalCheckFailed":
            raise EndpointsChanged()
        raise ServiceUnavailable()  # a delivery already there: the watermark would have said so

    def fan_out_together(
        self,
        writes: Sequence[tuple[str, str, int, int, Sequence[dict[str, Any]], str]],
        check_at: tuple[int, int],
    ) -> bool:
        """Several sessions' events in one transaction: per (session, tenant, first, last, deliveries, tag)
        the watermark moves from `first - 1` to `last`, and the tenant's endpoints are checked to be still
        those of `tag` (each tag copy once). False when it does not fit in one transaction or a condition
        fails (nothing is written then)."""
        items: list[dict[str, Any]] = []
        checked: set[str] = set()
        for session_id, tenant_id, first, last, deliveries, tag in writes:
            items.append(self._watermark_move(session_id, tenant_id, first, last, deliveries, check_at))
            copy = tenant_copy_key(tenant_id, session_id)["pk"]
            if copy not in checked:
                checked.add(copy)
                items.append(self._tag_check(tenant_id, session_id, tag))
            items += [self._put_new(delivery) for delivery in deliveries]
        if len(items) > MAX_TRANSACTION_ITEMS:
            return False
        try:
            return self._transact(items) is None
        except ServiceUnavailable:
            return False

    def _watermark_move(
        self,
        session_id: str,
        tenant_id: str,
        first: int,
        last: int,
        deliveries: Sequence[dict[str, Any]],
        check_at: tuple[int, int],
    ) -> dict[str, Any]:
        """The session's watermark from `first - 1` (absent for 1) to `last`; the sequences of the
        deliveries that wait for a message join their group's waiting set; `check_at` is (now, when the
        safety net looks at the session again: index byFanOutCheck)."""
        values: dict[str, Any] = {
            ":n": last,
            ":tenant": tenant_id,
            ":shard": catch_up_shard(session_id),
            ":check": check_at[1],
            ":moved": check_at[0],
            ":zero": 0,
        }
        names = {
            "#f": "fannedOut",
            "#cs": "catchUpShard",
            "#ca": "catchUpAt",
            "#cc": "catchUpChecks",
            "#m": "movedAt",
        }
        if first != 1:
            values[":previous"] = first - 1
        waiting: dict[str, set[int]] = {}
        for delivery in deliveries:
            if "checkAt" in delivery:
                waiting.setdefault(delivery["endpointId"], set()).add(int(delivery["sequence"]))
        additions = []
        for index, (endpoint_id, sequences) in enumerate(waiting.items()):
            names[f"#w{index}"] = waiting_attribute(endpoint_id)
            values[f":w{index}"] = sequences
            additions.append(f"#w{index} :w{index}")
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._serialize(watermark_key(session_id)),
                "UpdateExpression": "SET #f = :n, tenant = :tenant, "
                "#cs = :shard, #ca = :check, #cc = :zero, #m = :moved"
                + (" ADD " + ", ".join(additions) if additions else ""),
                "ConditionExpression": "attribute_not_exists(#f)" if first == 1 else "#f = :previous",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": self._serialize(values),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": self._serialize(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def fanned_out(self, session_id: str) -> int:
        answer = self._call(
            "get_item",
            TableName=self.table_name,
            Key=self._serialize(watermark_key(session_id)),
            ConsistentRead=True,
        )
        return int(item_from_dynamo(answer["Item"]).get("fannedOut", 0)) if "Item" in answer else 0

    def put_delivery(self, delivery: dict[str, Any]) -> None:
        self._call(
            "put_item",
            TableName=self.table_name,
            Item=self._serialize(delivery),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def endpoint_and_delivery(
        self, tenant_id: str, endpoint_id: str, delivery_id: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Both in one BatchGetItem, strongly consistent (a delivery made before the log was sharded: one
        GetItem more)."""
        keys = [endpoint_key(tenant_id, endpoint_id), delivery_key(endpoint_id, delivery_id)]
        request = {self.table_name: {"Keys": [self._serialize(k) for k in keys], "ConsistentRead": True}}
        found: dict[str, dict[str, Any]] = {}
        while request:
            answer = self._call("batch_get_item", RequestItems=request)
            for raw in answer.get("Responses", {}).get(self.table_name, []):
                item = item_from_dynamo(raw)
                found[item["pk"]] = item
            request = answer.get("UnprocessedKeys") or {}
        delivery = found.get(keys[1]["pk"])
        if delivery is None:
            delivery = self._get(unsharded_delivery_key(endpoint_id, delivery_id))
        return found.get(keys[0]["pk"]), delivery

    def get_delivery(self, endpoint_id: str, delivery_id: str) -> dict[str, Any] | None:
        found = self._get(delivery_key(endpoint_id, delivery_id))
        return found if found is not None else self._get(unsharded_delivery_key(endpoint_id, delivery_id))

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        answer = self._call(
            "get_item", TableName=self.table_name, Key=self._serialize(key), ConsistentRead=True
        )
        return item_from_dynamo(answer["Item"]) if "Item" in answer else None

    def update_delivery(
        self,
        delivery: dict[str, Any],
        set_values: dict[str, Any],
        remove: Sequence[str] = (),
        waiting: bool | None = None,
    ) -> None:
        """Changes a delivery as it was read (same status and attempts); Stale otherwise. `waiting` True
        puts its sequence in its group's waiting set, False takes it out, in the same transaction."""
        update = self._delivery_update(delivery, set_values, remove)
        group = self._group_change(delivery, waiting)
        if group is None:
            self._update(
                key_of_delivery(delivery),
                set_values,
                remove,
                condition=_AS_READ,
                condition_values=_as_read_values(delivery),
            )
            return
        if self._transact([update, group]) is not None:
            raise Stale()

    def start_attempt(
        self,
        delivery: dict[str, Any],
        set_values: dict[str, Any],
        remove: Sequence[str],
        endpoint: dict[str, Any],
        still_waiting: bool,
    ) -> None:
        """Records an attempt as started (what it leaves if it never finishes), in one transaction that
        proves the endpoint is still at the version read (by its copy in the delivery's shard) and that no
        lower sequence of the delivery's group still waits. Stale: the delivery moved on; EndpointMoved:
        the endpoint changed (with it as it is now); GroupBlocked: an earlier delivery of its group goes
        first."""
        shard = log_shard(delivery["deliveryId"])
        items = [
            self._delivery_update(delivery, set_values, remove, "attribute_exists(#check)"),
            {
                "ConditionCheck": {
                    "TableName": self.table_name,
                    "Key": self._serialize(version_copy_key(endpoint["endpointId"], shard)),
                    "ConditionExpression": "#version = :version",
                    "ExpressionAttributeNames": {"#version": "version"},
                    "ExpressionAttributeValues": self._serialize({":version": endpoint["version"]}),
                }
            },
        ]
        group = self._group_check(delivery, remove_from_waiting=not still_waiting)
        if group is not None:
            items.append(group)
        reasons = self._transact(items)
        if reasons is None:
            return
        if reasons[0].get("Code") == "ConditionalCheckFailed":
            raise Stale()
        if reasons[1].get("Code") == "ConditionalCheckFailed":
            raise EndpointMoved(self._endpoint_now(endpoint, shard))
        raise GroupBlocked()

    def _endpoint_now(self, known: dict[str, Any], shard: int) -> dict[str, Any] | None:
        """The endpoint as it is now, after its version copy in `shard` did not match `known`. An endpoint
        made before the copies existed has none: it is written, only while the endpoint is still at the
        version read (a delete in between must not leave a copy that lets an attempt through)."""
        now = self.get_endpoint(known["tenantId"], known["endpointId"])
        if now is None or now["version"] != known["version"]:
            return now
        self._transact(
            [
                {
                    "ConditionCheck": {
                        "TableName": self.table_name,
                        "Key": self._serialize(endpoint_key(now["tenantId"], now["endpointId"])),
                        "ConditionExpression": "#v = :v",
                        "ExpressionAttributeNames": {"#v": "version"},
                        "ExpressionAttributeValues": self._serialize({":v": now["version"]}),
                    }
                },
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": self._serialize(version_copy_key(now["endpointId"], shard)),
                        "UpdateExpression": "SET #v = :v",
                        "ConditionExpression": "attribute_not_exists(#v)",
                        "ExpressionAttributeNames": {"#v": "version"},
                        "ExpressionAttributeValues": self._serialize({":v": now["version"]}),
                    }
                },
            ]
        )
        return now

    def _delivery_update(
        self, delivery: dict[str, Any], set_values: dict[str, Any], remove: Sequence[str], extra: str = ""
    ) -> dict[str, Any]:
        names = {"#st": "status", "#at": "attempts"}
        values: dict[str, Any] = {":status": delivery["status"], ":attempts": delivery["attempts"]}
        assignments = []
        for index, (name, value) in enumerate(set_values.items()):
            names[f"#s{index}"] = name
            values[f":s{index}"] = value
            assignments.append(f"#s{index} = :s{index}")
        expression = "SET " + ", ".join(assignments)
        if remove:
            names.update({f"#r{index}": name for index, name in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(remove)))
        condition = _AS_READ
        if extra:
            names["#check"] = "checkAt"
            condition += f" AND {extra}"
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._serialize(key_of_delivery(delivery)),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": self._serialize(values),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _group_change(self, delivery: dict[str, Any], waiting: bool | None) -> dict[str, Any] | None:
        """The delivery's sequence into (True) or out of (False) its group's waiting set."""
        if waiting is None or not delivery.get("sessionId"):
            return None
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._serialize(watermark_key(delivery["sessionId"])),
                "UpdateExpression": ("ADD" if waiting else "DELETE") + " #w :sequence",
                "ExpressionAttributeNames": {"#w": waiting_attribute(delivery["endpointId"])},
                "ExpressionAttributeValues": self._serialize({":sequence": {int(delivery["sequence"])}}),
            }
        }

    def _group_check(self, delivery: dict[str, Any], remove_from_waiting: bool) -> dict[str, Any] | None:
        """No lower sequence of the group waits (the last GROUP_CHECK_DEPTH of them are looked at); with
        `remove_from_waiting`, the delivery's own sequence leaves the set in the same write."""
        sequence = int(delivery.get("sequence") or 0)
        if not delivery.get("sessionId"):
            return None
        lower = list(range(max(1, sequence - GROUP_CHECK_DEPTH), sequence))
        if not lower and not remove_from_waiting:
            return None
        names = {"#w": waiting_attribute(delivery["endpointId"])}
        values: dict[str, Any] = {f":p{n}": n for n in lower}
        check: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": self._serialize(watermark_key(delivery["sessionId"])),
            "ExpressionAttributeNames": names,
        }
        if lower:
            check["ConditionExpression"] = " AND ".join(f"NOT contains(#w, :p{n})" for n in lower)
        if not remove_from_waiting:
            check["ExpressionAttributeValues"] = self._serialize(values)
            return {"ConditionCheck": check}
        values[":own"] = {sequence}
        check["ExpressionAttributeValues"] = self._serialize(values)
        check["UpdateExpression"] = "DELETE #w :own"
        return {"Update": check}

    def move_check(self, key: dict[str, str], seen: int, check_at: int) -> None:
        """The delivery's next check, if it is still at `seen` (nothing touched it meanwhile)."""
        self._update(key, {"checkAt": check_at}, condition="#s0 = :seen", condition_values={":seen": seen})

    def drop_delivery(self, delivery: dict[str, Any]) -> None:
        self._call("delete_item", TableName=self.table_name, Key=self._serialize(key_of_delivery(delivery)))

    def list_deliveries(
        self, endpoint_id: str, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the endpoint's delivery log, newest first: every shard read and merged by delivery id
        (a UUIDv7: its order is the deliveries' order in time)."""
        base = f"ENDPOINT#{endpoint_id}"
        before = decode_cursor(cursor, base)["sk"] if cursor else None
        found, next_sk = self._merged_log(
            endpoint_id,
            low="DELIVERY#",
            high=before or "DELIVERY#~",
            statuses=[status] if status else [],
            limit=limit,
            newest_first=True,
            pages_per_shard=3,
        )
        return found, None if next_sk is None else encode_cursor({"pk": base, "sk": next_sk}, ("pk", "sk"))

    def failed_deliveries_since(
        self, endpoint_id: str, lowest_delivery_id: str, limit: int
    ) -> list[dict[str, Any]]:
        """The oldest `limit` FAILED and EXHAUSTED deliveries whose id sorts at or after
        `lowest_delivery_id` (at most 2 pages of 1 MB are read per shard)."""
        found, _ = self._merged_log(
            endpoint_id,
            low=f"DELIVERY#{lowest_delivery_id}",
            high="DELIVERY#~",
            statuses=["FAILED", "EXHAUSTED"],
            limit=limit,
            newest_first=False,
            pages_per_shard=2,
            consistent=True,
        )
        return found

    def _merged_log(
        self,
        endpoint_id: str,
        low: str,
        high: str,
        statuses: Sequence[str],
        limit: int,
        newest_first: bool,
        pages_per_shard: int,
        consistent: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` deliveries with `low` <= sk < `high` (`high` is a cursor's: excluded) in any of
        `statuses` (none: every status), of every partition of the endpoint's log, merged in order; and the
        sort key the next page starts past (None: nothing left). A shard read `pages_per_shard` times
        without reaching `limit` bounds the page where it stopped: the others' deliveries past that point
        wait for the next page, so none is skipped."""
        values: dict[str, Any] = {":low": low, ":high": high}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ScanIndexForward": not newest_first,
            "Limit": limit + 1,
            "ConsistentRead": consistent,
        }
        if statuses:
            kwargs["FilterExpression"] = "#st IN (" + ", ".join(f":s{i}" for i in range(len(statuses))) + ")"
            kwargs["ExpressionAttributeNames"] = {"#st": "status"}
            values.update({f":s{i}": value for i, value in enumerate(statuses)})
        found: list[dict[str, Any]] = []
        stops: list[str] = []  # where each shard cut short stopped
        more = False
        for pk in log_partitions(endpoint_id):
            query = {**kwargs, "ExpressionAttributeValues": self._serialize({**values, ":pk": pk})}
            taken = 0
            for _ in range(pages_per_shard):
                answer = self._call("query", **query)
                items = [item_from_dynamo(raw) for raw in answer.get("Items", [])]
                items = [item for item in items if item["sk"] != high]
                found += items
                taken += len(items)
                last = answer.get("LastEvaluatedKey")
                if last is None:
                    break
                if taken >= limit:
                    more = True
                    break
                query["ExclusiveStartKey"] = last
            else:
                stops.append(item_from_dynamo(query["ExclusiveStartKey"])["sk"])
        found.sort(key=lambda item: str(item["sk"]), reverse=newest_first)
        bound = None
        if stops:
            bound = max(stops) if newest_first else min(stops)
            found = [item for item in found if (item["sk"] >= bound if newest_first else item["sk"] <= bound)]
        page = found[:limit]
        if page and len(page) == limit and (len(found) > limit or more or stops):
            return page, page[-1]["sk"]
        return page, bound

    def group_members(self, group_key: str) -> list[dict[str, Any]]:
        """The deliveries of one endpoint + session, in sequence order (index byDeliveryGroup)."""
        return list(
            self._query(
                IndexName="byDeliveryGroup",
                KeyConditionExpression="groupKey = :g",
                ExpressionAttributeValues=self._serialize({":g": group_key}),
            )
        )

    def due_deliveries(self, now: int, limit: int) -> list[dict[str, Any]]:
        """At most `limit` deliveries whose message should have been handled by now (byDeliveryCheck),
        the most overdue of each shard first, shard by shard."""
        found: list[dict[str, Any]] = []
        for shard in range(DELIVERY_SHARDS):
            answer = self._call(
                "query",
                TableName=self.table_name,
                IndexName="byDeliveryCheck",
                KeyConditionExpression="deliveryShard = :shard AND checkAt <= :now",
                ExpressionAttributeValues=self._serialize({":shard": f"DELIVERY#{shard}", ":now": now}),
                Limit=limit - len(found),
            )
            found += [item_from_dynamo(item) for item in answer.get("Items", [])]
            if len(found) >= limit:
                break
        return found

    def due_watermarks(self, now: int, limit: int) -> list[dict[str, Any]]:
        """At most `limit` watermarks the safety net should look at by now (byFanOutCheck), shard by shard."""
        found: list[dict[str, Any]] = []
        for shard in range(DELIVERY_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": "byFanOutCheck",
                "KeyConditionExpression": "catchUpShard = :shard AND catchUpAt <= :now",
                "ExpressionAttributeValues": self._serialize({":shard": f"FANOUT#{shard}", ":now": now}),
                "Limit": limit - len(found),
            }
            answer = self._call("query", **kwargs)
            found += [item_from_dynamo(item) for item in answer.get("Items", [])]
            if len(found) >= limit:
                break
        return found

    def next_watermark_check(self, watermark: dict[str, Any], check_at: int | None) -> None:
        """The watermark's next look by the safety net (None: no more), if nothing moved it meanwhile."""
        key = {"pk": watermark["pk"], "sk": watermark["sk"]}
        condition = {"#seen_f": "fannedOut", "#seen_c": "catchUpAt"}
        values = {":seen_f": watermark.get("fannedOut", 0), ":seen_c": watermark["catchUpAt"]}
        try:
            if check_at is None:
                self._update(
                    key,
                    {},
                    remove=["catchUpShard", "catchUpAt", "catchUpChecks"],
                    condition="#seen_f = :seen_f AND #seen_c = :seen_c",
                    condition_values={**condition, **values},
                )
            else:
                self._update(
                    key,
                    {"catchUpAt": check_at},
                    condition="#seen_f = :seen_f AND #seen_c = :seen_c",
                    condition_values={**condition, **values},
                    add={"catchUpChecks": 1},
                )
        except Stale:
            pass  # the fan-out moved it: it set its own next look

    def session_sequences(self, session_ids: Sequence[str]) -> dict[str, int]:
        """sessionId -> the sequence of its last event, in one BatchGetItem per 100 sessions."""
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(session_ids))
        for start in range(0, len(unique), 100):
            keys = [
                self._serialize({"pk": f"SESSION#{s}", "sk": "SESSION"}) for s in unique[start : start + 100]
            ]
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": keys,
                    "ProjectionExpression": "sessionId, seq",
                    "ConsistentRead": True,
                }
            }
            while request:
                answer = self._call("batch_get_item", RequestItems=request)
                for raw in answer.get("Responses", {}).get(self.table_name, []):
                    item = item_from_dynamo(raw)
                    found[item["sessionId"]] = int(item.get("seq", 0))
                request = answer.get("UnprocessedKeys") or {}
        return found

    # -- sessions, as the fan-out needs them ----------------------------------------------------------

    def tenants_of(self, session_ids: Sequence[str]) -> dict[str, str]:
        """sessionId -> tenantId, in one BatchGetItem per 100 sessions."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(session_ids))
        for start in range(0, len(unique), 100):
            keys = [
                self._serialize({"pk": f"SESSION#{s}", "sk": "SESSION"}) for s in unique[start : start + 100]
            ]
            request: dict[str, Any] = {
                self.table_name: {"Keys": keys, "ProjectionExpression": "sessionId, tenantId"}
            }
            while request:
                answer = self._call("batch_get_item", RequestItems=request)
                for raw in answer.get("Responses", {}).get(self.table_name, []):
                    item = item_from_dynamo(raw)
                    found[item["sessionId"]] = item["tenantId"]
                request = answer.get("UnprocessedKeys") or {}
        return found

    def events_after(self, session_id: str, sequence: int) -> list[dict[str, Any]]:
        """The session's timeline events after `sequence`, in order."""
        return list(
            self._query(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=self._serialize(
                    {
                        ":pk": f"SESSION#{session_id}",
                        ":low": event_sort_key(sequence + 1),
                        ":high": "EVENT#~",
                    }
                ),
                ConsistentRead=True,
            )
        )


def new_tag() -> str:
    return uuid.uuid4().hex


def encode_cursor(item: dict[str, Any], key_names: tuple[str, ...]) -> str:
    key = {name: item[name] for name in key_names}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, pk: str) -> dict[str, str]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not a cursor this API returned.", "cursor") from exc
    if (
        not isinstance(key, dict)
        or set(key) != {"pk", "sk"}
        or key.get("pk") != pk
        or not isinstance(key.get("sk"), str)
    ):
        raise InvalidRequest("cursor is not a cursor this API returned.", "cursor")
    return key
