"""The only code that talks to DynamoDB: keys, conditional writes, items to and from Python values.

Every change to a session is one `TransactWriteItems`: the session item updated on the condition
`version = :seen` (plus what the change itself requires), the timeline events it appends, and the
other items it touches. A failed condition comes back as `WriteConflict` naming the part that failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from checkout_core import aws, tallies
from checkout_core.errors import InvalidRequest, ServiceUnavailable, WriteConflict
from checkout_core.settings import get_settings

EVENT_SORT_BASE = 100_000_000
EXPIRY_SHARDS = 10
# The pending-cancellation level is moved inside the lock's and the finalisation's transactions: a
# counter item written by concurrent transactions makes them conflict, so it is spread thin (at 300 locks
# a second, 6 writes a second per counter), and the gauge still reads all of them in one BatchGetItem.
LEVEL_SHARDS = 100
PENDING_LEVEL_PKS = tuple(f"LEVEL#WAITING#{shard}" for shard in range(LEVEL_SHARDS))
LIST_PAGES_PER_REQUEST = 10
TENANT_INDEX = "byTenantKeys"
BATCH_GET_ATTEMPTS = 4
PROVIDER_EVENT_RETENTION_SECONDS = 7 * 24 * 3600
MAX_REQUEST_TOKEN_LENGTH = 36
_THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def session_key(session_id: str) -> dict[str, str]:
    return {"pk": f"SESSION#{session_id}", "sk": "SESSION"}


def transaction_key(transaction_id: str) -> dict[str, str]:
    return {"pk": f"TRANSACTION#{transaction_id}", "sk": "TRANSACTION"}


def event_sort_key(sequence: int) -> str:
    return f"EVENT#{EVENT_SORT_BASE + sequence}"


def shard_of(session_id: str) -> int:
    return int(session_id.replace("-", "")[-8:], 16) % EXPIRY_SHARDS


def pending_level_pk(session_id: str) -> str:
    """The pending-cancellation counter a session counts in while it waits: one of LEVEL_SHARDS, from its
    id. The lock records it on the session (`pendingLevel`) with its +1; the finalisation takes 1 from the
    counter the session names, so a session that names none (locked before the counters) moves nothing."""
    return PENDING_LEVEL_PKS[int(session_id.replace("-", "")[-8:], 16) % LEVEL_SHARDS]


def level_key(pk: str) -> dict[str, str]:
    return {"pk": pk, "sk": "COUNT"}


def request_token(session_id: str, expected_version: int, operation: str, items: list[dict[str, Any]]) -> str:
    """The ClientRequestToken of one logical write: the session, the version it expects, the operation and
    the digest of what it writes. A retry of the same request (botocore's, after a timeout) carries the same
    token, so DynamoDB answers it as it answered the first; two different writes never share one."""
    digest = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()
    logical = f"{session_id}|{expected_version}|{operation}|{digest}"
    return hashlib.sha256(logical.encode()).hexdigest()[:MAX_REQUEST_TOKEN_LENGTH]


@dataclass
class TransactionChange:
    transaction_id: str
    expected_statuses: Sequence[str]
    set: dict[str, Any] = field(default_factory=dict)
    remove: Sequence[str] = ()
    # With check_token, the item must carry exactly `expected_token` (None: no token at all).
    check_token: bool = False
    expected_token: str | None = None
    # The provider's id is recorded once: the write holds only while the item has none.
    reference_unset: bool = False


@dataclass
class SessionChange:
    """One state change of one session, written atomically with its events. `operation` names the logical
    write (it is part of the write's ClientRequestToken)."""

    operation: str
    session_id: str
    expected_version: int
    seen_seq: int
    set: dict[str, Any] = field(default_factory=dict)
    add: dict[str, int] = field(default_factory=dict)
    remove: Sequence[str] = ()
    condition: str | None = None
    condition_values: dict[str, Any] = field(default_factory=dict)
    events: Sequence[dict[str, Any]] = ()
    transactions: Sequence[TransactionChange] = ()
    new_items: Sequence[dict[str, Any]] = ()
    # The session's tenant: its console counters and watch lists move in the same write (see tallies.py).
    tenant_id: str | None = None
    # (counter pk, delta): level counters moved in the same write, with no condition (pending_level_pk).
    level_moves: Sequence[tuple[str, int]] = ()


class _Expression:
    """Builds DynamoDB expressions with placeholders for every name and value."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def path(self, dotted: str) -> str:
        parts = []
        for segment in dotted.split("."):
            placeholder = f"#n{len(self.names)}"
            for existing, name in self.names.items():
                if name == segment:
                    placeholder = existing
                    break
            self.names[placeholder] = segment
            parts.append(placeholder)
        return ".".join(parts)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def condition(self, text: str, values: dict[str, Any]) -> str:
        """`text` names attributes as `{attr}` and values as `:name` keys of `values`."""
        for name in sorted(values, key=len, reverse=True):
            text = text.replace(name, self.value(values[name]))

        def substitute(match_text: str) -> str:
            return self.path(match_text)

        out, rest = [], text
        while "{" in rest:
            before, _, after = rest.partition("{")
            inner, _, rest = after.partition("}")
            out.append(before + substitute(inner))
        out.append(rest)
        return "".join(out)


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _to_dynamo(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(inner) for inner in value]
    return value


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: from_dynamo(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [from_dynamo(inner) for inner in value]
    if isinstance(value, set):
        return sorted(from_dynamo(inner) for inner in value)
    return value


@cache
def _type_deserializer() -> Any:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


def item_from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's JSON (a GetItem answer, a stream image) as plain Python values."""
    deserializer = _type_deserializer()
    return {key: from_dynamo(deserializer.deserialize(value)) for key, value in item.items()}


class SessionRepository:
    def __init__(
        self, table_name: str | None = None, client_factory: Callable[[], Any] | None = None
    ) -> None:
        self.table_name = table_name or get_settings().table_name
        self._client_factory = client_factory or (lambda: aws.client("dynamodb"))
        self._serializer: Any = None

    # -- plumbing -------------------------------------------------------------------------------------

    @property
    def _client(self) -> Any:
        return self._client_factory()

    def _serialize(self, item: dict[str, Any]) -> dict[str, Any]:
        if self._serializer is None:
            from boto3.dynamodb.types import TypeSerializer

            self._serializer = TypeSerializer()
        return {key: self._serializer.serialize(_to_dynamo(value)) for key, value in item.items()}

    def _deserialize(self, item: dict[str, Any]) -> dict[str, Any]:
        return item_from_dynamo(item)

    def _values(self, values: dict[str, Any]) -> dict[str, Any]:
        return self._serialize(values) if values else {}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            result: dict[str, Any] = getattr(self._client, operation)(**kwargs)
            return result
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _THROTTLING:
                raise ServiceUnavailable() from exc
            raise

    # -- reads ----------------------------------------------------------------------------------------

    def get_item(self, key: dict[str, str]) -> dict[str, Any] | None:
        response = self._call(
            "get_item", TableName=self.table_name, Key=self._serialize(key), ConsistentRead=True
        )
        item = response.get("Item")
        return self._deserialize(item) if item else None

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        return self.get_item(session_key(session_id))

    def get_transaction(self, transaction_id: str) -> dict[str, Any] | None:
        return self.get_item(transaction_key(transaction_id))

    def get_api_key(self, key_hash: str) -> dict[str, Any] | None:
        return self.get_item({"pk": f"APIKEY#{key_hash}", "sk": "APIKEY"})

    def get_pay_token(self, token_hash: str) -> dict[str, Any] | None:
        return self.get_item({"pk": f"PAYTOKEN#{token_hash}", "sk": "PAYTOKEN"})

    def get_return_token(self, token_hash: str) -> dict[str, Any] | None:
        return self.get_item({"pk": f"RETURNTOKEN#{token_hash}", "sk": "RETURNTOKEN"})

    def list_events(self, session_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": self._serialize(
                {":pk": f"SESSION#{session_id}", ":prefix": "EVENT#"}
            ),
            "ConsistentRead": True,
        }
        while True:
            response = self._call("query", **kwargs)
            items.extend(self._deserialize(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def list_sessions(
        self,
        tenant_id: str,
        limit: int,
        cursor: str | None,
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first: a page of the tenant's keys from `byTenantKeys`, then those sessions in one
        BatchGetItem; `keep` (on the session item) filters. The index holds only keys, written when a session
        is created and never rewritten by its updates, so a tenant's key takes one write per new session."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": TENANT_INDEX,
            "ScanIndexForward": False,
            "Limit": limit,
            "KeyConditionExpression": "tenantId = :tenant",
            "ExpressionAttributeValues": self._serialize({":tenant": tenant_id}),
        }
        if cursor:
            kwargs["KeyConditionExpression"] += " AND sessionId < :after"
            kwargs["ExpressionAttributeValues"] = self._serialize(
                {":tenant": tenant_id, ":after": _decode_cursor(cursor, tenant_id)}
            )
        found: list[dict[str, Any]] = []
        # A filter can match few of the sessions a page reads; a request reads a bounded number of pages
        # and hands back a cursor where it stopped, so its cost stays bounded however rare the status.
        last_read = ""
        for _ in range(LIST_PAGES_PER_REQUEST):
            response = self._call("query", **kwargs)
            keys = [self._deserialize(raw) for raw in response.get("Items", [])]
            sessions = self._sessions(keys)
            for position, key in enumerate(keys):
                last_read = key["sessionId"]
                item = sessions.get(key["sessionId"])
                if item is None or (keep is not None and not keep(item)):
                    continue
                found.append(item)
                if len(found) == limit:
                    more = position < len(keys) - 1 or "LastEvaluatedKey" in response
                    return found, encode_cursor(item) if more else None
            if "LastEvaluatedKey" not in response:
                return found, None
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found, encode_cursor({"tenantId": tenant_id, "sessionId": last_read})

    def _sessions(self, keys: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The session items of `keys` (at most 100), by session id, in one BatchGetItem (and a few more for
        what a throttled DynamoDB leaves unprocessed)."""
        wanted = [self._serialize(session_key(key["sessionId"])) for key in keys]
        found: dict[str, dict[str, Any]] = {}
        for _ in range(BATCH_GET_ATTEMPTS):
            if not wanted:
                return found
            response = self._call("batch_get_item", RequestItems={self.table_name: {"Keys": wanted}})
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = self._deserialize(raw)
                found[item["sessionId"]] = item
            wanted = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
        if wanted:
            raise ServiceUnavailable()
        return found

    def list_sessions_by_reference(
        self,
        tenant_id: str,
        reference_id: str,
        limit: int,
        cursor: str | None,
        wanted: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The tenant's sessions with exactly this referenceId, newest first: a Query of the keys-only
        index `byReference` (one partition per tenant and reference, written once at create) and one
        BatchGetItem of the sessions it names. `wanted` keeps only some (the status filter)."""
        reference = reference_partition(tenant_id, reference_id)
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "byReference",
            "KeyConditionExpression": "tenantReference = :ref",
            "ExpressionAttributeValues": self._serialize({":ref": reference}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = self._serialize(_decodereference_cursor(cursor, reference))
        found: list[dict[str, Any]] = []
        for _ in range(LIST_PAGES_PER_REQUEST):
            response = self._call("query", **kwargs)
            keys = [self._deserialize(raw) for raw in response.get("Items", [])]
            sessions = self.get_sessions([key["sessionId"] for key in keys])
            for key in keys:
                item = sessions.get(key["sessionId"])
                if item is None or (wanted is not None and not wanted(item)):
                    continue
                found.append(item)
                if len(found) == limit:
                    more = key is not keys[-1] or "LastEvaluatedKey" in response
                    return found, reference_cursor(key, reference) if more else None
            if "LastEvaluatedKey" not in response:
                return found, None
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found, reference_cursor(self._deserialize(kwargs["ExclusiveStartKey"]), reference)

    def get_sessions(self, session_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """sessionId -> session item, in one BatchGetItem per 100 (strongly consistent)."""
        unique = list(dict.fromkeys(session_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(unique), 100):
            pending: dict[str, Any] = {
                self.table_name: {
                    "Keys": [self._serialize(session_key(s)) for s in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while pending:
                response = self._call("batch_get_item", RequestItems=pending)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = self._deserialize(raw)
                    found[item["sessionId"]] = item
                pending = response.get("UnprocessedKeys") or {}
        return found

    def counters(self, tenant_id: str, first_hour: str, last_hour: str) -> list[dict[str, Any]]:
        """The tenant's hourly counter items between two hour keys: one Query per shard."""
        items: list[dict[str, Any]] = []
        for shard in range(tallies.TALLY_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
                "ExpressionAttributeValues": self._serialize(
                    {":pk": tallies.counter_pk(tenant_id, shard), ":first": first_hour, ":last": last_hour}
                ),
            }
            while True:
                response = self._call("query", **kwargs)
                items.extend(self._deserialize(raw) for raw in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items

    def pending_cancellations(self) -> int:
        """How many sessions wait in PENDING_CANCELLATION: the counters summed, one BatchGetItem (and a few
        more for what a throttled DynamoDB leaves unprocessed)."""
        keys = [self._serialize(level_key(pk)) for pk in PENDING_LEVEL_PKS]
        pending: dict[str, Any] = {self.table_name: {"Keys": keys}}
        total = 0
        for _ in range(BATCH_GET_ATTEMPTS):
            response = self._call("batch_get_item", RequestItems=pending)
            total += sum(
                int(self._deserialize(raw).get("sessions", 0))
                for raw in response.get("Responses", {}).get(self.table_name, [])
            )
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return total
        raise ServiceUnavailable()

    def watch_list(
        self, index: str, tenant_attribute: str, tenant_id: str, limit: int
    ) -> tuple[list[str], bool]:
        """Session ids of a sparse per-tenant index, oldest first: at most `limit`; and whether more."""
        response = self._call(
            "query",
            TableName=self.table_name,
            IndexName=index,
            KeyConditionExpression="#tenant = :tenant",
            ExpressionAttributeNames={"#tenant": tenant_attribute},
            ExpressionAttributeValues=self._serialize({":tenant": tenant_id}),
            ScanIndexForward=True,
            Limit=limit,
        )
        ids = [self._deserialize(raw)["pk"].removeprefix("SESSION#") for raw in response.get("Items", [])]
        return ids, "LastEvaluatedKey" in response

    def due_keys(
        self,
        index: str,
        shard_attribute: str,
        shard_prefix: str,
        sort_attribute: str,
        now: int,
        page_size: int,
    ) -> Iterator[dict[str, Any]]:
        """Keys of the items of a sparse index whose sort key is due, shard by shard, page by page."""
        for shard in range(EXPIRY_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": index,
                "KeyConditionExpression": "#shard = :shard AND #due <= :now",
                "ExpressionAttributeNames": {"#shard": shard_attribute, "#due": sort_attribute},
                "ExpressionAttributeValues": self._serialize(
                    {":shard": f"{shard_prefix}#{shard}", ":now": now}
                ),
                "Limit": page_size,
            }
            while True:
                response = self._call("query", **kwargs)
                for item in response.get("Items", []):
                    yield self._deserialize(item)
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- writes ---------------------------------------------------------------------------------------

    def leave_reconciliation(self, transaction_id: str, next_due: int | None) -> None:
        """The transaction's entry in byReconcile: due again at `next_due`, or out of the index (None)."""
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": self._serialize(transaction_key(transaction_id)),
            "ConditionExpression": "attribute_exists(pk)",
        }
        if next_due is None:
            kwargs["UpdateExpression"] = "REMOVE reconcileShard, reconcileAt"
        else:
            kwargs["UpdateExpression"] = "SET reconcileAt = :due"
            kwargs["ExpressionAttributeValues"] = self._serialize({":due": next_due})
        try:
            self._call("update_item", **kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def put_api_key(self, key_hash: str, tenant: str, return_hosts: Sequence[str], created_at: str) -> None:
        item = {
            "pk": f"APIKEY#{key_hash}",
            "sk": "APIKEY",
            "entity": "APIKEY",
            "tenant": tenant,
            "returnHosts": list(return_hosts),
            "createdAt": created_at,
        }
        self._call("put_item", TableName=self.table_name, Item=self._serialize(item))

    def create_session(
        self, session: dict[str, Any], pay_token_hash: str, event: dict[str, Any], attempt: int = 0
    ) -> None:
        """`attempt` > 0: again after a transaction conflict on a counter item (that write was cancelled
        whole), under a token of its own."""
        session_id = session["sessionId"]
        event_item = self._event_item(session_id, 1, event)
        self._transact(
            session_id,
            0,
            f"create_session#{attempt}" if attempt else "create_session",
            [
                self._put(session, "attribute_not_exists(pk)", f"item:{session['pk']}"),
                self._put(
                    {
                        "pk": f"PAYTOKEN#{pay_token_hash}",
                        "sk": "PAYTOKEN",
                        "entity": "PAYTOKEN",
                        "sessionId": session_id,
                    },
                    "attribute_not_exists(pk)",
                    f"item:PAYTOKEN#{pay_token_hash}",
                ),
                self._put(event_item, "attribute_not_exists(pk)", f"item:{event_item['pk']}"),
                *self._tally_updates(session["tenantId"], session_id, [event]),
            ],
        )

    def apply(self, change: SessionChange) -> int:
        """Writes one session change atomically; returns the session's new version."""
        expression = _Expression()
        new_version = change.expected_version + 1
        new_seq = change.seen_seq + len(change.events)
        assignments = [
            f"{expression.path('version')} = {expression.value(new_version)}",
            f"{expression.path('seq')} = {expression.value(new_seq)}",
        ]
        for path, value in change.set.items():
            assignments.append(f"{expression.path(path)} = {expression.value(value)}")
        for path, delta in change.add.items():
            target = expression.path(path)
            assignments.append(f"{target} = {target} + {expression.value(delta)}")
        removals = list(change.remove)
        if change.tenant_id:
            watch = tallies.watch_changes(change.tenant_id, change.session_id, change.events)
            for path, value in watch.set.items():
                assignments.append(f"{expression.path(path)} = {expression.value(value)}")
            removals += [path for path in watch.remove if path not in removals]
        update = "SET " + ", ".join(assignments)
        if removals:
            update += " REMOVE " + ", ".join(expression.path(path) for path in removals)
        condition = f"{expression.path('version')} = {expression.value(change.expected_version)}"
        if change.condition:
            condition += f" AND ({expression.condition(change.condition, change.condition_values)})"
        items: list[tuple[dict[str, Any], str]] = [
            (
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": self._serialize(session_key(change.session_id)),
                        "UpdateExpression": update,
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": expression.names,
                        "ExpressionAttributeValues": self._serialize(expression.values),
                    }
                },
                "session",
            )
        ]
        for transaction in change.transactions:
            items.append(self._transaction_update(transaction))
        for offset, event in enumerate(change.events, start=1):
            event_item = self._event_item(change.session_id, change.seen_seq + offset, event)
            items.append(self._put(event_item, "attribute_not_exists(pk)", f"item:{event_item['sk']}"))
        for new_item in change.new_items:
            items.append(self._put(new_item, "attribute_not_exists(pk)", f"item:{new_item['pk']}"))
        if change.tenant_id:
            items += self._tally_updates(change.tenant_id, change.session_id, change.events)
        items += [self._level_update(pk, delta) for pk, delta in change.level_moves]
        self._transact(change.session_id, change.expected_version, change.operation, items)
        return new_version

    def _level_update(self, pk: str, delta: int) -> tuple[dict[str, Any], str]:
        """Moves a level counter in the session's own write: no condition, so it never refuses the change."""
        key = level_key(pk)
        return (
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._serialize(key),
                    "UpdateExpression": "ADD sessions :delta",
                    "ExpressionAttributeValues": self._serialize({":delta": delta}),
                }
            },
            f"counter:{key['pk']}",
        )

    def _transaction_update(self, change: TransactionChange) -> tuple[dict[str, Any], str]:
        expression = _Expression()
        assignments = [
            f"{expression.path(path)} = {expression.value(value)}" for path, value in change.set.items()
        ]
        update = "SET " + ", ".join(assignments)
        if change.remove:
            update += " REMOVE " + ", ".join(expression.path(path) for path in change.remove)
        statuses = ", ".join(expression.value(status) for status in change.expected_statuses)
        condition = f"{expression.path('status')} IN ({statuses})"
        if change.check_token and change.expected_token is None:
            condition += f" AND attribute_not_exists({expression.path('taskToken')})"
        elif change.check_token:
            condition += f" AND {expression.path('taskToken')} = {expression.value(change.expected_token)}"
        if change.reference_unset:
            condition += f" AND attribute_not_exists({expression.path('providerReference')})"
        return (
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._serialize(transaction_key(change.transaction_id)),
                    "UpdateExpression": update,
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": expression.names,
                    "ExpressionAttributeValues": self._serialize(expression.values),
                }
            },
            f"transaction:{change.transaction_id}",
        )

    def _tally_updates(
        self, tenant_id: str, session_id: str, events: Sequence[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], str]]:
        """The hourly counters the change's events move: no condition, so they never refuse the change."""
        updates = []
        for key, counts, ttl in tallies.counter_moves(tenant_id, session_id, events):
            expression = _Expression()
            added = ", ".join(f"{expression.path(name)} {expression.value(n)}" for name, n in counts.items())
            update = f"ADD {added} SET {expression.path('ttl')} = {expression.value(ttl)}"
            updates.append(
                (
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": self._serialize(key),
                            "UpdateExpression": update,
                            "ExpressionAttributeNames": expression.names,
                            "ExpressionAttributeValues": self._serialize(expression.values),
                        }
                    },
                    f"counter:{key['pk']}",
                )
            )
        return updates

    def _event_item(self, session_id: str, sequence: int, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "pk": f"SESSION#{session_id}",
            "sk": event_sort_key(sequence),
            "entity": "EVENT",
            "sessionId": session_id,
            "sequence": sequence,
            **event,
        }

    def _put(self, item: dict[str, Any], condition: str, part: str) -> tuple[dict[str, Any], str]:
        return (
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._serialize(item),
                    "ConditionExpression": condition,
                }
            },
            part,
        )

    def _transact(
        self, session_id: str, expected_version: int, operation: str, items: list[tuple[dict[str, Any], str]]
    ) -> None:
        from botocore.exceptions import ClientError

        transact_items = [item for item, _ in items]
        token = request_token(session_id, expected_version, operation, transact_items)
        try:
            self._call("transact_write_items", TransactItems=transact_items, ClientRequestToken=token)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "TransactionConflictException":
                raise WriteConflict("session") from exc
            if error.get("Code") != "TransactionCanceledException":
                raise
            for index, reason in enumerate(exc.response.get("CancellationReasons", [])):
                code = reason.get("Code")
                if code in ("ConditionalCheckFailed", "TransactionConflict"):
                    raise WriteConflict(items[index][1]) from exc
                if code in _THROTTLING or code == "ThrottlingError":
                    raise ServiceUnavailable() from exc
            raise


