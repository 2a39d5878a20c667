"""Every request example of the OpenAPI document succeeds as shown, as Swagger UI's "Try it out" sends it.

The document is the one the runtime serves. Path parameters are what a user would type in: the id of a
session, endpoint or transaction made just before. The provider event is the one example a user cannot send
as shown (it needs a signature over the body, and a transaction of theirs): its transactionId is replaced
and the body signed with the sandbox secret, as a provider would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from checkout_core.signatures import sign
from tests.e2e.conftest import DEMO_KEY, RunningRuntime
from tests.e2e.helpers import Api

SANDBOX_SECRET = "whsec_sandbox"


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path, example) of every operation with a JSON request body."""
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content is not None:
                found[operation["operationId"]] = (method.upper(), path, content.get("example"))
    return found


@pytest.fixture(scope="module")
def document(runtime: RunningRuntime) -> dict[str, Any]:
    answer = requests.get(f"{runtime.base_url}/v1/openapi.json", timeout=60)
    assert answer.status_code == 200
    return dict(answer.json())


def test_every_json_request_body_has_an_example(document: dict[str, Any]) -> None:
    missing = [name for name, (_, _, example) in _operations(document).items() if example is None]
    assert not missing, f"operations without a request example: {missing}"


def test_every_request_example_succeeds_as_shown(runtime: RunningRuntime, document: dict[str, Any]) -> None:
    api = Api(runtime.base_url, DEMO_KEY)
    operations = _operations(document)

    def send(name: str, **path: str) -> Any:
        method, template, example = operations.pop(name)
        answer = api.request(method, template.format(**path), example)
        assert 200 <= answer.status < 300, f"{name} {method} {template}: {answer}"
        return answer.body

    created = send("createSession")
    assert created["status"] == "OPEN"
    send("createTransaction", sessionId=created["sessionId"])
    cancelled = send("cancelSession", sessionId=api.open_session()["sessionId"])
    assert cancelled["status"] in ("CANCELLED", "PENDING_CANCELLATION")
    endpoint = send("createWebhookEndpoint")
    send("updateWebhookEndpoint", endpointId=endpoint["endpointId"])
    send("recoverWebhookDeliveries", endpointId=endpoint["endpointId"])

    # The provider's report: about a transaction of this user's, signed as the provider signs it
    method, template, example = operations.pop("receiveProviderEvent")
    session = api.open_session()
    started = api.request(
        "POST", f"/v1/sessions/{session['sessionId']}/transactions", {"provider": "sandbox_bank_transfer"}
    )
    assert started.status == 201, started
    body = json.dumps({**example, "transactionId": started.body["transactionId"]}).encode()
    signature = sign(SANDBOX_SECRET, int(time.time()), body)
    reported = api.request(
        method,
        template.format(provider="sandbox_bank_transfer"),
        raw=body,
        headers={"Provider-Signature": signature},
        authorized=False,
    )
    assert 200 <= reported.status < 300, reported

    assert not operations, f"examples not sent by this test: {sorted(operations)}"
