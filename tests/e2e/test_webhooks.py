"""Webhooks to merchants (§7) end to end: the runtime's bus -> rule -> FIFO queue -> fan-out -> FIFO queue
-> delivery function, to real HTTP receivers on loopback. Signatures are checked with the
`standardwebhooks` library, not with the project's signer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from checkout_core.webhooks.store import log_partitions
from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, assert_error
from tests.support import wait_until
from tests.webhook_receiver import Receiver

TENANTS = ["life", "other", "limit", "bad", "sign", "rotate", "retry", "gone", "ping", "filter"]
DELIVERY_TIMEOUT = 40.0


@pytest.fixture(scope="module")
def runtime() -> Iterator[RunningRuntime]:
    keys = ",".join(f"{tenant}:sk_test_{tenant}" for tenant in TENANTS)
    running = launch({"LOCAL_API_KEYS": keys})
    yield running
    stop_and_check(running)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()
    yield receiving
    receiving.close()


def api_for(runtime: RunningRuntime, tenant: str) -> Api:
    return Api(runtime.base_url, f"sk_test_{tenant}")


def create_endpoint(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    answer = api.request("POST", "/v1/webhook-endpoints", {"url": url, **fields})
    assert answer.status == 201, answer
    return dict(answer.body)


def deliveries(api: Api, endpoint_id: str, **query: str) -> list[dict[str, Any]]:
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    answer = api.request("GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=100&{suffix}")
    assert answer.status == 200, answer
    return list(answer.body["data"])


def verified(secret: str, received: Any) -> dict[str, Any]:
    """The event, if the `standardwebhooks` library accepts the request's signature."""
    return dict(Webhook(secret).verify(received.body, received.headers))


# ------------------------------------------------------------------------------------------- endpoints


def test_an_endpoint_is_created_read_listed_updated_and_deleted_and_its_secret_shown_once(
    runtime: RunningRuntime,
) -> None:
    api = api_for(runtime, "life")
    first = create_endpoint(api, "https://hooks.example.com/a", description="first")
    second = create_endpoint(api, "https://hooks.example.com/b", eventTypes=["session.cancelled"])
    assert first["secret"].startswith("whsec_") and len(first["secret"]) == len("whsec_") + 44
    assert first["status"] == "ENABLED" and first["eventTypes"] == [] and first["disabledReason"] is None

    read = api.request("GET", f"/v1/webhook-endpoints/{first['endpointId']}")
    assert read.status == 200 and "secret" not in read.body and "whsec_" not in read.text
    listed = api.request("GET", "/v1/webhook-endpoints")
    assert [e["endpointId"] for e in listed.body["data"]] == [second["endpointId"], first["endpointId"]]
    assert "whsec_" not in listed.text
    page = api.request("GET", "/v1/webhook-endpoints?limit=1")
    rest = api.request("GET", f"/v1/webhook-endpoints?limit=1&cursor={page.body['nextCursor']}")
    assert [e["endpointId"] for e in page.body["data"] + rest.body["data"]] == [
        second["endpointId"],
        first["endpointId"],
    ]

    patched = api.request(
        "PATCH",
        f"/v1/webhook-endpoints/{first['endpointId']}",
        {"url": "https://hooks.example.com/c", "eventTypes": ["session.created"], "description": None},
    )
    assert patched.status == 200, patched
    assert patched.body["url"] == "https://hooks.example.com/c"
    assert patched.body["eventTypes"] == ["session.created"] and patched.body["description"] is None
    disabled = api.request("PATCH", f"/v1/webhook-endpoints/{first['endpointId']}", {"status": "DISABLED"})
    assert (disabled.body["status"], disabled.body["disabledReason"]) == ("DISABLED", "MANUAL")

    assert api.request("DELETE", f"/v1/webhook-endpoints/{first['endpointId']}").status == 204
    assert_error(
        api.request("GET", f"/v1/webhook-endpoints/{first['endpointId']}"), 404, "endpoint_not_found"
    )
    assert_error(
        api.request("DELETE", f"/v1/webhook-endpoints/{first['endpointId']}"), 404, "endpoint_not_found"
    )


