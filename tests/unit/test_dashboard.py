"""The operators' dashboard names only metrics that are published, and covers what operators watch."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from checkout_core import observability
from local import check_dashboard
from local.cfn import load_template


@pytest.fixture
def template() -> dict[str, Any]:
    return copy.deepcopy(load_template())


def named(template: dict[str, Any]) -> set[tuple[str, str]]:
    _, widgets = check_dashboard.dashboard_body(template)
    return {
        (namespace, name)
        for widget in widgets
        for namespace, name, _ in check_dashboard.expanded(widget["properties"].get("metrics", []))
    }


def _edit_body(template: dict[str, Any], change: Any) -> None:
    [dashboard] = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = dashboard["Properties"]["DashboardBody"]
    body.value = change(body.value)


def test_every_metric_a_widget_names_is_published() -> None:
    assert check_dashboard.problems(load_template()) == []


def test_the_dashboard_shows_what_operators_watch(template: dict[str, Any]) -> None:
    wanted = {
        ("AWS/ApiGateway", "4XXError"),
        ("AWS/ApiGateway", "5XXError"),
        ("AWS/ApiGateway", "Latency"),
        *(("CheckoutSessions", f"Session{o}") for o in ("Created", "Completed", "Cancelled", "Expired")),
        ("CheckoutSessions", "PendingCancellations"),
        ("CheckoutSessions", "PendingCancellationAgeSeconds"),
        ("CheckoutSessions", "ProviderCallErrors"),
        ("CheckoutSessions", "ProviderCallLatency"),
        ("CheckoutSessions", "WebhookAttemptSucceeded"),
        ("CheckoutSessions", "WebhookAttemptFailed"),
        ("CheckoutSessions", "WebhookDeliveriesExhausted"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    }
    assert wanted <= named(template)


def test_a_metric_no_function_publishes_is_caught(template: dict[str, Any]) -> None:
    _edit_body(template, lambda text: text.replace('"SessionExpired"', '"SessionsExpired"'))
    assert check_dashboard.problems(template) == [
        "Sessions by outcome: SessionsExpired is published by no function"
    ]


def test_wrong_dimensions_are_caught(template: dict[str, Any]) -> None:
    _edit_body(template, lambda text: text.replace('"provider", "stripe"', '"provider", "paypal"'))
    assert any("unknown provider paypal" in p for p in check_dashboard.problems(template))


def test_a_missing_resource_is_caught(template: dict[str, Any]) -> None:
    _edit_body(
        template, lambda text: text.replace("${WebhookEventsQueue.QueueName}", "${NoSuchQueue.QueueName}")
    )
    assert any("NoSuchQueue" in p for p in check_dashboard.problems(template))


def test_the_registry_is_held_to_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "PUBLISHED_METRICS", observability.PUBLISHED_METRICS | {"NeverSent"})
    assert check_dashboard.code_problems() == ["PUBLISHED_METRICS names NeverSent, which no code publishes"]
    monkeypatch.setattr(
        observability, "PUBLISHED_METRICS", observability.PUBLISHED_METRICS - {"SessionLocked"}
    )
    assert (
        "the code publishes SessionLocked, missing from PUBLISHED_METRICS" in check_dashboard.code_problems()
    )


def test_shorthands_expand_as_cloudwatch_does() -> None:
    lines = [["AWS/SQS", "Age", "QueueName", "a"], ["...", "b"], [".", "Other", ".", "c", {"stat": "p99"}]]
    assert check_dashboard.expanded(lines) == [
        ("AWS/SQS", "Age", {"QueueName": "a"}),
        ("AWS/SQS", "Age", {"QueueName": "b"}),
        ("AWS/SQS", "Other", {"QueueName": "c"}),
    ]
    assert json.loads(json.dumps(lines))  # plain JSON, as the body is


def _emitted(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_provider_calls_publish_latency_and_errors_by_provider(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from checkout_core.providers import ProviderRegistry

    monkeypatch.setattr(observability.metrics, "namespace", "CheckoutSessions")
    monkeypatch.setattr(observability.metrics, "service", "checkout-sessions")
    from checkout_core.providers.sandbox import sandboxes

    registry = ProviderRegistry(sandboxes("whsec_test"))
    card, flaky = registry.get("sandbox_card"), registry.get("sandbox_flaky_card")
    assert card is not None and flaky is not None
    card.cancel("ref", "tx", None)
    flaky.cancel("ref", "tx", None)  # its cancel always fails, as an outage would
    assert card.cancel_in_flight is True  # what is not a call is the adapter's own
    records = _emitted(capsys.readouterr().out)
    latency = [r["provider"] for r in records if "ProviderCallLatency" in r]
    errors = [r["provider"] for r in records if "ProviderCallErrors" in r]
    assert latency == ["sandbox_card", "sandbox_flaky_card"]
    assert errors == ["sandbox_flaky_card"]
    assert all(r["service"] for r in records)


def test_a_metric_that_cannot_be_published_never_fails_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import aws_lambda_powertools.metrics as powertools_metrics

    from checkout_core.providers import ProviderRegistry
    from checkout_core.providers.sandbox import sandboxes

    def broken(**kwargs: Any) -> Any:
        raise ValueError("metric refused")

    monkeypatch.setattr(observability.metrics, "namespace", "CheckoutSessions")
    monkeypatch.setattr(powertools_metrics, "single_metric", broken)
    card = ProviderRegistry(sandboxes("whsec_test")).get("sandbox_card")
    assert card is not None and card.refund("ref", "tx")
