"""The runtime stops moto from keeping every model object it ever made: items replaced by writes, copies,
stream records and deleted messages are freed, and the data answers as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import moto_models


@pytest.fixture
def untracking() -> Iterator[None]:
    """moto's BaseModel as it comes, given back after the test (the change is for the whole process)."""
    from moto.core.common_models import BaseModel

    model: Any = BaseModel
    original = model.__dict__["__new__"]
    yield
    model.__new__ = original
    model._checkout_untracked = False


def _tracked() -> dict[str, int]:
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import StreamRecord
    from moto.sqs.models import Message

    return {cls.__name__: len(cls.instances_tracked) for cls in (Item, StreamRecord, Message)}


def _churn(dynamodb: Any, sqs: Any, queue_url: str) -> None:
    for n in range(50):
        dynamodb.put_item(TableName="churn", Item={"pk": {"S": "a"}, "n": {"N": str(n)}})
        dynamodb.update_item(
            TableName="churn",
            Key={"pk": {"S": "a"}},
            UpdateExpression="ADD hits :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
        sqs.send_message(QueueUrl=queue_url, MessageBody=str(n))
        for message in sqs.receive_message(QueueUrl=queue_url).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_replaced_items_stream_records_and_deleted_messages_are_not_kept(untracking: None) -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        dynamodb.create_table(
            TableName="churn",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        queue_url = sqs.create_queue(QueueName="churn")["QueueUrl"]
        # moto as it comes keeps them all
        before = _tracked()
        _churn(dynamodb, sqs, queue_url)
        kept = {name: n - before[name] for name, n in _tracked().items()}
        assert all(n >= 50 for n in kept.values()), kept
        # once the runtime's change is in, nothing more is kept, and the data is as it should be
        moto_models.install()
        before = _tracked()
        _churn(dynamodb, sqs, queue_url)
        assert _tracked() == before
        item = dynamodb.get_item(TableName="churn", Key={"pk": {"S": "a"}})["Item"]
        assert item["n"] == {"N": "49"} and item["hits"] == {"N": "1"}


def test_models_that_are_also_dicts_are_still_made(untracking: None) -> None:
    from moto.meteringmarketplace.models import UsageRecord

    moto_models.install()
    record = UsageRecord(
        timestamp="2026-12-04T00:00:00Z",
        customer_identifier="c",
        dimension="d",
        quantity=1,
    )
    assert isinstance(record, dict) and all(kept is not record for kept in UsageRecord.instances_tracked)