def test_another_tenants_endpoint_is_not_found(runtime: RunningRuntime) -> None:
    mine = create_endpoint(api_for(runtime, "life"), "https://hooks.example.com/mine")
    other = api_for(runtime, "other")
    path = f"/v1/webhook-endpoints/{mine['endpointId']}"
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"description": "taken"}),
        ("DELETE", "", None),
        ("POST", "/rotate-secret", None),
        ("POST", "/test", None),
        ("GET", "/deliveries", None),
        ("POST", "/recover", {"since": "2026-12-01T00:00:00Z"}),
    ]:
        assert_error(other.request(method, path + suffix, body), 404, "endpoint_not_found")
    assert mine["endpointId"] not in other.request("GET", "/v1/webhook-endpoints").text
    still = api_for(runtime, "life").request("GET", path)
    assert still.status == 200 and still.body.get("description") is None


def test_at_most_sixteen_endpoints_per_tenant(runtime: RunningRuntime) -> None:
    api = api_for(runtime, "limit")
    made = [create_endpoint(api, f"https://hooks.example.com/{n}") for n in range(16)]
    assert_error(
        api.request("POST", "/v1/webhook-endpoints", {"url": "https://hooks.example.com/17"}),
        409,
        "endpoint_limit_reached",
    )
    assert len(api.request("GET", "/v1/webhook-endpoints?limit=100").body["data"]) == 16
    assert api.request("DELETE", f"/v1/webhook-endpoints/{made[0]['endpointId']}").status == 204
    create_endpoint(api, "https://hooks.example.com/again")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"url": "https://user:pw@hooks.example.com/x"}, "url"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://hooks.example.com/" + "x" * 2048}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://hooks.example.com/x", "eventTypes": ["session.exploded"]}, "eventTypes"),
        (
            {"url": "https://hooks.example.com/x", "eventTypes": ["session.created", "session.created"]},
            "eventTypes",
        ),
        ({"url": "https://hooks.example.com/x", "secret": "whsec_mine"}, "secret"),
        ({}, "url"),
    ],
)
def test_bad_endpoint_input_is_refused_and_changes_nothing(
    runtime: RunningRuntime, body: dict[str, Any], param: str
) -> None:
    api = api_for(runtime, "bad")
    before = api.request("GET", "/v1/webhook-endpoints?limit=100").body["data"]
    answer = api.request("POST", "/v1/webhook-endpoints", body)
    assert str(assert_error(answer, 400, "invalid_request")["param"]).startswith(param)
    assert api.request("GET", "/v1/webhook-endpoints?limit=100").body["data"] == before


def test_bad_updates_and_recover_times_are_refused(runtime: RunningRuntime) -> None:
    api = api_for(runtime, "bad")
    endpoint = create_endpoint(api, "https://hooks.example.com/bad")
    path = f"/v1/webhook-endpoints/{endpoint['endpointId']}"
    for body in ({"status": "BROKEN"}, {"url": "http:/x"}, {"eventTypes": "all"}, {"url": "ftp://x.example"}):
        assert_error(api.request("PATCH", path, body), 400, "invalid_request")
    for since in ("yesterday", "2026-12-01T00:00:00", "2026-12-01 00:00:00Z", "2026-13-45T00:00:00Z"):
        assert_error(api.request("POST", f"{path}/recover", {"since": since}), 400, "invalid_request")
    assert_error(api.request("GET", "/v1/webhook-endpoints/not-a-uuid"), 400, "invalid_request")
    assert_error(api.request("GET", f"{path}/deliveries?status=LOST"), 400, "invalid_request")
    assert_error(api.request("GET", "/v1/webhook-endpoints?cursor=bm9wZQ"), 400, "invalid_request")
    unchanged = api.request("GET", path).body
    assert {k: unchanged[k] for k in ("url", "status", "eventTypes")} == {
        "url": "https://hooks.example.com/bad",
        "status": "ENABLED",
        "eventTypes": [],
    }


