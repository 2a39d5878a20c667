"""What every measure shares: the environment, the real handlers loaded by path, API Gateway events,
a Lambda context, and botocore hooks that count DynamoDB calls and items read."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "checkout_core"
FUNCTIONS = ROOT / "functions"
REGION = "us-east-1"
TENANT = {"tenantId": "demo", "returnHosts": "example.com"}

# The environment a deployed function sees (template.yaml Globals), with AWS pointed at moto.
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "TABLE_NAME": "bench-sessions",
    "IDEMPOTENCY_TABLE_NAME": "bench-idempotency",
    "SERVER_KEY": "be" * 32,
    "CANCELLATION_RECHECK_SECONDS": "3600",
    "POWERTOOLS_SERVICE_NAME": "checkout-sessions",
    "POWERTOOLS_METRICS_NAMESPACE": "CheckoutSessions",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
}


def prepare_environment() -> None:
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for path in (str(ROOT), str(LAYER)):
        if path not in sys.path:
            sys.path.insert(0, path)
    # DynamoDB's promises in the emulator, as the runtime and the tests have them: atomic requests, and a
    # transaction that costs what it touches (moto's own copies every table it touches).
    from local import atomic_dynamodb, moto_queues

    atomic_dynamodb.install()
    moto_queues.install()  # a queue of many messages costs the in-process model what it costs the runtime


def reset_caches() -> None:
    """Forgets cached settings, clients and services, so that the next use reads the environment again."""
    from checkout_core import aws, context, http, providers, settings

    settings.get_settings.cache_clear()
    aws.client.cache_clear()
    context.get_context.cache_clear()
    providers.get_providers.cache_clear()
    http._persistence_layer = None


def create_tables() -> None:
    from checkout_core import aws
    from local import cfn

    cfn.create_tables(
        aws.client("dynamodb"),
        {"SessionsTable": os.environ["TABLE_NAME"], "IdempotencyTable": os.environ["IDEMPOTENCY_TABLE_NAME"]},
    )


_loaded: dict[str, ModuleType] = {}


def load_handler(name: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """`lambda_handler` of functions/<name>/app.py, imported by path as Lambda would."""
    if name not in _loaded:
        path = FUNCTIONS / name / "app.py"
        spec = importlib.util.spec_from_file_location(f"bench_function_{name}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = _loaded[name].lambda_handler
    return handler


def LambdaContext(function_name: str = "bench", timeout_seconds: int = 60) -> Any:
    """The embedded runtime's Lambda context."""
    from local.lambda_context import LambdaContext as RuntimeContext

    return RuntimeContext(function_name, memory_limit_in_mb=512, timeout_seconds=timeout_seconds)


