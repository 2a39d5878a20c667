"""The emulator's DynamoDB keeps DynamoDB's promises: transactions all or nothing at the cost of what they
touch, and a ClientRequestToken that makes a retried transaction answer as the first did."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from checkout_core.repository import SessionChange, SessionRepository


def _counter(aws: Any, pk: str) -> dict[str, Any]:
    return aws.dynamodb.get_item(TableName=aws.table_name, Key={"pk": {"S": pk}, "sk": {"S": "X"}}).get(
        "Item", {}
    )


def _bump(aws: Any, pk: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": aws.table_name,
            "Key": {"pk": {"S": pk}, "sk": {"S": "X"}},
            "UpdateExpression": "ADD hits :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def _stream_records(aws: Any) -> int:
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends["123456789012"]["us-east-1"].tables[aws.table_name]
    return len(table.stream_shard.items)


def test_a_retried_transaction_with_the_same_token_succeeds_without_a_second_effect(aws: Any) -> None:
    # Given a transaction that committed
    items = [_bump(aws, "COUNTER#1")]
    aws.dynamodb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    records = _stream_records(aws)
    # When the same request comes again with its token (a client retry after a timeout)
    aws.dynamodb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    # Then it succeeds, and nothing is applied twice: not the write, not its stream record
    assert _counter(aws, "COUNTER#1")["hits"] == {"N": "1"}
    assert _stream_records(aws) == records
    # And without the token it is a new transaction
    aws.dynamodb.transact_write_items(TransactItems=items)
    assert _counter(aws, "COUNTER#1")["hits"] == {"N": "2"}


def test_the_same_token_with_other_parameters_is_refused(aws: Any) -> None:
    aws.dynamodb.transact_write_items(TransactItems=[_bump(aws, "COUNTER#1")], ClientRequestToken="token-2")
    with pytest.raises(ClientError) as refused:
        aws.dynamodb.transact_write_items(
            TransactItems=[_bump(aws, "COUNTER#2")], ClientRequestToken="token-2"
        )
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert _counter(aws, "COUNTER#2") == {}


def test_a_failed_condition_writes_nothing_and_publishes_nothing(aws: Any) -> None:
    records = _stream_records(aws)
    failing = {
        "ConditionCheck": {
            "TableName": aws.table_name,
            "Key": {"pk": {"S": "MISSING"}, "sk": {"S": "X"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    with pytest.raises(ClientError) as cancelled:
        aws.dynamodb.transact_write_items(TransactItems=[_bump(aws, "COUNTER#3"), failing])
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert _counter(aws, "COUNTER#3") == {}
    assert _stream_records(aws) == records


def test_a_write_failing_midway_puts_back_only_what_it_touched(aws: Any) -> None:
    from moto.dynamodb.models import dynamodb_backends

    # Given an item whose attribute is a string, and the table object as it is
    aws.dynamodb.put_item(
        TableName=aws.table_name, Item={"pk": {"S": "TEXT"}, "sk": {"S": "X"}, "hits": {"S": "many"}}
    )
    backend = dynamodb_backends["123456789012"]["us-east-1"]
    table, shard = backend.tables[aws.table_name], backend.tables[aws.table_name].stream_shard
    records = len(shard.items)
    # When a transaction's first write succeeds and its second cannot be applied (ADD to a string)
    with pytest.raises(ClientError):
        aws.dynamodb.transact_write_items(TransactItems=[_bump(aws, "COUNTER#4"), _bump(aws, "TEXT")])
    # Then the first write is undone, its stream record dropped, and the table was never swapped for a copy
    assert _counter(aws, "COUNTER#4") == {}
    assert _counter(aws, "TEXT")["hits"] == {"S": "many"}
    assert backend.tables[aws.table_name] is table and table.stream_shard is shard
    assert len(shard.items) == records


def test_the_repository_sends_one_token_per_logical_write_and_a_retry_repeats_it(aws: Any) -> None:
    # Given a client that fails the first call after DynamoDB committed it, as a read timeout does
    sent: list[str] = []

    class TimingOutClient:
        def __init__(self) -> None:
            self.calls = 0

        def __getattr__(self, name: str) -> Any:
            real = getattr(aws.dynamodb, name)
            if name != "transact_write_items":
                return real

            def call(**kwargs: Any) -> Any:
                sent.append(kwargs["ClientRequestToken"])
                result = real(**kwargs)
                self.calls += 1
                if self.calls == 1:
                    raise ClientError({"Error": {"Code": "RequestTimeout"}}, "TransactWriteItems")
                return result

            return call

    client = TimingOutClient()
    repository = SessionRepository(aws.table_name, client_factory=lambda: client)
    session_id = "0193f2d4-0000-7000-8000-000000000001"
    aws.dynamodb.put_item(
        TableName=aws.table_name,
        Item={
            "pk": {"S": f"SESSION#{session_id}"},
            "sk": {"S": "SESSION"},
            "version": {"N": "1"},
            "seq": {"N": "1"},
        },
    )
    change = SessionChange(
        operation="test", session_id=session_id, expected_version=1, seen_seq=1, set={"note": "once"}
    )
    # When the write times out and is sent again unchanged
    with pytest.raises(ClientError):
        repository.apply(change)
    repository.apply(change)
    # Then both carried one token, and the retry was answered as the first: one version bump only
    assert len(sent) == 2 and sent[0] == sent[1]
    assert repository.get_session(session_id)["version"] == 2


def _tenant_ids(aws: Any, tenant: str) -> list[str]:
    answer = aws.dynamodb.query(
        TableName=aws.table_name,
        IndexName="byTenantKeys",
        KeyConditionExpression="tenantId = :t",
        ExpressionAttributeValues={":t": {"S": tenant}},
    )
    return sorted(item["sessionId"]["S"] for item in answer["Items"])


def test_an_index_query_reads_its_partition_only_and_follows_every_write(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.models.table import Table

    # Given items of two tenants in the byTenantKeys index, and a table that may not be read whole
    for index in range(30):
        tenant = "a" if index < 3 else "b"
        aws.dynamodb.put_item(
            TableName=aws.table_name,
            Item={
                "pk": {"S": f"SESSION#s{index:02d}"},
                "sk": {"S": "SESSION"},
                "sessionId": {"S": f"s{index:02d}"},
                "tenantId": {"S": tenant},
            },
        )

    def whole_table(self: Any) -> list[Any]:
        raise AssertionError("an index query read the whole table")

    monkeypatch.setattr(Table, "all_items", whole_table)
    # Then a query reads tenant a's partition alone
    assert _tenant_ids(aws, "a") == ["s00", "s01", "s02"]
    # And an item that moves between partitions, or leaves the index, is found where it now is
    key = {"pk": {"S": "SESSION#s01"}, "sk": {"S": "SESSION"}}
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key=key,
        UpdateExpression="SET tenantId = :b",
        ExpressionAttributeValues={":b": {"S": "b"}},
    )
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": "SESSION#s02"}, "sk": {"S": "SESSION"}},
        UpdateExpression="REMOVE tenantId",
    )
    assert _tenant_ids(aws, "a") == ["s00"]
    assert "s01" in _tenant_ids(aws, "b") and "s02" not in _tenant_ids(aws, "b")
    # And a transaction that fails changes no partition
    with pytest.raises(ClientError):
        aws.dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": aws.table_name,
                        "Key": {"pk": {"S": "SESSION#s00"}, "sk": {"S": "SESSION"}},
                        "UpdateExpression": "SET tenantId = :b",
                        "ExpressionAttributeValues": {":b": {"S": "b"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": aws.table_name,
                        "Key": {"pk": {"S": "MISSING"}, "sk": {"S": "X"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert _tenant_ids(aws, "a") == ["s00"]
    aws.dynamodb.delete_item(
        TableName=aws.table_name, Key={"pk": {"S": "SESSION#s00"}, "sk": {"S": "SESSION"}}
    )
    assert _tenant_ids(aws, "a") == []


def test_an_update_expression_parsed_once_still_applies_each_request_s_own_names_and_values(aws: Any) -> None:
    # Given one expression text used by requests with other names, other values and other items
    expression = "SET #a = :a, #b = if_not_exists(#b, :b) ADD hits :one REMOVE #gone"

    def update(pk: str, a: str, b: str, gone: str, value: str) -> None:
        aws.dynamodb.update_item(
            TableName=aws.table_name,
            Key={"pk": {"S": pk}, "sk": {"S": "X"}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#a": a, "#b": b, "#gone": gone},
            ExpressionAttributeValues={":a": {"S": value}, ":b": {"S": value}, ":one": {"N": "1"}},
        )

    aws.dynamodb.put_item(
        TableName=aws.table_name, Item={"pk": {"S": "P#2"}, "sk": {"S": "X"}, "old": {"S": "x"}}
    )
    # When they run one after the other, in a transaction too
    update("P#1", "colour", "size", "old", "red")
    update("P#2", "shape", "size", "old", "round")
    update("P#1", "colour", "size", "old", "blue")
    aws.dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": aws.table_name,
                    "Key": {"pk": {"S": "P#2"}, "sk": {"S": "X"}},
                    "UpdateExpression": expression,
                    "ExpressionAttributeNames": {"#a": "shape", "#b": "weight", "#gone": "size"},
                    "ExpressionAttributeValues": {":a": {"S": "flat"}, ":b": {"S": "9"}, ":one": {"N": "5"}},
                }
            }
        ]
    )
    # Then each applied its own: no name or value of one request reached another
    assert _counter(aws, "P#1") == {
        "pk": {"S": "P#1"},
        "sk": {"S": "X"},
        "colour": {"S": "blue"},
        "size": {"S": "red"},
        "hits": {"N": "2"},
    }
    assert _counter(aws, "P#2") == {
        "pk": {"S": "P#2"},
        "sk": {"S": "X"},
        "shape": {"S": "flat"},
        "weight": {"S": "9"},
        "hits": {"N": "6"},
    }
    # And a malformed expression is refused every time it comes, not only the first
    for _ in range(2):
        with pytest.raises(ClientError) as refused:
            aws.dynamodb.update_item(
                TableName=aws.table_name,
                Key={"pk": {"S": "P#3"}, "sk": {"S": "X"}},
                UpdateExpression="SET = :a",
                ExpressionAttributeValues={":a": {"S": "x"}},
            )
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert _counter(aws, "P#3") == {}