# ------------------------------------------------------------------------------------------- delivery


def test_every_event_is_delivered_signed_in_order_and_equal_to_the_timeline(
    runtime: RunningRuntime, receiver: Receiver
) -> None:
    api = api_for(runtime, "sign")
    endpoint = create_endpoint(api, receiver.url)
    session = api.open_session()
    api.start_transaction(session["sessionId"])
    assert api.cancel(session["sessionId"]).status == 200
    timeline = api.events(session["sessionId"])
    got = wait_until(
        lambda: (
            len(receiver.succeeded(session["sessionId"])) >= len(timeline)
            and receiver.of_session(session["sessionId"])
        ),
        DELIVERY_TIMEOUT,
        "every event of the session at the receiver",
    )
    assert [verified(endpoint["secret"], r) for r in got] == timeline
    assert [r.webhook_id for r in got] == [event["eventId"] for event in timeline]
    for received in got:
        assert json.loads(received.body) == next(e for e in timeline if e["eventId"] == received.webhook_id)
        assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 60
        with pytest.raises(WebhookVerificationError):  # another endpoint's secret does not verify
            Webhook("whsec_" + "A" * 43 + "=").verify(received.body, received.headers)
    logged = wait_until(
        lambda: [d for d in deliveries(api, endpoint["endpointId"]) if d["status"] == "SUCCEEDED"],
        DELIVERY_TIMEOUT,
        "the delivery log",
    )
    assert {d["eventId"] for d in logged} == {e["eventId"] for e in timeline}
    assert all(
        d["attempts"] == 1 and d["lastResponseStatus"] == 200 and d["nextAttemptAt"] is None for d in logged
    )


def test_after_a_rotation_both_secrets_sign_for_a_day(runtime: RunningRuntime, receiver: Receiver) -> None:
    api = api_for(runtime, "rotate")
    endpoint = create_endpoint(api, receiver.url)
    rotated = api.request("POST", f"/v1/webhook-endpoints/{endpoint['endpointId']}/rotate-secret")
    assert rotated.status == 200 and rotated.body["secret"] != endpoint["secret"]
    assert "whsec_" not in api.request("GET", f"/v1/webhook-endpoints/{endpoint['endpointId']}").text
    session = api.open_session()
    (received,) = wait_until(lambda: receiver.of_session(session["sessionId"]), DELIVERY_TIMEOUT, "the event")
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert verified(endpoint["secret"], received) == verified(rotated.body["secret"], received)


def test_a_failing_event_is_retried_and_holds_back_only_its_own_sessions_later_events(
    runtime: RunningRuntime, receiver: Receiver
) -> None:
    api = api_for(runtime, "retry")
    held: set[str] = set()

    def plan(received: Any) -> tuple[int, dict[str, str]]:
        event = received.event
        if event["type"] == "session.created" and event["sessionId"] in held and received.attempt == 1:
            return 500, {}
        return 200, {}

    receiver.plan = plan
    endpoint = create_endpoint(api, receiver.url)
    slow = api.open_session()
    held.add(slow["sessionId"])  # its created event may be on its way already: only its first attempt fails
    api.cancel(slow["sessionId"])
    fast = api.open_session()
    api.cancel(fast["sessionId"])

    wait_until(lambda: len(receiver.succeeded(fast["sessionId"])) == 2, DELIVERY_TIMEOUT, "the other session")
    slow_got = wait_until(
        lambda: len(receiver.succeeded(slow["sessionId"])) == 2 and receiver.of_session(slow["sessionId"]),
        DELIVERY_TIMEOUT,
        "the retried session",
    )
    types = [(r.event["type"], r.answered) for r in slow_got]
    if types[0] == ("session.created", 500):  # the plan saw the first attempt: it failed, then came again
        assert types == [("session.created", 500), ("session.created", 200), ("session.cancelled", 200)]
        assert slow_got[0].webhook_id == slow_got[1].webhook_id
        assert slow_got[1].arrived - slow_got[0].arrived >= 3.5  # 5 s -20 %, the schedule's first retry
        fast_done = max(r.arrived for r in receiver.succeeded(fast["sessionId"]))
        assert fast_done < slow_got[1].arrived  # the other session did not wait for the retry
        created = next(
            d for d in deliveries(api, endpoint["endpointId"]) if d["eventId"] == slow_got[0].webhook_id
        )
        assert (created["status"], created["attempts"], created["lastResponseStatus"]) == (
            "SUCCEEDED",
            2,
            200,
        )
    else:
        pytest.fail(f"the first attempt was not the failing one: {types}")


