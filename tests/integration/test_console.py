"""The console through its handler against moto: sign-in, anti-forgery, tenancy, cancel with actor
`console`, sign-out that revokes, and the overview's reads that do not grow with the sessions."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest

from checkout_core.api_keys import hash_api_key
from checkout_core.repository import SessionRepository
from tests.support import Answer, api_event, call

BODY = {"amount": 5000, "currency": "USD", "referenceId": "order-1", "returnUrl": "https://example.com/r"}


class Browser:
    """Cookies kept between requests, as a browser would."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, Any] | None = None, resource: str = ""
    ) -> Answer:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        path_only, _, query = path.partition("?")
        event = api_event(
            "console",
            path_only,
            raw_body=urlencode(form, doseq=True) if form is not None else None,
            headers=headers,
            tenant=None,
            query=dict(pair.split("=", 1) for pair in query.split("&")) if query else None,
        )
        event["httpMethod"] = method
        event["resource"] = resource or path_only
        answer = call("console", event)
        for cookie in answer.raw.get("multiValueHeaders", {}).get("Set-Cookie", []) or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return answer

    def token(self, answer: Answer) -> str:
        found = re.search(r'name="form_token" value="([^"]+)"', answer.body)
        assert found, answer.body
        return found.group(1)

    def sign_in(self, key: str = "sk_test_demo") -> Answer:
        page = self.request("GET", "/console")
        return self.request("POST", "/console/sign-in", {"form_token": self.token(page), "api_key": key})


def set_cookies(answer: Answer) -> list[str]:
    return list(answer.raw.get("multiValueHeaders", {}).get("Set-Cookie", []) or [])


def create(reference: str = "order-1", tenant: str = "demo") -> str:
    answer = call(
        "create_session",
        api_event("create_session", "/v1/sessions", body={**BODY, "referenceId": reference}, tenant=tenant),
    )
    session_id: str = answer.json()["sessionId"]
    return session_id


@pytest.fixture
def other_key(aws: Any) -> str:
    SessionRepository(aws.table_name).put_api_key(
        hash_api_key("sk_test_other"), "other", ["example.com"], "2026-01-01T00:00:00.000Z"
    )
    return "sk_test_other"


def test_sign_in_sets_a_strict_http_only_cookie_and_the_key_appears_nowhere(aws: Any) -> None:
    browser = Browser()
    page = browser.request("GET", "/console")
    assert page.status == 200 and 'type="password"' in page.body
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    signed = browser.sign_in()
    assert signed.status == 303
    [session_cookie] = [c for c in set_cookies(signed) if c.startswith("console_session=")]
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    assert "Secure" in session_cookie and "Max-Age=43200" in session_cookie  # the sample event is https
    overview = browser.request("GET", "/console")
    assert overview.status == 200 and "Overview" in overview.body
    assert "sk_test_demo" not in overview.body + signed.body + str(signed.headers)
    # The table holds the cookie's hash, not the cookie
    value = browser.cookies["console_session"]
    scan = aws.dynamodb.scan(TableName=aws.table_name)["Items"]
    assert value not in str(scan) and any(i["pk"]["S"].startswith("CONSOLE#") for i in scan)


def test_a_wrong_key_or_a_forged_form_signs_no_one_in(aws: Any) -> None:
    browser = Browser()
    assert browser.sign_in("sk_test_wrong").status == 401
    assert "console_session" not in browser.cookies
    forged = Browser().request(
        "POST", "/console/sign-in", {"form_token": "x" * 64, "api_key": "sk_test_demo"}
    )
    assert forged.status == 403 and not any(c.startswith("console_session=") for c in set_cookies(forged))


def test_not_signed_in_is_sent_to_sign_in(aws: Any) -> None:
    session_id = create()
    answer = Browser().request(
        "GET", f"/console/sessions/{session_id}", resource="/console/sessions/{sessionId}"
    )
    assert answer.status == 303 and answer.headers["Location"] == "/live/console"