def reference_partition(tenant_id: str, reference_id: str) -> str:
    """The byReference partition of a tenant's referenceId (set on the session item at create)."""
    return f"{tenant_id}#{reference_id}"


def reference_cursor(key: dict[str, Any], reference: str) -> str:
    body = {"pk": key["pk"], "sk": key["sk"], "sessionId": key["sessionId"], "tenantReference": reference}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def _decodereference_cursor(cursor: str, reference: str) -> dict[str, str]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not a cursor this API returned.", "cursor") from exc
    if (
        not isinstance(key, dict)
        or set(key) != {"pk", "sk", "sessionId", "tenantReference"}
        or not all(isinstance(value, str) for value in key.values())
        or key["tenantReference"] != reference
        or key["pk"] != f"SESSION#{key['sessionId']}"
        or key["sk"] != "SESSION"
    ):
        raise InvalidRequest("cursor is not a cursor this API returned.", "cursor")
    return key


def encode_cursor(item: dict[str, Any]) -> str:
    """The list cursor that resumes after `item` (a session, or its `byTenantKeys` entry)."""
    key = {name: item[name] for name in ("tenantId", "sessionId")}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, tenant_id: str) -> str:
    """The session id a cursor resumes after. Cursors of the former index (which also named the session's
    table keys) still resume where they were."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not a cursor this API returned.", "cursor") from exc
    if (
        not isinstance(key, dict)
        or set(key) not in ({"tenantId", "sessionId"}, {"pk", "sk", "tenantId", "sessionId"})
        or not all(isinstance(value, str) for value in key.values())
        or key["tenantId"] != tenant_id
        or key.get("pk", f"SESSION#{key['sessionId']}") != f"SESSION#{key['sessionId']}"
        or key.get("sk", "SESSION") != "SESSION"
    ):
        raise InvalidRequest("cursor is not a cursor this API returned.", "cursor")
    return str(key["sessionId"])
