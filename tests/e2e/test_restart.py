"""The embedded runtime keeps its data: stopped (SIGTERM or SIGKILL) and started again on the same state
folder, it has every session, event and key, and work that was waiting carries on."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from local.state import JOURNAL, StateStore
from tests.e2e.conftest import DEMO_KEY, launch, stop_and_check
from tests.e2e.helpers import Api, wait_for_status

pytestmark = pytest.mark.e2e


def test_a_restart_mid_cancellation_keeps_everything_and_the_cancellation_finalises(tmp_path: Path) -> None:
    state = {"LOCAL_STATE_DIR": str(tmp_path / "state")}
    # Given a session waiting on a bank transfer it could not cancel, and one other session
    first = launch(state)
    api = Api(first.base_url, DEMO_KEY)
    session_id = api.open_session()["sessionId"]
    transfer = api.start_transaction(session_id, "sandbox_bank_transfer")["transactionId"]
    assert api.cancel(session_id, {"reason": "restart test"}).body["status"] == "PENDING_CANCELLATION"
    other_id = api.open_session()["sessionId"]
    before = {sid: (api.get(sid), api.events(sid)) for sid in (session_id, other_id)}

    # When the runtime is stopped and started again on the same folder
    stop_and_check(first)
    second = launch(state)
    try:
        api = Api(second.base_url, DEMO_KEY)
        # Then every session and its timeline are there as they were, and the demo key still works
        assert {sid: (api.get(sid), api.events(sid)) for sid in (session_id, other_id)} == before
        assert "pending cancellations made due" in second.stderr
        # And when the transfer ends, the cancellation that was waiting is finalised
        ack = api.provider_event("sandbox_bank_transfer", transfer, "FAILED")
        assert ack.status == 200 and ack.body["applied"] is True, ack
        final = wait_for_status(api, session_id, "CANCELLED", timeout=60)
        assert final["cancellation"]["reason"] == "restart test"
        timeline = api.events(session_id)
        assert [event["sequence"] for event in timeline] == list(range(1, len(timeline) + 1))
        assert [event["type"] for event in timeline].count("session.cancelled") == 1
    finally:
        stop_and_check(second)


def test_a_kill_loses_no_answered_write_and_leaves_no_torn_state(tmp_path: Path) -> None:
    state = {"LOCAL_STATE_DIR": str(tmp_path / "state")}
    first = launch(state)
    api = Api(first.base_url, DEMO_KEY)
    created = [api.open_session()["sessionId"] for _ in range(10)]
    # When the process is killed outright
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(30)
    second = launch(state)
    try:
        api = Api(second.base_url, DEMO_KEY)
        # Then every session that was answered 201 is there, with its first event
        for session_id in created:
            assert api.get(session_id)["status"] == "OPEN"
            assert [event["type"] for event in api.events(session_id)] == ["session.created"]
        # And the restored sessions are listed, newest first (the tenant index is rebuilt from the items)
        listed = api.request("GET", "/v1/sessions?limit=100")
        assert [s["sessionId"] for s in listed.body["data"]] == list(reversed(created))
    finally:
        stop_and_check(second)


def test_reset_starts_empty(tmp_path: Path) -> None:
    state = {"LOCAL_STATE_DIR": str(tmp_path / "state")}
    first = launch(state)
    Api(first.base_url, DEMO_KEY).open_session()
    stop_and_check(first)
    second = launch({**state, "LOCAL_RESET": "1"})
    try:
        listed = Api(second.base_url, DEMO_KEY).request("GET", "/v1/sessions")
        assert listed.status == 200 and listed.body["data"] == []
    finally:
        stop_and_check(second)


def test_a_torn_last_journal_line_is_dropped_and_the_rest_replayed(tmp_path: Path) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    backend = DynamoDBBackend("us-east-1", "123456789012")
    backend.create_table(
        "t",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        attr=[{"AttributeName": "pk", "AttributeType": "S"}],
        throughput=None,
        billing_mode="PAY_PER_REQUEST",
        indexes=[],
        global_indexes=[],
        streams=None,
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    (tmp_path / JOURNAL).write_text(
        '{"w":[["t",{"pk":{"S":"a"},"n":{"N":"1"}},null]]}\n'
        '{"w":[["t",{"pk":{"S":"b"}},null]]}\n'
        '{"w":[["t",null,{"pk":{"S":"a"}}]]}\n'
        '{"w":[["t",{"pk":{"S":"c"'
    )
    store = StateStore(tmp_path, backend)
    assert store.restore() == 1
    store.close()
    assert sorted(item.hash_key.value for item in backend.tables["t"].items.values()) == ["b"]


def test_restored_attributes_are_what_moto_builds() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    from local.state import _attribute

    value = {
        "M": {
            "s": {"S": "x"},
            "n": {"N": "12"},
            "l": {"L": [{"S": "a"}, {"M": {"b": {"BOOL": True}}}, {"NULL": True}]},
            "ss": {"SS": ["a", "b"]},
        }
    }
    assert _attribute(value) == DynamoType(value)
    assert _attribute(value).to_json() == DynamoType(value).to_json()
