"""The cancel handler's time in-process against the time of its DynamoDB calls alone, same moto.

Each iteration creates a fresh OPEN session with no transaction (not timed), then times either the real
cancel handler (API Gateway event in, proxy answer out) or the same two DynamoDB calls issued directly
with boto3: the GetItem and the TransactWriteItems the handler sent, recorded from a warm-up cancel with
the session id (and event id) replaced. The two kinds alternate so that noise hits both alike.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from typing import Any

from bench import harness

WARMUP = 5


class _Recorder:
    """Records the parameters of the DynamoDB calls made through a client."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))


def _record_cancel(client: Any, session_id: str) -> list[tuple[str, dict[str, Any]]]:
    recorder = _Recorder()
    client.meta.events.register("before-parameter-build.dynamodb.*", recorder, unique_id="bench-record")
    try:
        harness.cancel_session(session_id)
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.*", unique_id="bench-record")
    operations = [name for name, _ in recorder.calls]
    if operations != ["GetItem", "TransactWriteItems"]:
        raise AssertionError(f"a cancel with no transaction made {operations}")
    return recorder.calls


def _replay_params(
    recorded: list[tuple[str, dict[str, Any]]], old_session: str, new_session: str
) -> list[tuple[str, dict[str, Any]]]:
    from checkout_core.clock import uuid7

    text = json.dumps(recorded).replace(old_session, new_session)
    replayed: list[tuple[str, dict[str, Any]]] = [(name, params) for name, params in json.loads(text)]
    for name, params in replayed:
        for item in params.get("TransactItems", []) if name == "TransactWriteItems" else []:
            put = item.get("Put", {}).get("Item", {})
            if "eventId" in put:
                put["eventId"] = {"S": uuid7()}
        if "ClientRequestToken" in params:
            # A token of its own, as the handler derives one per logical write.
            params["ClientRequestToken"] = uuid7()[:36]
    return replayed


_SNAKE = {"GetItem": "get_item", "TransactWriteItems": "transact_write_items"}


def measure(iterations: int = 40) -> dict[str, Any]:
    from moto import mock_aws

    with mock_aws():
        harness.reset_caches()
        harness.create_tables()
        from checkout_core import aws

        domain_client = aws.client("dynamodb")
        direct_client = aws.client.__wrapped__("dynamodb")  # same configuration, not the cached one
        cancel = harness.load_handler("cancel_session")
        template_session = harness.create_session()
        recorded = _record_cancel(domain_client, template_session)

        handler_times: list[float] = []
        direct_times: list[float] = []
        for index in range(WARMUP + iterations):
            session_id = harness.create_session()
            event = harness.cancel_event(session_id)
            context = harness.LambdaContext(function_name="cancel_session")
            started = time.perf_counter()
            response = cancel(event, context)
            elapsed = time.perf_counter() - started
            if response["statusCode"] != 200:
                raise AssertionError(f"cancel answered {response['statusCode']}: {response['body']}")
            if index >= WARMUP:
                handler_times.append(elapsed)

            session_id = harness.create_session()
            calls = [
                (getattr(direct_client, _SNAKE[name]), params)
                for name, params in _replay_params(recorded, template_session, session_id)
            ]
            started = time.perf_counter()
            for method, params in calls:
                method(**params)
            elapsed = time.perf_counter() - started
            if index >= WARMUP:
                direct_times.append(elapsed)
            if harness.get_session(session_id)["status"] != "CANCELLED":
                raise AssertionError("the replayed calls did not cancel the session")
    handler_median = statistics.median(handler_times)
    direct_median = statistics.median(direct_times)
    return {
        "ratio": handler_median / direct_median,
        "handler_ms": handler_median * 1000,
        "direct_ms": direct_median * 1000,
        "iterations": iterations,
    }