def test_another_tenants_session_is_404(aws: Any, other_key: str) -> None:
    theirs = create(tenant="other")
    mine = create()
    browser = Browser()
    browser.sign_in()
    resource = "/console/sessions/{sessionId}"
    assert browser.request("GET", f"/console/sessions/{theirs}", resource=resource).status == 404
    assert browser.request("GET", f"/console/sessions/{mine}", resource=resource).status == 200
    found = browser.request("GET", f"/console/sessions?q={theirs}")
    assert f"/sessions/{theirs}" not in found.body and "No session of this account has that id" in found.body


def test_cancel_from_the_console_is_the_apis_cancel_with_actor_console(aws: Any) -> None:
    session_id = create()
    browser = Browser()
    browser.sign_in()
    resource = "/console/sessions/{sessionId}"
    page = browser.request("GET", f"/console/sessions/{session_id}", resource=resource)
    # A post without the page's token changes nothing
    forged = browser.request(
        "POST", f"/console/sessions/{session_id}/cancel", {"reason": "x"}, resource=resource + "/cancel"
    )
    assert forged.status == 403 and aws.session_item(session_id)["status"] == "OPEN"
    done = browser.request(
        "POST",
        f"/console/sessions/{session_id}/cancel",
        {
            "form_token": browser.token(page),
            "reason": "Out of stock",
            "reasonType": "OTHER",
            "whenInFlight": "WAIT",
        },
        resource=resource + "/cancel",
    )
    assert done.status == 303
    assert aws.session_item(session_id)["status"] == "CANCELLED"
    after = browser.request("GET", f"/console/sessions/{session_id}?done=cancelled", resource=resource)
    assert "session.cancelled" in after.body and "console" in after.body and "Out of stock" in after.body
    again = browser.request(
        "POST",
        f"/console/sessions/{session_id}/cancel",
        {"form_token": browser.token(after), "whenInFlight": "WAIT"},
        resource=resource + "/cancel",
    )
    assert again.status == 409 and "CANCELLED" in again.body


def test_sign_out_revokes_the_cookie(aws: Any) -> None:
    browser = Browser()
    browser.sign_in()
    page = browser.request("GET", "/console")
    old = dict(browser.cookies)
    out = browser.request("POST", "/console/sign-out", {"form_token": browser.token(page)})
    assert out.status == 303
    replay = Browser()
    replay.cookies = old
    answer = replay.request("GET", "/console")
    assert answer.status == 200 and 'type="password"' in answer.body  # the sign-in form, not the overview


def test_find_by_reference_and_filter_by_status(aws: Any) -> None:
    wanted = create("order-42")
    create("order-43")
    browser = Browser()
    browser.sign_in()
    found = browser.request("GET", "/console/sessions?q=order-42")
    assert wanted in found.body and "order-43" not in found.body
    none = browser.request("GET", "/console/sessions?status=CANCELLED")
    assert "No session matches" in none.body


def test_the_overview_costs_the_same_reads_at_any_number_of_sessions(aws: Any, monkeypatch: Any) -> None:
    from checkout_core.repository import SessionRepository as Repository

    browser = Browser()
    browser.sign_in()
    calls: list[str] = []
    original = Repository._call

    def counting(self: Any, operation: str, **kwargs: Any) -> Any:
        calls.append(operation)
        return original(self, operation, **kwargs)

    monkeypatch.setattr(Repository, "_call", counting)
    counts = []
    for batch in (2, 20):
        for i in range(batch):
            create(f"bulk-{i}")
        calls.clear()
        page = browser.request("GET", "/console")
        assert page.status == 200
        counts.append(list(calls))
    assert counts[0] == counts[1]
    assert "scan" not in counts[0]
    assert f"{22} created" in page.body or ">22<" in page.body