def api_event(
    method: str,
    resource: str,
    path: str,
    path_parameters: dict[str, str] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    authorizer: dict[str, str] | None = TENANT,
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as the gateway sends it after the authorizer allowed it."""
    raw_body = body if isinstance(body, str) or body is None else json.dumps(body)
    all_headers = {"Host": "api.example.com", "Content-Type": "application/json", **(headers or {})}
    request_id = str(uuid.uuid4())
    context: dict[str, Any] = {
        "requestId": request_id,
        "stage": "live",
        "resourcePath": resource,
        "httpMethod": method,
        "path": f"/live{path}",
        "identity": {"sourceIp": "127.0.0.1"},
    }
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {key: [value] for key, value in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": context,
        "body": raw_body,
        "isBase64Encoded": False,
    }


def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
    return load_handler(name)(event, LambdaContext(function_name=name))


def body_of(response: dict[str, Any], expected_status: int) -> dict[str, Any]:
    if response["statusCode"] != expected_status:
        raise AssertionError(f"expected {expected_status}, got {response['statusCode']}: {response['body']}")
    parsed: dict[str, Any] = json.loads(response["body"])
    return parsed


# -- the calls the bench makes through the real handlers -----------------------------------------------


def create_session(expires_in: int | None = None) -> str:
    body: dict[str, Any] = {
        "amount": 5000,
        "currency": "USD",
        "referenceId": f"order-{uuid.uuid4().hex[:8]}",
        "returnUrl": "https://example.com/return",
    }
    if expires_in is not None:
        body["expiresInSeconds"] = expires_in
    response = invoke("create_session", api_event("POST", "/v1/sessions", "/v1/sessions", body=body))
    return str(body_of(response, 201)["sessionId"])


def get_session(session_id: str) -> dict[str, Any]:
    event = api_event(
        "GET", "/v1/sessions/{sessionId}", f"/v1/sessions/{session_id}", {"sessionId": session_id}
    )
    return body_of(invoke("get_session", event), 200)


def create_transaction(session_id: str, provider: str) -> str:
    event = api_event(
        "POST",
        "/v1/sessions/{sessionId}/transactions",
        f"/v1/sessions/{session_id}/transactions",
        {"sessionId": session_id},
        body={"provider": provider},
    )
    return str(body_of(invoke("create_transaction", event), 201)["transactionId"])


def cancel_event(session_id: str) -> dict[str, Any]:
    return api_event(
        "POST",
        "/v1/sessions/{sessionId}/cancel",
        f"/v1/sessions/{session_id}/cancel",
        {"sessionId": session_id},
        body={"reason": "customer changed their mind", "reasonType": "CUSTOMER_REQUESTED"},
    )


def cancel_session(session_id: str) -> dict[str, Any]:
    return body_of(invoke("cancel_session", cancel_event(session_id)), 200)


def provider_event(provider: str, transaction_id: str, status: str) -> dict[str, Any]:
    """A signed provider event, as the provider would post it."""
    from checkout_core.signatures import sign

    secret = os.environ.get("SANDBOX_WEBHOOK_SECRET", "whsec_sandbox")
    body = json.dumps(
        {"eventId": f"evt_{uuid.uuid4().hex}", "transactionId": transaction_id, "status": status}
    )
    signature = sign(secret, int(time.time()), body.encode())
    return api_event(
        "POST",
        "/v1/providers/{provider}/events",
        f"/v1/providers/{provider}/events",
        {"provider": provider},
        body=body,
        headers={"Provider-Signature": signature},
        authorizer=None,
    )


def send_provider_event(provider: str, transaction_id: str, status: str) -> dict[str, Any]:
    return body_of(invoke("provider_events", provider_event(provider, transaction_id, status)), 200)


# -- counting -----------------------------------------------------------------------------------------


@dataclass
class CallCounter:
    """Counts DynamoDB API calls by operation, and the items they read."""

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    items_read: int = 0

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def before_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def after_call(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("Error"):
            self.errors[f"{model.name}:{parsed['Error'].get('Code')}"] += 1
            return
        if model.name in ("Query", "Scan"):
            self.items_read += int(parsed.get("ScannedCount", parsed.get("Count", 0)))
        elif model.name == "GetItem" and parsed.get("Item"):
            self.items_read += 1
        elif model.name == "BatchGetItem":
            self.items_read += sum(len(items) for items in parsed.get("Responses", {}).values())
        elif model.name == "TransactGetItems":
            self.items_read += sum(1 for response in parsed.get("Responses", []) if response.get("Item"))


@contextlib.contextmanager
def counting(client: Any) -> Iterator[CallCounter]:
    """Counts the DynamoDB calls made through `client` (the cached client the domain code uses)."""
    counter = CallCounter()
    events = client.meta.events
    events.register("before-call.dynamodb.*", counter.before_call, unique_id="bench-before")
    events.register("after-call.dynamodb.*", counter.after_call, unique_id="bench-after")
    try:
        yield counter
    finally:
        events.unregister("before-call.dynamodb.*", unique_id="bench-before")
        events.unregister("after-call.dynamodb.*", unique_id="bench-after")


def domain_dynamodb() -> Any:
    from checkout_core import aws

    return aws.client("dynamodb")


def silence_stdout() -> None:
    """The handlers' structured logs and metrics go to stdout (CloudWatch in Lambda): here they are still
    formatted and written, to /dev/null. Call before checkout_core is imported (Logger keeps the stream).
    The bench reports on stderr."""
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
