"""What the integration tests share: handlers loaded from functions/, events built from events/."""

from __future__ import annotations

import copy
import importlib.util
import json
import time
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def LambdaContext(function_name: str = "test", timeout_seconds: int = 30) -> Any:
    """A context shaped like the Lambda runtime's, as the embedded runtime makes it."""
    from local.lambda_context import LambdaContext as RuntimeContext

    return RuntimeContext(
        function_name=function_name, memory_limit_in_mb=512, timeout_seconds=timeout_seconds
    )


@cache
def handler_module(function: str) -> ModuleType:
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"functions_{function}_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_event(name: str) -> Any:
    return json.loads((EVENTS / f"{name}.json").read_text())


def api_event(
    sample: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    tenant: str | None = "demo",
    return_hosts: str = "example.com,localhost",
) -> dict[str, Any]:
    """A REST proxy event shaped like events/<sample>.json, for another path, body or tenant."""
    event = copy.deepcopy(sample_event(sample))
    event["path"] = path
    event["requestContext"]["path"] = f"/live{path}"
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["pathParameters"] = path_parameters
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    merged = {**event.get("headers", {}), **(headers or {})}
    event["headers"] = merged
    event["multiValueHeaders"] = {key: [value] for key, value in merged.items()}
    event["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    if tenant is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"] = {
            "principalId": tenant,
            "tenantId": tenant,
            "returnHosts": return_hosts,
        }
    return event


class Answer:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.status = raw["statusCode"]
        headers = {key: str(value) for key, value in (raw.get("headers") or {}).items()}
        for key, values in (raw.get("multiValueHeaders") or {}).items():
            headers[key] = str(values[-1])
        self.headers = headers
        self.body = raw.get("body") or ""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        return self.json()["error"]


def invoke(function: str, event: Any, context: Any = None) -> Any:
    return handler_module(function).lambda_handler(event, context or LambdaContext(function))


def call(function: str, event: dict[str, Any]) -> Answer:
    return Answer(invoke(function, event))


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Polls `predicate` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
