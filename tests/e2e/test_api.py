"""The foundation routes over real HTTP against `python -m local`: auth, create/read/list, every
validation rule, tenancy, idempotency, the hosted page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningRuntime, launch, stop_and_check

DEMO = {"Authorization": "Bearer sk_test_demo"}
ACME = {"Authorization": "Bearer sk_test_acme"}
BODY = {
    "amount": 5000,
    "currency": "USD",
    "referenceId": "order-123",
    "returnUrl": "https://example.com/return",
}


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    running: RunningRuntime = launch(
        {
            "LOCAL_API_KEYS": "demo:sk_test_demo,acme:sk_test_acme",
            "LOCAL_RETURN_HOSTS": "example.com,localhost",
        }
    )
    yield running.base_url
    stop_and_check(running)


def post(api: str, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{api}{path}", json=body, headers={**DEMO, **(headers or {})}, timeout=30)


def get(api: str, path: str, headers: dict[str, str] | None = None, **params: str) -> requests.Response:
    return requests.get(
        f"{api}{path}", headers=headers if headers is not None else DEMO, params=params, timeout=30
    )


def error(answer: requests.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"}
    assert body["error"]["requestId"] == answer.headers["X-Request-Id"]
    return dict(body["error"])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk_test_nope"},
        {"Authorization": "sk_test_demo"},
        {"Authorization": "Bearer"},
    ],
)
def test_every_session_route_needs_a_known_key(api: str, headers: dict[str, str]) -> None:
    for answer in (
        requests.post(f"{api}/v1/sessions", json=BODY, headers=headers, timeout=30),
        requests.get(f"{api}/v1/sessions", headers=headers, timeout=30),
        requests.get(f"{api}/v1/sessions/0193f2d4-5b6c-7d8e-9f01-23456789abcd", headers=headers, timeout=30),
    ):
        assert answer.status_code == 401
        assert error(answer)["code"] == "invalid_api_key"


def test_create_read_list(api: str) -> None:
    created = post(api, "/v1/sessions", {**BODY, "metadata": {"orderId": "42"}})
    assert created.status_code == 201 and created.headers["X-Request-Id"]
    session = created.json()
    assert session["status"] == "OPEN" and session["url"].startswith(f"{api}/pay/")
    read = get(api, f"/v1/sessions/{session['sessionId']}")
    assert read.status_code == 200 and read.json()["url"] is None
    assert read.json()["metadata"] == {"orderId": "42"}
    listed = get(api, "/v1/sessions", limit="100").json()
    assert session["sessionId"] in [item["sessionId"] for item in listed["data"]]


def test_list_pages_newest_first(api: str) -> None:
    ids = [
        post(api, "/v1/sessions", {**BODY, "referenceId": f"page-{i}"}).json()["sessionId"] for i in range(3)
    ]
    first = get(api, "/v1/sessions", limit="2").json()
    second = get(api, "/v1/sessions", limit="2", cursor=first["nextCursor"]).json()
    newest = [item["sessionId"] for item in first["data"] + second["data"]][:3]
    assert newest == list(reversed(ids))


def test_another_tenant_sees_nothing(api: str) -> None:
    session_id = post(api, "/v1/sessions", BODY).json()["sessionId"]
    for path in (f"/v1/sessions/{session_id}", f"/v1/sessions/{session_id}/events"):
        answer = get(api, path, headers=ACME)
        assert answer.status_code == 404 and error(answer)["code"] == "session_not_found"
    cancel = requests.post(f"{api}/v1/sessions/{session_id}/cancel", json={}, headers=ACME, timeout=30)
    assert cancel.status_code == 404
    assert session_id not in [s["sessionId"] for s in get(api, "/v1/sessions", headers=ACME).json()["data"]]
    assert get(api, f"/v1/sessions/{session_id}").json()["status"] == "OPEN"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"amount": -5}, "amount"),
        ({"amount": "5000"}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"referenceId": ""}, "referenceId"),
        ({"referenceId": "r" * 65}, "referenceId"),
        ({"customerId": "c" * 65}, "customerId"),
        ({"description": ""}, "description"),
        ({"description": "d" * 1001}, "description"),
        ({"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata"),
        ({"metadata": {"k" * 41: "v"}}, "metadata." + "k" * 41),
        ({"metadata": {"orderId": "v" * 501}}, "metadata.orderId"),
        ({"returnUrl": "http://example.com/return"}, "returnUrl"),
        ({"returnUrl": "https://user:pw@example.com/return"}, "returnUrl"),
        ({"returnUrl": "https://example.com/return#frag"}, "returnUrl"),
        ({"returnUrl": "https://example.com.evil.org/return"}, "returnUrl"),
        ({"expiresInSeconds": 1799}, "expiresInSeconds"),
        ({"expiresInSeconds": 86401}, "expiresInSeconds"),
        ({"unknownField": 1}, "unknownField"),
    ],
)
def test_each_validation_rule_is_400_naming_the_field(api: str, change: dict[str, Any], param: str) -> None:
    before = len(get(api, "/v1/sessions", limit="100").json()["data"])
    answer = post(api, "/v1/sessions", {**BODY, **change})
    assert answer.status_code == 400
    assert error(answer)["code"] == "invalid_request" and error(answer)["param"] == param
    assert len(get(api, "/v1/sessions", limit="100").json()["data"]) == before


@pytest.mark.parametrize("missing", ["amount", "currency", "referenceId", "returnUrl"])
def test_required_fields(api: str, missing: str) -> None:
    answer = post(api, "/v1/sessions", {key: value for key, value in BODY.items() if key != missing})
    assert answer.status_code == 400 and error(answer)["param"] == missing


def test_malformed_json_and_bad_path_ids(api: str) -> None:
    answer = requests.post(
        f"{api}/v1/sessions", data="{oops", headers={**DEMO, "Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 400 and error(answer)["code"] == "invalid_request"
    answer = get(api, "/v1/sessions/not-a-uuid")
    assert answer.status_code == 400 and error(answer)["param"] == "sessionId"


def test_idempotency_replay_and_mismatch(api: str) -> None:
    key = {"Idempotency-Key": "e2e-create-1"}
    first = post(api, "/v1/sessions", BODY, key)
    again = post(api, "/v1/sessions", BODY, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = post(api, "/v1/sessions", {**BODY, "amount": 1}, key)
    assert other.status_code == 422 and error(other)["code"] == "idempotency_key_reused"
    theirs = requests.post(f"{api}/v1/sessions", json=BODY, headers={**ACME, **key}, timeout=30)
    assert theirs.status_code == 201 and theirs.json()["sessionId"] != first.json()["sessionId"]


def test_the_hosted_page_is_open_then_gone(api: str) -> None:
    session = post(api, "/v1/sessions", BODY).json()
    page = requests.get(session["url"], timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert requests.post(
        f"{api}/v1/sessions/{session['sessionId']}/cancel", json={}, headers=DEMO, timeout=30
    ).ok
    assert requests.get(session["url"], timeout=30).status_code == 410
    assert requests.get(f"{api}/pay/unknown-token-aaaaaaaaaaaaaaaa", timeout=30).status_code == 404


def test_openapi_and_docs_are_served_without_a_key(api: str) -> None:
    document = requests.get(f"{api}/v1/openapi.json", timeout=30)
    assert document.status_code == 200 and "/v1/sessions/{sessionId}/cancel" in document.json()["paths"]
    assert requests.get(f"{api}/v1/docs", timeout=30).status_code == 200
