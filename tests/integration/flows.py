"""Calls through the real handlers, for the integration tests of cancel, provider events and expiry."""

from __future__ import annotations

import json
import time
from typing import Any

from checkout_core.signatures import sign
from tests.support import Answer, api_event, call

BODY = {
    "amount": 5000,
    "currency": "USD",
    "referenceId": "order-123",
    "returnUrl": "https://example.com/return",
}


def create_session(**fields: Any) -> dict[str, Any]:
    answer = call("create_session", api_event("create_session", "/v1/sessions", body={**BODY, **fields}))
    assert answer.status == 201, answer.body
    return answer.json()


def start_transaction(session_id: str, provider: str = "sandbox_card", **kwargs: Any) -> Answer:
    return call(
        "create_transaction",
        api_event(
            "create_transaction",
            f"/v1/sessions/{session_id}/transactions",
            body={"provider": provider},
            path_parameters={"sessionId": session_id},
            **kwargs,
        ),
    )


def transaction(session_id: str, provider: str = "sandbox_card") -> str:
    answer = start_transaction(session_id, provider)
    assert answer.status == 201, answer.body
    return str(answer.json()["transactionId"])


def cancel(session_id: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Answer:
    return call(
        "cancel_session",
        api_event(
            "cancel_session",
            f"/v1/sessions/{session_id}/cancel",
            body=body,
            path_parameters={"sessionId": session_id},
            **kwargs,
        ),
    )


def get(session_id: str) -> dict[str, Any]:
    answer = call(
        "get_session",
        api_event("get_session", f"/v1/sessions/{session_id}", path_parameters={"sessionId": session_id}),
    )
    assert answer.status == 200, answer.body
    return answer.json()


def events(session_id: str) -> list[dict[str, Any]]:
    answer = call(
        "list_session_events",
        api_event(
            "list_session_events",
            f"/v1/sessions/{session_id}/events",
            path_parameters={"sessionId": session_id},
        ),
    )
    assert answer.status == 200, answer.body
    return list(answer.json()["data"])


def event_types(session_id: str) -> list[str]:
    timeline = events(session_id)
    assert [event["sequence"] for event in timeline] == list(range(1, len(timeline) + 1))
    return [event["type"] for event in timeline]


def provider_event(
    provider: str,
    transaction_id: str,
    status: str,
    event_id: str | None = None,
    secret: str = "whsec_sandbox",
    signed_at: int | None = None,
    signature: str | None = None,
    raw_body: str | None = None,
    **reported: Any,
) -> Answer:
    """`reported`: what the provider holds for the payment (providerReference, amount, currency)."""
    body = (
        raw_body
        if raw_body is not None
        else json.dumps(
            {
                "eventId": event_id or f"evt-{transaction_id}-{status}",
                "transactionId": transaction_id,
                "status": status,
                **reported,
            }
        )
    )
    header = (
        signature if signature is not None else sign(secret, signed_at or int(time.time()), body.encode())
    )
    return call(
        "provider_events",
        api_event(
            "provider_event",
            f"/v1/providers/{provider}/events",
            raw_body=body,
            path_parameters={"provider": provider},
            headers={"Provider-Signature": header},
            tenant=None,
        ),
    )


def move_expiry_to_the_past(aws: Any, session_id: str, seconds_ago: int = 5) -> None:
    """Stands in for the passage of time: the session's expiresAt becomes a moment in the past."""
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}},
        UpdateExpression="SET expiresAt = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - seconds_ago)}},
    )
