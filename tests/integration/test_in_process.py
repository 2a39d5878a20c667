"""The runtime's own clients reach moto's server application in process: the same answers as over HTTP,
errors included, with no socket at all (the application is not listening anywhere here)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local import atomic_dynamodb, in_process

atomic_dynamodb.install()


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


class CountingApp:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.requests += 1
        return self.app(environ, start_response)


@pytest.fixture
def app() -> CountingApp:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return CountingApp(DomainDispatcherApplication(create_backend_app))


@pytest.fixture
def clients(app: CountingApp) -> Iterator[dict[str, Any]]:
    from moto import mock_aws

    made = {}
    for service in ("dynamodb", "sqs"):
        made[service] = boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{_closed_port()}",  # nothing listens: HTTP would fail
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        in_process.attach(made[service], app)
    with mock_aws():  # fresh backends, dropped after; its own interception never sees these clients' calls
        yield made


def test_dynamodb_answers_and_refuses_as_over_http(clients: dict[str, Any], app: CountingApp) -> None:
    dynamodb = clients["dynamodb"]
    dynamodb.create_table(
        TableName="in-process",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="in-process", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    assert dynamodb.get_item(TableName="in-process", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "1"}
    # A refused condition is the error botocore raises for DynamoDB's answer
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(
            TableName="in-process", Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # And a cancelled transaction names its reasons
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": "in-process",
                        "Item": {"pk": {"S": "a"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["ConditionalCheckFailed"]
    assert app.requests == 5  # every call went to the application


def test_sqs_sends_receives_and_deletes(clients: dict[str, Any], app: CountingApp) -> None:
    sqs = clients["sqs"]
    url = sqs.create_queue(QueueName="in-process.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(i), "MessageBody": f"m{i}", "MessageGroupId": "g", "MessageDeduplicationId": str(i)}
            for i in range(3)
        ],
    )
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in got] == ["m0", "m1", "m2"]
    assert all(m["Attributes"]["MessageGroupId"] == "g" for m in got)
    sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    )
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    with pytest.raises(ClientError) as missing:
        sqs.get_queue_url(QueueName="no-such-queue")
    assert "NonExistentQueue" in missing.value.response["Error"]["Code"]
    assert app.requests == 6  # every call went to the application


def test_an_error_moto_does_not_answer_is_a_500_the_client_retries() -> None:
    calls = []

    def broken(environ: dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        raise RuntimeError("a moto bug")

    client = boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )
    in_process.attach(client, broken)
    with pytest.raises(ClientError) as failed:
        client.list_queues()
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert len(calls) > 1  # as over HTTP: botocore retried the 500
