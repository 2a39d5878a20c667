"""Local names of the template's resources: what `!Ref` and `!GetAtt` resolve to in the embedded runtime."""

from __future__ import annotations

import re

PREFIX = "checkout"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
STACK_NAME = "checkout-sessions"

_TYPE_SUFFIXES = {
    "AWS::DynamoDB::Table": "Table",
    "AWS::Serverless::Function": "Function",
    "AWS::Events::EventBus": "Bus",
}


def kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


def local_name(logical_id: str, resource_type: str) -> str:
    """`SessionsTable` -> `checkout-sessions`, `CreateSessionFunction` -> `checkout-create-session`,
    `CancellationFinaliser` -> `checkout-cancellation-finaliser`, `EventBus` -> `checkout`."""
    suffix = _TYPE_SUFFIXES.get(resource_type, "")
    stem = logical_id[: -len(suffix)] if suffix and logical_id.endswith(suffix) else logical_id
    if resource_type == "AWS::Events::EventBus" and stem in ("", "Event"):
        return PREFIX
    return f"{PREFIX}-{kebab(stem)}" if stem else PREFIX


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"


def state_machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{name}"


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"


def event_bus_arn(name: str) -> str:
    return f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{name}"