def test_410_disables_the_endpoint_and_recover_sends_what_was_recorded_meanwhile(
    runtime: RunningRuntime, receiver: Receiver
) -> None:
    api = api_for(runtime, "gone")
    gone = {"now": True}
    receiver.plan = lambda received: (410, {}) if gone["now"] else (200, {})
    endpoint = create_endpoint(api, receiver.url)
    path = f"/v1/webhook-endpoints/{endpoint['endpointId']}"
    session = api.open_session()
    wait_until(
        lambda: api.request("GET", path).body["status"] == "DISABLED",
        DELIVERY_TIMEOUT,
        "the endpoint disabled",
    )
    assert api.request("GET", path).body["disabledReason"] == "GONE"
    api.cancel(session["sessionId"])
    recorded = wait_until(
        lambda: [d for d in deliveries(api, endpoint["endpointId"]) if d["type"] == "session.cancelled"],
        DELIVERY_TIMEOUT,
        "the cancelled event recorded",
    )
    assert recorded[0]["status"] == "FAILED" and recorded[0]["attempts"] == 0
    assert len(receiver.of_session(session["sessionId"])) == 1  # recorded, not sent

    gone["now"] = False
    enabled = api.request("PATCH", path, {"status": "ENABLED"})
    assert (enabled.body["status"], enabled.body["disabledReason"]) == ("ENABLED", None)
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    recovered = api.request("POST", f"{path}/recover", {"since": since})
    assert recovered.status == 202 and recovered.body["recovered"] == 2, recovered
    got = wait_until(
        lambda: (
            len(receiver.succeeded(session["sessionId"])) == 2 and receiver.succeeded(session["sessionId"])
        ),
        DELIVERY_TIMEOUT,
        "the recovered deliveries",
    )
    assert [r.event["type"] for r in got] == ["session.created", "session.cancelled"]
    assert all(d["status"] == "SUCCEEDED" for d in deliveries(api, endpoint["endpointId"]))


def test_a_test_ping_and_a_resend(runtime: RunningRuntime, receiver: Receiver) -> None:
    api = api_for(runtime, "ping")
    endpoint = create_endpoint(api, receiver.url)
    path = f"/v1/webhook-endpoints/{endpoint['endpointId']}"
    ping = api.request("POST", f"{path}/test")
    assert ping.status == 202 and ping.body["type"] == "webhook.test" and ping.body["sessionId"] is None
    (received,) = wait_until(lambda: list(receiver.received), DELIVERY_TIMEOUT, "the ping")
    assert verified(endpoint["secret"], received)["type"] == "webhook.test"
    assert received.webhook_id == ping.body["eventId"]
    wait_until(
        lambda: deliveries(api, endpoint["endpointId"], status="SUCCEEDED"), DELIVERY_TIMEOUT, "logged"
    )

    again = api.request("POST", f"{path}/deliveries/{ping.body['deliveryId']}/resend")
    assert again.status == 202 and again.body["status"] == "PENDING"
    wait_until(lambda: len(receiver.received) == 2, DELIVERY_TIMEOUT, "the resend")
    assert receiver.received[1].webhook_id == received.webhook_id  # the same webhook-id on every attempt
    missing = "01a00000-0000-7000-8000-000000000000"
    assert_error(api.request("POST", f"{path}/deliveries/{missing}/resend"), 404, "delivery_not_found")