def test_webhook_endpoints_through_the_console_are_the_apis_own(
    aws: Any, other_key: str, monkeypatch: Any
) -> None:
    from checkout_core import settings
    from checkout_core.webhooks import services

    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE_URLS", "true")
    settings.get_settings.cache_clear()
    services.get_services.cache_clear()
    browser = Browser()
    browser.sign_in()
    page = browser.request("GET", "/console/webhooks")
    # Adding one shows its secret once, on the answer to the post
    added = browser.request(
        "POST",
        "/console/webhooks",
        {
            "form_token": browser.token(page),
            "url": "http://127.0.0.1:9/hooks",
            "eventTypes": ["session.created"],
        },
    )
    assert added.status == 201 and "whsec_" in added.body
    endpoint_id = re.search(r'/console/webhooks/([0-9a-f-]{36})/test"', added.body).group(1)  # type: ignore[union-attr]
    listed = api_get("/v1/webhook-endpoints", "/v1/webhook-endpoints").json()["data"]
    assert [e["endpointId"] for e in listed] == [endpoint_id] and listed[0]["eventTypes"] == [
        "session.created"
    ]
    # The overview shows the endpoint's health
    overview = browser.request("GET", "/console")
    assert overview.status == 200 and "http://127.0.0.1:9/hooks" in overview.body
    resource = "/console/webhooks/{endpointId}"
    shown = browser.request("GET", f"/console/webhooks/{endpoint_id}", resource=resource)
    assert shown.status == 200 and "whsec_" not in shown.body
    # Edit, disable, rotate (the new secret shown once), delete: each the API's own operation
    token = browser.token(shown)
    saved = browser.request(
        "POST",
        f"/console/webhooks/{endpoint_id}",
        {"form_token": token, "url": "http://127.0.0.1:9/other", "description": "Orders"},
        resource=resource,
    )
    assert saved.status == 303
    disabled = browser.request(
        "POST",
        f"/console/webhooks/{endpoint_id}/status",
        {"form_token": token, "status": "DISABLED"},
        resource=resource + "/status",
    )
    assert disabled.status == 303
    rotated = browser.request(
        "POST",
        f"/console/webhooks/{endpoint_id}/rotate-secret",
        {"form_token": token},
        resource=resource + "/rotate-secret",
    )
    assert rotated.status == 200 and "whsec_" in rotated.body
    read = api_get(f"/v1/webhook-endpoints/{endpoint_id}", "/v1/webhook-endpoints/{endpointId}", endpoint_id)
    assert read.status == 200
    assert {k: read.json()[k] for k in ("url", "description", "status", "disabledReason", "eventTypes")} == {
        "url": "http://127.0.0.1:9/other",
        "description": "Orders",
        "status": "DISABLED",
        "disabledReason": "MANUAL",
        "eventTypes": [],
    }
    # Another account signed in sees no such endpoint
    theirs = Browser()
    theirs.sign_in(other_key)
    assert theirs.request("GET", f"/console/webhooks/{endpoint_id}", resource=resource).status == 404
    deleted = browser.request(
        "POST",
        f"/console/webhooks/{endpoint_id}/delete",
        {"form_token": token},
        resource=resource + "/delete",
    )
    assert deleted.status == 303 and deleted.headers["Location"].endswith("/console/webhooks?done=deleted")
    assert browser.request("GET", f"/console/webhooks/{endpoint_id}", resource=resource).status == 404
    settings.get_settings.cache_clear()
    services.get_services.cache_clear()


def api_get(path: str, resource: str, endpoint_id: str | None = None) -> Answer:
    """A GET of the API's webhook routes, as the merchant's own client would make it."""
    event = api_event(
        "webhook_endpoints", path, path_parameters={"endpointId": endpoint_id} if endpoint_id else None
    )
    event.update(httpMethod="GET", resource=resource, body=None)
    event["requestContext"].update(httpMethod="GET", resourcePath=resource)
    return call("webhook_endpoints", event)
