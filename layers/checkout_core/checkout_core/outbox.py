"""The outbox: timeline event items, as the table's stream carries them, turned into published Events."""

from __future__ import annotations

from typing import Any

from checkout_core.service import event_view


def events_from_stream(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contract's Event for each inserted EVENT item of a batch of DynamoDB stream records, in order."""
    from boto3.dynamodb.types import TypeDeserializer

    from checkout_core.repository import from_dynamo

    deserializer = TypeDeserializer()
    published = []
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        image = record.get("dynamodb", {}).get("NewImage") or {}
        if image.get("entity", {}).get("S") != "EVENT":
            continue
        item = {key: from_dynamo(deserializer.deserialize(value)) for key, value in image.items()}
        published.append(event_view(item).model_dump(mode="json"))
    return published
