"""Structured logs carry the ids and never a secret; every transition emits its metric."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from checkout_core.observability import logger
from checkout_core.signatures import sign
from tests.integration.flows import cancel, create_session, provider_event, transaction


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything the service's logger writes, at every level, while the test runs."""
    stream = io.StringIO()
    previous_level = logger.log_level
    previous_stream = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    logger.setLevel("DEBUG")
    yield stream
    logger.setLevel(previous_level)
    logger.registered_handler.setStream(previous_stream)  # type: ignore[attr-defined]


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_logs_carry_ids_and_no_secrets(aws: Any, log_output: io.StringIO) -> None:
    session = create_session()
    token = session["url"].rsplit("/", 1)[1]
    tx = transaction(session["sessionId"], "sandbox_bank_transfer")
    body = json.dumps({"eventId": "evt-obs", "transactionId": tx, "status": "AUTHORIZED"})
    signature = sign("whsec_sandbox", int(time.time()), body.encode())
    provider_event("sandbox_bank_transfer", tx, "AUTHORIZED", raw_body=body, signature=signature)
    cancel(session["sessionId"])
    output = log_output.getvalue()
    for secret in (token, "sk_test_demo", signature.split("v1=")[1], "whsec_sandbox"):
        assert secret not in output
    records = [line for line in json_lines(output) if "message" in line]
    assert any(r.get("sessionId") == session["sessionId"] and r.get("tenantId") == "demo" for r in records)
    assert any(r.get("transactionId") == tx for r in records)


def test_one_metric_per_transition(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    session_id = create_session()["sessionId"]
    card = transaction(session_id)
    provider_event("sandbox_card", card, "SETTLED")
    metrics: list[str] = []
    for line in json_lines(capsys.readouterr().out):
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            metrics += [metric["Name"] for metric in directive["Metrics"]]
    assert sorted(metrics) == sorted(
        ["SessionCreated", "TransactionCreated", "TransactionSettled", "SessionCompleted"]
    )


def test_traces_never_record_an_answer(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from checkout_core.observability import tracer

    # Given a tracer whose segments record every piece of metadata put on them
    recorded: list[tuple[str, Any]] = []

    class RecordingSegment:
        def put_metadata(self, key: str, value: Any, namespace: str = "") -> None:
            recorded.append((key, value))

        def put_annotation(self, key: str, value: Any) -> None:
            recorded.append((key, value))

    @contextlib.contextmanager
    def in_subsegment(name: str) -> Iterator[RecordingSegment]:
        yield RecordingSegment()

    monkeypatch.setattr(tracer.provider, "in_subsegment", in_subsegment)
    # When a session is created (its answer holds the pay link) and read (its answer holds metadata)
    session = create_session(metadata={"customerEmail": "someone@example.com"})
    token = session["url"].rsplit("/", 1)[1]
    # Then no answer reached the trace
    assert recorded, "the tracer was not used"
    assert not any(key.endswith("response") for key, _ in recorded)
    assert token not in json.dumps([value for _, value in recorded], default=str)


def _gauges(output: str, name: str) -> list[float]:
    """The values an embedded-metric line gives `name` (one list per line)."""
    return [value for line in json_lines(output) if "_aws" in line for value in line.get(name, [])]


def _pending_in_index(aws: Any) -> int:
    """What the gauge stands for, counted the expensive way: every key of the pending index."""
    total = 0
    for shard in range(10):
        total += aws.dynamodb.query(
            TableName=aws.table_name,
            IndexName="byPendingCancellation",
            KeyConditionExpression="pendingShard = :shard",
            ExpressionAttributeValues={":shard": {"S": f"PENDING#{shard}"}},
            Select="COUNT",
        )["Count"]
    return total


def test_the_pending_cancellations_gauge_follows_sessions_into_and_out_of_the_wait(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support import LambdaContext, invoke, sample_event, wait_until

    def sweep_gauge() -> float:
        capsys.readouterr()
        invoke("expire_sessions", sample_event("expire_sessions"), LambdaContext("expire_sessions"))
        [level] = _gauges(capsys.readouterr().out, "PendingCancellations")
        return level

    assert sweep_gauge() == 0
    # Given three sessions whose cancel must wait for a bank transfer, and one cancelled at once
    waiting = []
    for _ in range(3):
        session_id = create_session()["sessionId"]
        waiting.append((session_id, transaction(session_id, "sandbox_bank_transfer")))
        assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    assert cancel(create_session()["sessionId"]).json()["status"] == "CANCELLED"
    # Then the sweep reports three waiting, as the index holds
    assert sweep_gauge() == 3 == _pending_in_index(aws)
    # When two of the transfers end and their sessions are cancelled
    for _, tx in waiting[:2]:
        provider_event("sandbox_bank_transfer", tx, "FAILED")

    def statuses() -> list[str]:
        return [aws.session_item(s)["status"] for s, _ in waiting]

    wait_until(lambda: statuses() == ["CANCELLED", "CANCELLED", "PENDING_CANCELLATION"], what="two finalised")
    # Then one is left, and a repeated provider event moves nothing
    provider_event("sandbox_bank_transfer", waiting[0][1], "FAILED")
    assert sweep_gauge() == 1 == _pending_in_index(aws)
    # And the last one, cancelled at the provider, leaves none
    provider_event("sandbox_bank_transfer", waiting[2][1], "CANCELLED")
    wait_until(lambda: statuses()[2] == "CANCELLED", what="the last finalised")
    assert sweep_gauge() == 0 == _pending_in_index(aws)
