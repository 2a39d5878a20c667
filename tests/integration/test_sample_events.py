"""Every function answers its sample event from events/ (the ones `sam local invoke -e` uses)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from checkout_core.signatures import sign
from tests.support import Answer, LambdaContext, invoke, sample_event

SAMPLE_SESSION_ID = "0193f2d4-5b6c-7d8e-9f01-23456789abcd"
SAMPLE_TRANSACTION_ID = "0193f2d4-6a7b-7c8d-8e9f-0123456789ab"
PAGE_TOKEN = "q7V3mK9xT2bLw8Rz4NcYp1HsJd6FgAeUo5iWk0tMvQE"


def with_ids(name: str, session_id: str, transaction_id: str = SAMPLE_TRANSACTION_ID) -> Any:
    text = json.dumps(sample_event(name))
    return json.loads(
        text.replace(SAMPLE_SESSION_ID, session_id).replace(SAMPLE_TRANSACTION_ID, transaction_id)
    )


def create(aws: Any) -> dict[str, Any]:
    answer = Answer(invoke("create_session", sample_event("create_session")))
    assert answer.status == 201, answer.body
    return answer.json()


def test_create_session_sample(aws: Any) -> None:
    session = create(aws)
    assert session["status"] == "OPEN" and session["url"].startswith("https://pay.example.test/pay/")


@pytest.mark.parametrize(
    ("function", "status"),
    [
        ("get_session", 200),
        ("list_session_events", 200),
        ("cancel_session", 200),
        ("create_transaction", 201),
    ],
)
def test_session_route_samples(aws: Any, function: str, status: int) -> None:
    session = create(aws)
    answer = Answer(invoke(function, with_ids(function, session["sessionId"])))
    assert answer.status == status, answer.body
    assert answer.headers["X-Request-Id"]


def test_list_sessions_sample(aws: Any) -> None:
    create(aws)
    answer = Answer(invoke("list_sessions", sample_event("list_sessions")))
    assert answer.status == 200, answer.body
    assert len(answer.json()["data"]) == 1


def test_sample_ids_that_do_not_exist_are_404(aws: Any) -> None:
    answer = Answer(invoke("get_session", sample_event("get_session")))
    assert answer.status == 404 and answer.error["code"] == "session_not_found"


def test_provider_event_sample(aws: Any) -> None:
    session = create(aws)
    created = Answer(invoke("create_transaction", with_ids("create_transaction", session["sessionId"])))
    event = with_ids("provider_event", session["sessionId"], created.json()["transactionId"])
    event["headers"]["Provider-Signature"] = sign("whsec_sandbox", int(time.time()), event["body"].encode())
    answer = Answer(invoke("provider_events", event))
    assert answer.status == 200, answer.body
    assert answer.json() == {"received": True, "applied": True}


def test_pay_page_sample_with_an_unknown_token_is_404(aws: Any) -> None:
    answer = Answer(invoke("pay_page", sample_event("pay_page")))
    assert answer.status == 404
    assert answer.headers["Content-Type"].startswith("text/html")


def test_openapi_sample(aws: Any) -> None:
    answer = Answer(invoke("openapi", sample_event("openapi")))
    assert answer.status == 200
    assert "/v1/sessions/{sessionId}/cancel" in answer.json()["paths"]


def test_authorizer_sample_allows_the_demo_key(aws: Any) -> None:
    policy = invoke("authorizer", sample_event("authorizer"))
    assert policy["principalId"] == "demo"
    assert policy["context"]["tenantId"] == "demo"
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"


@pytest.mark.parametrize("header", [None, "Bearer sk_test_wrong", "Token sk_test_demo", "Bearer"])
def test_authorizer_refuses_missing_malformed_or_unknown_keys(aws: Any, header: str | None) -> None:
    event = sample_event("authorizer")
    event["headers"].pop("Authorization")
    if header is not None:
        event["headers"]["Authorization"] = header
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        invoke("authorizer", event)


def test_expire_sessions_sample(aws: Any) -> None:
    report = invoke("expire_sessions", sample_event("expire_sessions"), LambdaContext("expire_sessions"))
    assert report["expired"] == 0 and report["stopped_early"] is False


def test_publish_events_sample_turns_stream_records_into_events() -> None:
    records = sample_event("publish_events")
    modified = {**records[0], "eventName": "MODIFY"}
    session_item = {**records[0], "dynamodb": {"NewImage": {"entity": {"S": "SESSION"}}}}
    published = invoke("publish_events", [*records, modified, session_item])
    assert [event["type"] for event in published] == ["session.created", "transaction.created"]
    assert set(published[0]) == {"eventId", "type", "sessionId", "sequence", "occurredAt", "actor", "data"}
    assert [event["sequence"] for event in published] == [1, 2]


@pytest.mark.parametrize("action", ["cancel", "pay"])
def test_pay_page_form_samples_with_an_unknown_token_are_404(aws: Any, action: str) -> None:
    answer = Answer(invoke("pay_page", sample_event(f"pay_page_{action}")))
    assert answer.status == 404 and answer.headers["Content-Type"].startswith("text/html")


def test_pay_page_samples_cancel_a_real_session(aws: Any) -> None:
    # Given a session and its page, opened as the sample opens it (over https, behind a stage)
    token = create(aws)["url"].rsplit("/", 1)[1]
    page_event = json.loads(json.dumps(sample_event("pay_page")).replace(PAGE_TOKEN, token))
    page = Answer(invoke("pay_page", page_event))
    assert page.status == 200
    cookie = page.raw["multiValueHeaders"]["Set-Cookie"][0]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    cancel_form = page.body.split('/cancel"><input type="hidden" name="form_token" value="', 1)[1]
    form_token = cancel_form.split('"', 1)[0]  # each form's token serves its own action only
    # When the cancel form is posted with the page's cookie and token
    cancel_event = json.loads(json.dumps(sample_event("pay_page_cancel")).replace(PAGE_TOKEN, token))
    cancel_event["headers"]["Cookie"] = cookie.split(";", 1)[0]
    cancel_event["multiValueHeaders"]["Cookie"] = [cancel_event["headers"]["Cookie"]]
    cancel_event["body"] = f"form_token={form_token}"
    answer = Answer(invoke("pay_page", cancel_event))
    # Then the customer is sent back, and the page is closed
    assert answer.status == 303 and "status=CANCELLED" in answer.headers["Location"]
    assert Answer(invoke("pay_page", page_event)).status == 410