def test_an_endpoint_receives_only_the_types_it_asked_for(
    runtime: RunningRuntime, receiver: Receiver
) -> None:
    api = api_for(runtime, "filter")
    create_endpoint(api, receiver.url, eventTypes=["session.cancelled"])
    session = api.open_session()
    api.cancel(session["sessionId"])
    got = wait_until(
        lambda: receiver.of_session(session["sessionId"]), DELIVERY_TIMEOUT, "the cancelled event"
    )
    ping = api_for(runtime, "filter").request("POST", "/v1/webhook-endpoints", {"url": receiver.url})
    assert ping.status == 201  # a second endpoint, created after: the later session reaches it alone
    later = api.open_session()
    wait_until(lambda: receiver.of_session(later["sessionId"]), DELIVERY_TIMEOUT, "the later session's event")
    assert [r.event["type"] for r in receiver.of_session(session["sessionId"])] == ["session.cancelled"]
    assert [r.event["type"] for r in got] == ["session.cancelled"]


def test_a_body_that_is_not_an_object_is_refused_and_changes_nothing(runtime: RunningRuntime) -> None:
    api = api_for(runtime, "bad")
    before = api.request("GET", "/v1/webhook-endpoints?limit=100").body["data"]
    answer = api.request("POST", "/v1/webhook-endpoints", [{"url": "https://hooks.example.com/list"}])
    assert assert_error(answer, 400, "invalid_request")["message"] == "The body must be a JSON object."
    assert api.request("GET", "/v1/webhook-endpoints?limit=100").body["data"] == before
    session = api.open_session()
    assert_error(
        api.request("POST", f"/v1/sessions/{session['sessionId']}/cancel", [{}]), 400, "invalid_request"
    )
    assert api.get(session["sessionId"])["status"] == "OPEN"


def test_deleting_an_endpoint_drops_its_pending_deliveries(
    runtime: RunningRuntime, receiver: Receiver
) -> None:
    api = api_for(runtime, "ping")
    receiver.plan = lambda received: (500, {})
    endpoint = create_endpoint(api, receiver.url, eventTypes=["session.created"])
    session = api.open_session()
    wait_until(
        lambda: receiver.of_session(session["sessionId"]), DELIVERY_TIMEOUT, "the failed first attempt"
    )
    assert api.request("DELETE", f"/v1/webhook-endpoints/{endpoint['endpointId']}").status == 204
    other = create_endpoint(api, receiver.url, eventTypes=["session.created"])  # the same receiver, on
    receiver.plan = lambda received: (200, {})
    later = api.open_session()
    wait_until(lambda: receiver.succeeded(later["sessionId"]), DELIVERY_TIMEOUT, "the other endpoint's event")
    # The retry's message, when it comes due, finds the endpoint gone and drops the delivery instead of sending.
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=runtime.moto_url,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    wait_until(
        lambda: (
            not any(
                dynamodb.query(
                    TableName="checkout-sessions",
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :deliveries)",
                    ExpressionAttributeValues={":pk": {"S": pk}, ":deliveries": {"S": "DELIVERY#"}},
                )["Items"]
                for pk in log_partitions(endpoint["endpointId"])
            )
        ),
        DELIVERY_TIMEOUT,
        "the pending delivery dropped",
    )
    assert [r.answered for r in receiver.of_session(session["sessionId"])] == [500]
    gone = api.request("GET", f"/v1/webhook-endpoints/{endpoint['endpointId']}/deliveries")
    assert_error(gone, 404, "endpoint_not_found")
    assert other["endpointId"] != endpoint["endpointId"]
