"""Makes moto's DynamoDB behave as DynamoDB does where the service's correctness and cost rest on it.

- **Each request is atomic.** moto's backend checks a condition and then writes without a lock, so two
  concurrent conditional writes could both pass their checks. Serialising moto's DynamoDB and DynamoDB
  Streams request handling restores per-request atomicity, in-process (mock_aws) and in moto's server alike,
  which dispatches to the same handlers. Other services are not serialised: a Step Functions task may call
  DynamoDB while its own request is open.
- **A transaction costs what it touches.** moto's TransactWriteItems deep-copies every table it touches
  before it starts, to roll back by putting the copy back: a cost that grows with the table, and a rollback
  that replaces the stream's shard. Here a transaction checks every condition first, then writes; should a
  write still fail, only the items it touched are put back and the stream records it added are dropped, so
  the stream only ever sees committed writes.
- **An update expression is parsed once.** moto parses an UpdateExpression again for every item of every
  request (twice for a TransactWriteItems: once to check the request, once to apply it), which was a tenth
  of the runtime's CPU under load; its parse trees are only read, or deep-copied before they are changed,
  so each distinct expression's tree is kept and handed out again.
- **ClientRequestToken is honoured for 10 minutes.** A TransactWriteItems repeated with the token of one that
  succeeded is answered with success and changes nothing; the same token with other parameters is
  refused with IdempotentParameterMismatchException, as DynamoDB does.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

_lock = threading.RLock()
REQUEST_TOKEN_SECONDS = 600
PARSED_EXPRESSIONS = 1024
# Insertion order is expiry order (each entry lives REQUEST_TOKEN_SECONDS), so expiry pops from the front.
_tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()


def install() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    handler: Any
    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        if getattr(handler, "_checkout_atomic", False):
            continue
        handler.call_action = _serialised(handler.call_action)
        handler._checkout_atomic = True
    responses: Any = DynamoHandler
    if not getattr(responses, "_checkout_tokens", False):
        responses.transact_write_items = _honour_request_token(responses.transact_write_items)
        responses._checkout_tokens = True
    backend: Any = DynamoDBBackend
    backend.transact_write_items = transact_write_items
    from moto.dynamodb.parsing import expressions

    parser: Any = expressions.UpdateExpressionParser  # type: ignore[attr-defined]
    if not getattr(parser, "_checkout_parsed_once", False):
        parse: Any = functools.lru_cache(maxsize=PARSED_EXPRESSIONS)(parser.make.__func__)
        parser.make = classmethod(parse)
        parser._checkout_parsed_once = True
    from moto.dynamodb.models.table import Table

    table_class: Any = Table
    if not getattr(table_class, "_checkout_partitions", False):
        table_class.query = _partition_query(table_class.query)
        table_class._checkout_partitions = True


def _serialised(call_action: Any) -> Any:
    def serialised_call_action(self: Any) -> Any:
        with _lock:
            answer = call_action(self)
            if _status(answer) == 200 and isinstance(self, _dynamo_handler()):
                action = self._get_action()
                if action in WRITE_ACTIONS:
                    _index_written(self.dynamodb_backend, action, self.body)
                    if _committed is not None:
                        _committed(action, self.body)
            return answer

    return serialised_call_action


WRITE_ACTIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
_committed: Callable[[str, dict[str, Any]], None] | None = None


def _dynamo_handler() -> Any:
    from moto.dynamodb.responses import DynamoHandler

    return DynamoHandler


def _index_written(backend: Any, action: str, body: dict[str, Any]) -> None:
    for table_name, key_or_item in written_keys(action, body):
        table = backend.tables.get(table_name)
        if table is not None:
            partitions.written(table, key_or_item)


def on_commit(callback: Callable[[str, dict[str, Any]], None] | None) -> None:
    """`callback(action, request body)` after each write request that succeeded, inside its lock."""
    global _committed
    _committed = callback


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """No DynamoDB request runs meanwhile (to read every table at one moment)."""
    with _lock:
        yield


def trim_stream(table: Any, through_sequence: str) -> None:
    """Drops a table's stream records up to `through_sequence`, once every reader has handled them, and
    the iterators handed out so far: moto keeps both forever, so memory grew with every write, not with
    the data. DynamoDB Streams trims after 24 h; locally the consumers are the runtime's pipe readers."""
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    with _lock:
        shard = table.stream_shard
        if shard is None:
            return
        count = min(len(shard.items), int(through_sequence) - shard.starting_sequence_number + 1)
        if count > 0:
            del shard.items[:count]
            shard.starting_sequence_number += count
        for account in dynamodbstreams_backends.values():
            for backend in account.values():
                backend.shard_iterators.clear()


