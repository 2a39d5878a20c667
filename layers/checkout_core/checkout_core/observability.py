"""The single Logger, Tracer and Metrics of the service."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

# Reads change nothing and so emit no metric; that is expected, not worth a warning per invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger()
tracer = Tracer()
metrics = Metrics()


# Every metric the code publishes (namespace POWERTOOLS_METRICS_NAMESPACE, dimension `service`; provider
# calls also by `provider`). The dashboard in template.yaml may name only these.
TRANSITION_METRICS = frozenset(
    {
        "SessionCreated",
        "SessionLocked",
        "SessionCancelled",
        "SessionCompleted",
        "SessionExpired",
        "SessionAttentionRequired",
        "TransactionCreated",
        "TransactionAuthorized",
        "TransactionSettled",
        "TransactionFailed",
        "TransactionCancelled",
        "TransactionRefunded",
        "FinaliserStarted",
    }
)
GAUGE_METRICS = frozenset({"PendingCancellations", "PendingCancellationAgeSeconds"})
WEBHOOK_METRICS = frozenset({"WebhookAttemptSucceeded", "WebhookAttemptFailed"})
PROVIDER_METRICS = frozenset({"ProviderCallLatency", "ProviderCallErrors"})
PUBLISHED_METRICS = TRANSITION_METRICS | GAUGE_METRICS | WEBHOOK_METRICS | PROVIDER_METRICS


def count_transition(name: str) -> None:
    """One metric per state transition, e.g. `SessionCancelled`."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def gauge(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """A level at the time of the call (pending cancellations, the age of one)."""
    metrics.add_metric(name=name, unit=unit, value=value)


def provider_call(provider: str, seconds: float, failed: bool) -> None:
    """One provider call's latency, and an error when it failed; both by provider. Published at once
    (their own dimension set), so a function that calls several providers keeps them apart. A metric
    that cannot be published never fails the call it measures."""
    from aws_lambda_powertools.metrics import single_metric

    namespace = metrics.namespace
    if not namespace:
        return
    dimensions = {"service": metrics.service or "", "provider": provider}
    measured = [("ProviderCallLatency", MetricUnit.Milliseconds, seconds * 1000)]
    if failed:
        measured.append(("ProviderCallErrors", MetricUnit.Count, 1))
    try:
        for name, unit, value in measured:
            with single_metric(
                name=name, unit=unit, value=value, namespace=namespace, default_dimensions=dimensions
            ):
                pass
    except Exception:
        logger.exception("provider call metric not published", extra={"provider": provider})
