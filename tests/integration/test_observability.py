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
