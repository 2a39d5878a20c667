"""Create, read, list: the foundation routes through their handlers against moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import Answer, api_event, call

BODY = {
    "amount": 5000,
    "currency": "USD",
    "referenceId": "order-123",
    "returnUrl": "https://example.com/return",
}


def create(body: dict[str, Any] | None = None, **kwargs: Any) -> Answer:
    return call("create_session", api_event("create_session", "/v1/sessions", body=body or BODY, **kwargs))


def get(session_id: str, **kwargs: Any) -> Answer:
    return call(
        "get_session",
        api_event(
            "get_session", f"/v1/sessions/{session_id}", path_parameters={"sessionId": session_id}, **kwargs
        ),
    )


def list_sessions(query: dict[str, str] | None = None, **kwargs: Any) -> Answer:
    return call("list_sessions", api_event("list_sessions", "/v1/sessions", query=query, **kwargs))


def test_created_session_is_read_back_without_its_url(aws: Any) -> None:
    created = create({**BODY, "metadata": {"orderId": "42"}, "customerId": "c1", "description": "Shoes"})
    assert created.status == 201
    session = created.json()
    assert session["url"] and len(session["url"].rsplit("/", 1)[1]) >= 22  # >= 128 bits, url-safe base64
    read = get(session["sessionId"]).json()
    assert read["url"] is None
    assert {k: v for k, v in read.items() if k != "url"} == {k: v for k, v in session.items() if k != "url"}
    assert read["metadata"] == {"orderId": "42"}
    assert read["transactions"] == [] and read["cancellation"] is None


def test_the_pay_token_is_stored_only_as_a_hash(aws: Any) -> None:
    session = create().json()
    token = session["url"].rsplit("/", 1)[1]
    items = aws.dynamodb.scan(TableName=aws.table_name)["Items"]
    assert token not in str(items)


def test_another_tenant_gets_404_exactly_like_a_missing_session(aws: Any) -> None:
    session_id = create().json()["sessionId"]
    foreign = get(session_id, tenant="other")
    missing = get("0193f2d4-5b6c-7d8e-9f01-23456789abcd")
    assert foreign.status == missing.status == 404
    assert foreign.error["code"] == missing.error["code"] == "session_not_found"
    assert list_sessions(tenant="other").json()["data"] == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**BODY, "amount": -1}, "amount"),
        ({**BODY, "currency": "usd"}, "currency"),
        ({**BODY, "returnUrl": "https://evil.example.org/return"}, "returnUrl"),
        ({**BODY, "returnUrl": "https://sub.example.com/return"}, "returnUrl"),
        ({**BODY, "expiresInSeconds": 60}, "expiresInSeconds"),
        ({**BODY, "expiresInSeconds": 86401}, "expiresInSeconds"),
        ({**BODY, "metadata": {"orderId": 1}}, "metadata.orderId"),
        ({**BODY, "surprise": True}, "surprise"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_changes_nothing(
    aws: Any, body: dict[str, Any], param: str
) -> None:
    answer = create(body)
    assert answer.status == 400
    assert answer.error["code"] == "invalid_request"
    assert answer.error["param"] == param
    assert answer.error["requestId"] == answer.headers["X-Request-Id"]
    assert aws.dynamodb.scan(TableName=aws.table_name, Select="COUNT")["Count"] == 1  # the API key only


@pytest.mark.parametrize("raw", ["{not json", "[]", "", "null", '"text"'])
def test_malformed_bodies_are_400(aws: Any, raw: str) -> None:
    answer = call("create_session", api_event("create_session", "/v1/sessions", raw_body=raw))
    assert answer.status == 400 and answer.error["code"] == "invalid_request"


@pytest.mark.parametrize(
    "bad_id", ["abc", "0193F2D4-5B6C-7D8E-9F01-23456789ABCD", "0193f2d4-5b6c-4d8e-9f01-23456789abcd"]
)
def test_bad_path_ids_are_400(aws: Any, bad_id: str) -> None:
    answer = get(bad_id)
    assert answer.status == 400 and answer.error["param"] == "sessionId"


def test_a_missing_authorizer_context_is_401(aws: Any) -> None:
    answer = create(tenant=None)
    assert answer.status == 401 and answer.error["code"] == "invalid_api_key"


def test_list_is_newest_first_and_paginates_with_a_cursor(aws: Any) -> None:
    ids = [create({**BODY, "referenceId": f"order-{i}"}).json()["sessionId"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = list_sessions(query).json()
        seen += [session["sessionId"] for session in page["data"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert pages == 3


def test_list_filters_by_status(aws: Any) -> None:
    kept = create().json()["sessionId"]
    cancelled = create().json()["sessionId"]
    call(
        "cancel_session",
        api_event(
            "cancel_session", f"/v1/sessions/{cancelled}/cancel", path_parameters={"sessionId": cancelled}
        ),
    )
    assert [s["sessionId"] for s in list_sessions({"status": "OPEN"}).json()["data"]] == [kept]
    assert [s["sessionId"] for s in list_sessions({"status": "CANCELLED"}).json()["data"]] == [cancelled]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "DONE"}, "status"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_list_rejects_bad_queries(aws: Any, query: dict[str, str], param: str) -> None:
    answer = list_sessions(query)
    assert answer.status == 400 and answer.error["param"] == param


def test_a_cursor_of_another_tenant_is_refused(aws: Any) -> None:
    for i in range(3):
        create({**BODY, "referenceId": f"o{i}"})
    cursor = list_sessions({"limit": "1"}).json()["nextCursor"]
    answer = list_sessions({"cursor": cursor}, tenant="other")
    assert answer.status == 400 and answer.error["param"] == "cursor"


class TestIdempotency:
    def test_a_replay_returns_the_first_answer_and_creates_nothing(self, aws: Any) -> None:
        first = create(headers={"Idempotency-Key": "key-1"})
        again = create(headers={"Idempotency-Key": "key-1"})
        assert first.status == again.status == 201
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert len(list_sessions().json()["data"]) == 1

    def test_the_same_key_with_another_body_is_422(self, aws: Any) -> None:
        create(headers={"Idempotency-Key": "key-2"})
        answer = create({**BODY, "amount": 1}, headers={"Idempotency-Key": "key-2"})
        assert answer.status == 422 and answer.error["code"] == "idempotency_key_reused"

    def test_keys_are_scoped_per_tenant(self, aws: Any) -> None:
        ours = create(headers={"Idempotency-Key": "shared"})
        theirs = create(headers={"Idempotency-Key": "shared"}, tenant="other", return_hosts="example.com")
        assert theirs.status == 201 and theirs.json()["sessionId"] != ours.json()["sessionId"]

    def test_a_server_error_is_not_stored_so_a_retry_can_succeed(
        self, aws: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from checkout_core import sessions

        original = sessions.create_session
        monkeypatch.setattr(sessions, "create_session", lambda *args: (_ for _ in ()).throw(RuntimeError()))
        failed = create(headers={"Idempotency-Key": "key-5xx"})
        assert failed.status == 500 and failed.error["code"] == "internal_error"
        monkeypatch.setattr(sessions, "create_session", original)
        retried = create(headers={"Idempotency-Key": "key-5xx"})
        assert retried.status == 201 and "Idempotent-Replayed" not in retried.headers

    def test_a_malformed_key_is_400_before_anything_runs(self, aws: Any) -> None:
        answer = create(headers={"Idempotency-Key": "x" * 256})
        assert answer.status == 400 and answer.error["param"] == "Idempotency-Key"
        answer = create(headers={"Idempotency-Key": "caf\u00e9"})
        assert answer.status == 400


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_a_body_that_is_not_declared_json_is_refused(aws: Any, content_type: str | None) -> None:
    event = api_event("create_session", "/v1/sessions", body=BODY)
    event["headers"].pop("Content-Type")
    event["multiValueHeaders"].pop("Content-Type")
    if content_type:
        event["headers"]["content-type"] = content_type
    answer = call("create_session", event)
    assert answer.status == 400 and answer.error["param"] == "Content-Type"
    assert list_sessions().json()["data"] == []


def test_json_with_a_charset_is_json(aws: Any) -> None:
    assert create(headers={"Content-Type": "application/json; charset=utf-8"}).status == 201


def test_a_rare_status_is_paged_with_bounded_reads_and_nothing_is_skipped(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checkout_core import repository

    # Given one cancelled session among many open ones, and requests that read at most 2 pages
    monkeypatch.setattr(repository, "LIST_PAGES_PER_REQUEST", 2)
    cancelled = create().json()["sessionId"]
    call(
        "cancel_session",
        api_event(
            "cancel_session", f"/v1/sessions/{cancelled}/cancel", path_parameters={"sessionId": cancelled}
        ),
    )
    for i in range(6):
        create({**BODY, "referenceId": f"newer-{i}"})
    # When the cancelled ones are listed one per page
    found, cursor, requests = [], None, 0
    while True:
        page = list_sessions(
            {"status": "CANCELLED", "limit": "1", **({"cursor": cursor} if cursor else {})}
        ).json()
        found += [session["sessionId"] for session in page["data"]]
        requests += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    # Then it takes several requests, some of them empty, and finds exactly the one
    assert found == [cancelled]
    assert requests > 1


def test_a_write_conflict_that_outlasts_the_retries_is_503_with_retry_after(aws: Any) -> None:
    from botocore.exceptions import ClientError

    from checkout_core import aws as aws_clients

    # Given DynamoDB answering every transaction with a conflict on the session item
    def conflict(**_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [{"Code": "TransactionConflict"}],
            },
            "TransactWriteItems",
        )

    events = aws_clients.client("dynamodb").meta.events
    events.register("before-call.dynamodb.TransactWriteItems", conflict, unique_id="conflict")
    try:
        # When a create cannot write
        answer = create()
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="conflict")
    # Then the client is told to retry shortly, and nothing was created
    assert answer.status == 503 and answer.error["code"] == "service_unavailable"
    assert answer.headers["Retry-After"] == "1"
    assert list_sessions().json()["data"] == []


# -- what an outside review found at the edges ------------------------------------------------------


def test_a_body_that_is_not_utf8_is_400_and_changes_nothing(aws: Any) -> None:
    import base64

    event = api_event(
        "create_session", "/v1/sessions", raw_body=base64.b64encode(b'{"amount": "\xff"}').decode()
    )
    event["isBase64Encoded"] = True
    answer = call("create_session", event)
    assert answer.status == 400 and answer.error["code"] == "invalid_request"
    assert answer.error["message"] == "The body is not valid UTF-8."
    assert aws.dynamodb.scan(TableName=aws.table_name, Select="COUNT")["Count"] == 1


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({**BODY, "": 1}, "", 'Unknown field "".'),
        ({**BODY, "metadata": {"k" * 41: "v"}}, f"metadata.{'k' * 41}", None),
    ],
)
def test_field_errors_name_the_field_as_sent(
    aws: Any, body: dict[str, Any], param: str, message: str | None
) -> None:
    answer = create(body)
    assert answer.status == 400 and answer.error["param"] == param
    if message:
        assert answer.error["message"] == message
    assert "None" not in answer.error["message"]


def test_a_missing_body_says_a_body_is_required(aws: Any) -> None:
    event = api_event("create_session", "/v1/sessions")
    answer = call("create_session", event)
    assert answer.status == 400 and answer.error["message"] == "A JSON body is required."
    assert answer.error["param"] is None


def test_a_replayed_error_names_the_request_that_received_it(aws: Any) -> None:
    bad = {**BODY, "returnUrl": "https://elsewhere.test/return"}
    first = create(bad, headers={"Idempotency-Key": "bad-1"})
    again = create(bad, headers={"Idempotency-Key": "bad-1"})
    assert first.status == again.status == 400
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.error["requestId"] == again.headers["X-Request-Id"] != first.error["requestId"]
    assert {**again.error, "requestId": None} == {**first.error, "requestId": None}


def test_a_page_of_large_sessions_stays_under_lambdas_answer_limit_and_skips_nothing(aws: Any) -> None:
    # Given 20 sessions with the most metadata the contract allows, in characters JSON escapes longest
    metadata = {f"key-{index:02d}-" + "k" * 32: "\U0001f600" * 500 for index in range(50)}
    created = {create({**BODY, "metadata": metadata}).json()["sessionId"] for _ in range(20)}
    # When they are listed at the default limit, page after page
    found: list[str] = []
    cursor = None
    while True:
        answer = list_sessions({"cursor": cursor} if cursor else None)
        # Then every answer fits in Lambda's 6 MB
        assert answer.status == 200
        assert len(json.dumps(answer.raw)) < 6 * 1024 * 1024
        page = answer.json()
        found += [session["sessionId"] for session in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    # And together the pages hold each session once
    assert len(found) == len(set(found)) == 20 and set(found) == created


def test_the_pay_link_never_rests_in_clear_in_the_idempotency_store(aws: Any) -> None:
    import os

    # Given a create with an Idempotency-Key
    first = create(headers={"Idempotency-Key": "sealed-1"})
    token = first.json()["url"].rsplit("/", 1)[1]
    # Then no item of the idempotency table holds the token
    stored = aws.dynamodb.scan(TableName=os.environ["IDEMPOTENCY_TABLE_NAME"])["Items"]
    assert stored and token not in json.dumps(stored)
    # And a replay still returns the link the client never saw
    again = create(headers={"Idempotency-Key": "sealed-1"})
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["url"] == first.json()["url"]


@pytest.mark.parametrize("url", ["http://localhost:8000/shop/return", "http://127.0.0.1:8000/return"])
def test_http_to_loopback_is_accepted_on_the_local_runtime_only(
    aws: Any, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    import dataclasses

    from checkout_core.context import get_context

    allowed = {"return_hosts": "example.com,localhost,127.0.0.1"}
    body = {**BODY, "returnUrl": url, "cancelUrl": url}
    # Deployed: refused, and the error says why
    deployed = create(body, **allowed)
    assert deployed.status == 400 and deployed.error["param"] == "returnUrl"
    assert "https" in deployed.error["message"]
    # On the local runtime: accepted, for return and cancel URLs
    ctx = get_context()
    monkeypatch.setattr(ctx, "settings", dataclasses.replace(ctx.settings, local_runtime=True))
    local = create(body, **allowed)
    assert local.status == 201, local.body
    assert get(local.json()["sessionId"]).json()["returnUrl"] == url


def test_an_allowlist_refusal_names_the_setting_that_extends_it(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from checkout_core.context import get_context

    body = {**BODY, "returnUrl": "https://shop.example.net/return"}
    deployed = create(body)
    assert deployed.status == 400 and deployed.error["param"] == "returnUrl"
    assert "shop.example.net" in deployed.error["message"]
    assert "make api-key --return-hosts" in deployed.error["message"]
    ctx = get_context()
    monkeypatch.setattr(ctx, "settings", dataclasses.replace(ctx.settings, local_runtime=True))
    local = create(body)
    assert local.status == 400 and "LOCAL_RETURN_HOSTS" in local.error["message"]
