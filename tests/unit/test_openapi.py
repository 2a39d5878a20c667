"""The OpenAPI document is generated from the routes, and docs/openapi.json is that document."""

from __future__ import annotations

import json
from pathlib import Path

from checkout_core.openapi import document

ROOT = Path(__file__).resolve().parents[2]


def test_docs_openapi_json_is_the_generated_document() -> None:
    assert json.loads((ROOT / "docs/openapi.json").read_text()) == json.loads(document()), (
        "run `make openapi`"
    )


def test_every_contract_route_is_documented() -> None:
    paths = json.loads(document())["paths"]
    assert set(paths) == {
        "/v1/sessions",
        "/v1/sessions/{sessionId}",
        "/v1/sessions/{sessionId}/transactions",
        "/v1/sessions/{sessionId}/cancel",
        "/v1/sessions/{sessionId}/events",
        "/v1/providers/{provider}/events",
        "/pay/{token}",
        "/pay/{token}/cancel",
        "/pay/{token}/pay",
        "/pay/{token}/return",
        "/v1/webhook-endpoints",
        "/v1/webhook-endpoints/{endpointId}",
        "/v1/webhook-endpoints/{endpointId}/rotate-secret",
        "/v1/webhook-endpoints/{endpointId}/test",
        "/v1/webhook-endpoints/{endpointId}/deliveries",
        "/v1/webhook-endpoints/{endpointId}/deliveries/{deliveryId}/resend",
        "/v1/webhook-endpoints/{endpointId}/recover",
    }
    assert set(paths["/v1/sessions"]) == {"get", "post"}
    assert set(paths["/v1/webhook-endpoints/{endpointId}"]) == {"get", "patch", "delete"}
    assert "requestBody" in paths["/v1/sessions/{sessionId}/cancel"]["post"]
    assert "requestBody" in paths["/v1/providers/{provider}/events"]["post"]


def test_the_readme_walk_through_is_the_script_make_demo_runs() -> None:
    script = (ROOT / "scripts/walkthrough.sh").read_text().split("set -euo pipefail\n", 1)[1]
    assert f"```sh\n{script}```" in (ROOT / "README.md").read_text(), "copy scripts/walkthrough.sh to README"
