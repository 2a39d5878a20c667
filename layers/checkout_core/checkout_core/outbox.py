"""The outbox: timeline event items, as the table's stream carries them, turned into published Events."""

from __future__ import annotations

from typing import Any

from checkout_core.views import event_view


def events_from_stream(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API's Event for each inserted EVENT item of a batch of DynamoDB stream records, in order."""
    from checkout_core.repository import item_from_dynamo

    published = []
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        image = record.get("dynamodb", {}).get("NewImage") or {}
        if image.get("entity", {}).get("S") != "EVENT":
            continue
        published.append(event_view(item_from_dynamo(image)).model_dump(mode="json"))
    return published
