"""Provider events: the route of functions/provider_events."""

from __future__ import annotations

import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import ValidationError

from checkout_core.errors import InvalidRequest
from checkout_core.models import (
    ProviderEventAck,
    ProviderEventRequest,
)
from checkout_core.providers.base import BatchedEvents
from checkout_core.routes import (
    error_responses,
    get_context,
    invalid,
)

router = Router()


def _signed_body_schema() -> dict[str, Any]:
    schema = ProviderEventRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"content": {"application/json": {"schema": schema}}, "required": True}


@router.post(
    "/v1/providers/<provider>/events",
    operation_id="receiveProviderEvent",
    summary="A provider reports a transaction's new status, signed its own way (stripe: Stripe-Signature; "
    "adyen: its notificationItems, each with its HMAC signature, answered [accepted])",
    responses={
        200: {
            "description": "OK",
            "content": {
                "application/json": {"model": ProviderEventAck},
                "text/plain": {"schema": {"type": "string", "enum": ["[accepted]"]}},
            },
        },
        **error_responses(400, 401, 404, 503),
    },
    # The body is read raw (the signature covers its exact bytes), so its schema is declared here.
    openapi_extensions={"requestBody": _signed_body_schema()},
)
def receive_provider_event(provider: Annotated[str, Path(max_length=64)]) -> Response[str]:
    from checkout_core.provider_events import apply_provider_event

    context = get_context()
    adapter = context.providers.get(provider)
    if adapter is None:
        raise InvalidRequest("Unknown provider.", "provider")
    event = router.current_event
    raw = (event.decoded_body or "").encode()
    if isinstance(adapter, BatchedEvents):
        # Several reports per request, each signed, and the provider's own acknowledgement as the answer.
        from checkout_core.provider_batches import apply_provider_batch

        batch = adapter.parse_batch(event.headers, raw, int(time.time()))
        apply_provider_batch(context, provider, batch.reports)
        return Response(status_code=200, content_type=batch.content_type, body=batch.acknowledgement)
    try:
        report = adapter.parse_event(event.headers, raw, int(time.time()))
    except ValidationError as exc:
        raise invalid(exc) from exc
    result = apply_provider_event(context, provider, report)
    ack = ProviderEventAck(applied=result.applied)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=ack.model_dump_json())