def _status(answer: Any) -> int | None:
    status = answer[0] if isinstance(answer, tuple) and answer else None
    return int(status) if isinstance(status, int | str) and str(status).isdigit() else None


def _honour_request_token(transact_write_items: Any) -> Any:
    from moto.dynamodb.exceptions import DynamodbException

    class IdempotentParameterMismatchException(DynamodbException):
        def __init__(self) -> None:
            super().__init__(
                "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                "The request uses the same client token as a previous, but non-identical request.",
            )

    def honouring(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return transact_write_items(self)
        fingerprint = hashlib.sha256(
            json.dumps(self.body["TransactItems"], sort_keys=True).encode()
        ).hexdigest()
        now = time.monotonic()
        while _tokens and next(iter(_tokens.values()))[1] <= now:
            _tokens.popitem(last=False)
        seen = _tokens.get(token)
        if seen is not None:
            if seen[0] != fingerprint:
                raise IdempotentParameterMismatchException()
            return None
        result = transact_write_items(self)
        _tokens[token] = (fingerprint, now + REQUEST_TOKEN_SECONDS)
        return result

    return honouring


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """DynamoDBBackend.transact_write_items: all conditions checked, then all writes, or none."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    targets: list[tuple[str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        table = self.get_table(table_name)
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        identity = (str(table_name), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        targets.append((table_name, key))
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        failure: tuple[Any, Any, Any] = (None, None, None)
        if condition is not None:
            check = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not check.expr(current):
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                failure = ("ConditionalCheckFailed", ConditionalCheckFailed(item=old).message, old)
        errors.append(failure)
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    # What each write could change, to put back should a later write fail.
    snapshots = []
    stream_lengths: dict[str, int] = {}
    for table_name, key in targets:
        table = self.get_table(table_name)
        hash_value, range_value = key_of(table, key)
        snapshots.append(
            (table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value)))
        )
        if table.stream_shard is not None:
            stream_lengths.setdefault(table_name, len(table.stream_shard.items))
    applied: list[tuple[Any, Any, Any]] = [(None, None, None)] * len(transact_items)
    for index, item in enumerate(transact_items):
        op_type, op = next(iter(item.items()))
        try:
            _write(self, op_type, op, targets[index][1])
        except Exception as exc:
            _roll_back(self, snapshots, stream_lengths)
            if isinstance(exc, MockValidationException):
                raise
            failed = list(applied)
            failed[index] = (type(exc).__name__, str(exc), None)
            raise TransactionCanceledException(failed) from exc


def written_keys(action: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(table, key or whole item) of every item a successful write request touched."""
    if action in ("PutItem",):
        return [(body["TableName"], body["Item"])]
    if action in ("UpdateItem", "DeleteItem"):
        return [(body["TableName"], body["Key"])]
    if action == "TransactWriteItems":
        touched = []
        for entry in body.get("TransactItems", []):
            kind, operation = next(iter(entry.items()))
            if kind == "Put":
                touched.append((operation["TableName"], operation["Item"]))
            elif kind in ("Update", "Delete"):
                touched.append((operation["TableName"], operation["Key"]))
        return touched
    if action == "BatchWriteItem":
        touched = []
        for table, requests in body.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    touched.append((table, request["PutRequest"]["Item"]))
                elif "DeleteRequest" in request:
                    touched.append((table, request["DeleteRequest"]["Key"]))
        return touched
    return []


def key_of(table: Any, attributes: dict[str, Any]) -> tuple[Any, Any]:
    """The (hash, range) DynamoType key of the item with these attributes (a key, or a whole item)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = DynamoType(attributes[table.hash_key_attr])
    range_value = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _write(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if op_type == "Put":
        backend.put_item(
            op["TableName"], op["Item"], expression_attribute_names=names, expression_attribute_values=values
        )
    elif op_type == "Delete":
        backend.delete_item(
            op["TableName"], key, expression_attribute_names=names, expression_attribute_values=values
        )
    elif op_type == "Update":
        backend.update_item(
            op["TableName"],
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _roll_back(
    backend: Any, snapshots: list[tuple[Any, Any, Any, Any]], stream_lengths: dict[str, int]
) -> None:
    for table, hash_value, range_value, before in reversed(snapshots):
        if range_value is not None:
            if before is None:
                table.items.get(hash_value, {}).pop(range_value, None)
            else:
                table.items[hash_value][range_value] = before
        elif before is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = before
    for table_name, length in stream_lengths.items():
        shard = backend.get_table(table_name).stream_shard
        del shard.items[length:]


class IndexPartitions:
    """moto answers a query on a global secondary index by reading (and sorting) every item of the table;
    DynamoDB reads the one partition asked for. This keeps, for each GSI, the keys of the items in each
    partition, updated after every committed write, and hands moto's query only those items (which it
    still filters and sorts itself), so an index query costs what its partition holds."""

    def __init__(self) -> None:
        # table -> index name -> (partition value -> item keys, item key -> its partition value)
        self._tables: weakref.WeakKeyDictionary[Any, dict[str, tuple[dict[Any, set[Any]], dict[Any, Any]]]]
        self._tables = weakref.WeakKeyDictionary()

    @staticmethod
    def hash_attribute(index: Any) -> str | None:
        keys = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
        return keys[0] if len(keys) == 1 else None

    def _indexes(self, table: Any) -> dict[str, tuple[dict[Any, set[Any]], dict[Any, Any]]]:
        built = self._tables.get(table)
        if built is None:
            built = self._tables[table] = {index.name: ({}, {}) for index in table.global_indexes}
            for entry in list(table.items.values()):
                for item in entry.values() if isinstance(entry, dict) else [entry]:
                    self._place(table, (item.hash_key, item.range_key), item, built)
        return built

    def _place(self, table: Any, key: tuple[Any, Any], item: Any, built: dict[str, Any]) -> None:
        for index in table.global_indexes:
            members, where = built[index.name]
            old = where.pop(key, None)
            if old is not None:
                members[old].discard(key)
            attribute = self.hash_attribute(index)
            value = item.attrs.get(attribute) if item is not None and attribute else None
            if value is not None:
                members.setdefault(value, set()).add(key)
                where[key] = value

    def written(self, table: Any, attributes: dict[str, Any]) -> None:
        """After a committed write of the item with this key: its partitions as they are now."""
        if table in self._tables:  # otherwise built on the first query, from the items as they are then
            key = key_of(table, attributes)
            self._place(table, key, table.get_item(*key), self._tables[table])

    def forget(self, table: Any) -> None:
        self._tables.pop(table, None)

    def candidates(self, table: Any, index_name: str, value: Any) -> list[Any] | None:
        """The items of one partition of an index; None when the index is not a GSI known here."""
        built = self._indexes(table)
        if index_name not in built:
            return None
        members, _ = built[index_name]
        items = (table.get_item(*key) for key in members.get(value, ()))
        return [item for item in items if item is not None]


partitions = IndexPartitions()


def _partition_query(query: Any) -> Any:
    import inspect

    signature = inspect.signature(query)

    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, hash_key, *args, **kwargs).arguments
        index_name = arguments.get("index_name")
        index = next((i for i in self.global_indexes if i.name == index_name), None) if index_name else None
        attribute = IndexPartitions.hash_attribute(index) if index is not None else None
        conditions = dict(arguments.get("hash_key_conditions") or [])
        value = conditions.get(attribute) if attribute else None
        if value is None and attribute is not None and not conditions:
            value = hash_key
        found = partitions.candidates(self, str(index_name), value) if value is not None else None
        if found is None:
            return query(self, hash_key, *args, **kwargs)
        self.all_items = lambda: found  # this query alone (requests are serialised) reads the partition
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    return partition_query
