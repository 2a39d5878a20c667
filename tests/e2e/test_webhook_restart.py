"""A restart of the runtime in the middle of a delivery's backoff loses no delivery and sends nothing twice
to a receiver that answered 2xx: the queue lived in moto's memory and is gone, the Delivery items in the
kept table are the truth it is re-derived from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import RunningRuntime
from tests.e2e.helpers import Api
from tests.support import wait_until
from tests.webhook_receiver import Receiver

DELIVERY_TIMEOUT = 60.0


def test_a_restart_mid_backoff_loses_no_delivery_and_repeats_no_success(
    start_runtime: Callable[..., RunningRuntime], tmp_path: Path
) -> None:
    receiver = Receiver()
    failing: set[str] = set()

    def plan(received: Any) -> tuple[int, dict[str, str]]:
        event = received.event
        if event.get("sessionId") in failing and event["type"] == "session.created" and received.attempt == 1:
            return 503, {"Retry-After": "8"}  # longer than the schedule's 5 s: it is honoured
        return 200, {}

    receiver.plan = plan
    settings = {"LOCAL_STATE_DIR": str(tmp_path / "state")}
    try:
        first = start_runtime(**settings)
        api = Api(first.base_url, "sk_test_demo")
        endpoint = api.request("POST", "/v1/webhook-endpoints", {"url": receiver.url}).body
        done = api.open_session()
        wait_until(
            lambda: receiver.succeeded(done["sessionId"]), DELIVERY_TIMEOUT, "the first session delivered"
        )
        waiting = api.open_session()
        failing.add(waiting["sessionId"])
        api.cancel(waiting["sessionId"])
        wait_until(
            lambda: receiver.of_session(waiting["sessionId"]), DELIVERY_TIMEOUT, "the failed first attempt"
        )
        log = api.request("GET", f"/v1/webhook-endpoints/{endpoint['endpointId']}/deliveries").body["data"]
        in_backoff = [d for d in log if d["sessionId"] == waiting["sessionId"] and d["status"] == "FAILED"]
        assert in_backoff and in_backoff[0]["nextAttemptAt"] is not None, log
        assert first.stop() == 0

        second = start_runtime(**settings)
        api = Api(second.base_url, "sk_test_demo")
        got = wait_until(
            lambda: (
                len(receiver.succeeded(waiting["sessionId"])) == 2
                and receiver.of_session(waiting["sessionId"])
            ),
            DELIVERY_TIMEOUT,
            "the waiting session's events after the restart",
        )
        assert [(r.event["type"], r.answered) for r in got] == [
            ("session.created", 503),
            ("session.created", 200),
            ("session.cancelled", 200),
        ]
        assert got[1].arrived - got[0].arrived >= 8  # Retry-After held across the restart
        successes = [r.webhook_id for r in receiver.received if 200 <= r.answered < 300]
        assert len(successes) == len(set(successes)), "an event answered 2xx was sent again"
        assert len(receiver.succeeded(done["sessionId"])) == 1
        log = api.request("GET", f"/v1/webhook-endpoints/{endpoint['endpointId']}/deliveries").body["data"]
        assert {d["status"] for d in log} == {"SUCCEEDED"}
    finally:
        receiver.close()
