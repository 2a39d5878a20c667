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


def count_transition(name: str) -> None:
    """One metric per state transition, e.g. `SessionCancelled`."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
