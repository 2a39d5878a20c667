"""Integration fixtures: moto in-process, tables and the state machine built from template.yaml."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TABLE_NAME": "checkout-sessions-it",
        "IDEMPOTENCY_TABLE_NAME": "checkout-idempotency-it",
        "EVENT_BUS_NAME": "checkout-it",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:cancellation-finaliser-it",
        "POWERTOOLS_SERVICE_NAME": "checkout-sessions",
        "POWERTOOLS_METRICS_NAMESPACE": "CheckoutSessions",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": "https://pay.example.test",
        "SANDBOX_WEBHOOK_SECRET": "whsec_sandbox",
        "SERVER_KEY": "5e" * 32,
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("PROVIDER_SECRETS_NAME", None)

import boto3
from moto import mock_aws

from checkout_core import aws as aws_clients
from checkout_core import context, providers
from checkout_core.api_keys import hash_api_key
from checkout_core.repository import SessionRepository
from local import atomic_dynamodb, cfn

atomic_dynamodb.install()

ROLE_ARN = "arn:aws:iam::123456789012:role/cancellation-finaliser"


@dataclass
class Aws:
    dynamodb: Any
    stepfunctions: Any
    events: Any
    table_name: str
    state_machine_arn: str

    def session_item(self, session_id: str) -> dict[str, Any] | None:
        return SessionRepository(self.table_name).get_session(session_id)

    def executions(self) -> list[dict[str, Any]]:
        return self.stepfunctions.list_executions(stateMachineArn=self.state_machine_arn)["executions"]


@functools.cache
def _clients() -> tuple[Any, Any, Any]:
    """Made once: moto intercepts clients whenever they were created, and making them is slow."""
    return boto3.client("dynamodb"), boto3.client("stepfunctions"), boto3.client("events")


@functools.cache
def _definition(table: str) -> str:
    return cfn.state_machine_definition(
        "CancellationFinaliser",
        cfn.Resolver(refs={"SessionsTable": table}),
        parameter_overrides={"CancellationRecheckSeconds": "1"},
    )


@pytest.fixture
def aws() -> Iterator[Aws]:
    dynamodb, stepfunctions, events = _clients()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        aws_clients.client.cache_clear()
        context.get_context.cache_clear()
        providers.get_providers.cache_clear()
        table = os.environ["TABLE_NAME"]
        cfn.create_tables(
            dynamodb, {"SessionsTable": table, "IdempotencyTable": os.environ["IDEMPOTENCY_TABLE_NAME"]}
        )
        arn = stepfunctions.create_state_machine(
            name=os.environ["STATE_MACHINE_ARN"].rsplit(":", 1)[1],
            definition=_definition(table),
            roleArn=ROLE_ARN,
        )["stateMachineArn"]
        assert arn == os.environ["STATE_MACHINE_ARN"]
        events.create_event_bus(Name=os.environ["EVENT_BUS_NAME"])
        repository = SessionRepository(table)
        repository.put_api_key(
            hash_api_key("sk_test_demo"), "demo", ["example.com", "localhost"], "2026-01-01T00:00:00.000Z"
        )
        yield Aws(dynamodb, stepfunctions, events, table, arn)
        _stop_running_executions(stepfunctions, arn)
        aws_clients.client.cache_clear()
        context.get_context.cache_clear()


def _stop_running_executions(stepfunctions: Any, arn: str) -> None:
    """Executions still waiting on a callback would outlive the mock; stop the ones that can be."""
    for execution in stepfunctions.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
        with contextlib.suppress(Exception):  # moto cannot stop an execution whose worker has not started
            stepfunctions.stop_execution(executionArn=execution["executionArn"])
