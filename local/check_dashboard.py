"""Checks the operators' CloudWatch dashboard of template.yaml against what the code publishes.

    python -m local.check_dashboard [template.yaml]

Fails (exit 1, naming each problem) when a widget names a metric of the service's namespace that no
function publishes (observability.PUBLISHED_METRICS) and no metric filter of the template makes, names
it with other dimensions than the code gives it, or names a resource the template does not have; and
when the registry itself says something the code does not do (a name published nowhere, or a literal
metric name in the code missing from it)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from local.cfn import ROOT, load_template

NAMESPACE = "CheckoutSessions"
CODE = ROOT / "layers/checkout_core/checkout_core"
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
_LITERAL_CALL = re.compile(r"\b(?:count_transition|gauge)\(\s*\"([A-Za-z]+)\"\s*[,)]")
_CONDITIONAL_CALL = re.compile(r"count_transition\(\s*\"([A-Za-z]+)\" if .+? else \"([A-Za-z]+)\"")


def dashboard_body(template: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(the body's text, its widgets) of the template's one dashboard."""
    [dashboard] = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = dashboard["Properties"]["DashboardBody"]
    text = str(getattr(body, "value", body))
    return text, list(json.loads(_PLACEHOLDER.sub("x", text))["widgets"])


def expanded(metrics: list[list[Any]]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, name, dimensions) of each line, with CloudWatch's "." and "..." shorthands filled in."""
    out: list[tuple[str, str, dict[str, str]]] = []
    previous: list[Any] = []
    for line in metrics:
        items = [item for item in line if not isinstance(item, dict)]
        if items and items[0] == "...":
            rest = items[1:]
            items = previous[: len(previous) - len(rest)] + rest
        else:
            items = [previous[i] if item == "." else item for i, item in enumerate(items)]
        previous = items
        dimensions = dict(zip(items[2::2], items[3::2], strict=True))
        out.append((str(items[0]), str(items[1]), dimensions))
    return out


def metric_filter_names(template: dict[str, Any]) -> set[str]:
    return {
        transformation["MetricName"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Logs::MetricFilter"
        for transformation in resource["Properties"]["MetricTransformations"]
        if transformation["MetricNamespace"] == NAMESPACE
    }


def _dynamic_names() -> set[str]:
    """The names provider_events.py builds from the state a provider reports and the events it writes."""
    from checkout_core.models import EventType
    from checkout_core.transitions import TransactionStatus

    moves = {f"Transaction{status.value.title()}" for status in TransactionStatus}
    sessions = {
        "Session" + kind.value.split(".", 1)[1].title().replace("_", "")
        for kind in EventType
        if kind.value.startswith("session.")
    }
    return moves | sessions


def code_problems() -> list[str]:
    from checkout_core.observability import PUBLISHED_METRICS

    source = "\n".join(path.read_text() for path in sorted(CODE.rglob("*.py")))
    literals = set(_LITERAL_CALL.findall(source))
    for pair in _CONDITIONAL_CALL.findall(source):
        literals.update(pair)
    problems = [
        f"the code publishes {name}, missing from PUBLISHED_METRICS" for name in literals - PUBLISHED_METRICS
    ]
    for name in sorted(PUBLISHED_METRICS):
        if name not in literals and f'"{name}"' not in source and name not in _dynamic_names():
            problems.append(f"PUBLISHED_METRICS names {name}, which no code publishes")
    return problems


def problems(template: dict[str, Any]) -> list[str]:
    from checkout_core.observability import PROVIDER_METRICS, PUBLISHED_METRICS
    from checkout_core.providers import KNOWN_PROVIDERS

    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    filters = metric_filter_names(template)
    names = set(template["Resources"]) | set(template.get("Parameters", {}))
    text, widgets = dashboard_body(template)
    found = []
    for reference in _PLACEHOLDER.findall(text):
        if not reference.startswith("AWS::") and reference.split(".", 1)[0] not in names:
            found.append(f"the dashboard names ${{{reference}}}, which the template does not have")
    for widget in widgets:
        title = widget["properties"].get("title", widget["type"])
        for namespace, name, dimensions in expanded(widget["properties"].get("metrics", [])):
            if namespace != NAMESPACE:
                continue
            if name in filters:
                if dimensions:
                    found.append(f"{title}: {name} comes from a metric filter, which gives it no dimensions")
                continue
            if name not in PUBLISHED_METRICS:
                found.append(f"{title}: {name} is published by no function")
                continue
            expected = {"service"} | ({"provider"} if name in PROVIDER_METRICS else set())
            if set(dimensions) != expected or dimensions["service"] != service:
                found.append(
                    f"{title}: {name} is published with dimensions {sorted(expected)} (service {service})"
                )
            if name in PROVIDER_METRICS and dimensions.get("provider") not in KNOWN_PROVIDERS:
                found.append(f"{title}: {name} for an unknown provider {dimensions.get('provider')}")
    return found + code_problems()


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "layers/checkout_core"))
    template = load_template(Path(argv[0])) if argv else load_template()
    found = problems(template)
    for problem in found:
        print(f"dashboard: {problem}", file=sys.stderr)
    if not found:
        print("dashboard: every metric it names is published")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
