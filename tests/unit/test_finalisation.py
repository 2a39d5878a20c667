"""Finalisation is described once: the state machine writes the session.cancelled that Python writes."""

import json
from pathlib import Path
from typing import Any

from checkout_core.finalisation import cancelled_event_data
from checkout_core.transitions import SessionStatus, can_move_session

ASL = Path(__file__).resolve().parents[2] / "statemachines" / "cancellation_finaliser.asl.json"


def _finalise_items() -> list[dict[str, Any]]:
    definition = json.loads(ASL.read_text())
    return definition["States"]["Finalise"]["Parameters"]["TransactItems"]


def test_the_workflow_writes_the_same_event_data_as_python() -> None:
    event = next(item["Put"]["Item"] for item in _finalise_items() if "Put" in item)
    assert event["type"] == {"S": "session.cancelled"}
    workflow_keys = {key.removesuffix(".$") for key in event["data"]["M"]}
    assert workflow_keys == set(cancelled_event_data({}, refund_required=False))


def test_the_workflow_finalises_a_move_the_table_allows() -> None:
    update = next(item["Update"] for item in _finalise_items() if "Update" in item)
    values = update["ExpressionAttributeValues"]
    assert values[":pending"] == {"S": "PENDING_CANCELLATION"} and values[":cancelled"] == {"S": "CANCELLED"}
    assert can_move_session(SessionStatus.PENDING_CANCELLATION, SessionStatus.CANCELLED)
    assert "inFlight = :zero" in update["ConditionExpression"]


def test_the_workflow_reads_every_cancellation_field_its_event_writes() -> None:
    definition = json.loads(ASL.read_text())
    projection = definition["States"]["ReadSession"]["Parameters"]["ProjectionExpression"]
    read = {part.strip().replace("#cancellation.", "") for part in projection.split(",")}
    event = next(item["Put"]["Item"] for item in _finalise_items() if "Put" in item)
    used = {
        path.rsplit(".", 1)[1]
        for path in event["data"]["M"].values()
        if path.startswith("$.session.Item.cancellation.M.")
    }
    assert used and used <= read
