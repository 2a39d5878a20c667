"""The routes. One Router per Lambda function; the OpenAPI function includes them all.

Each route takes validated input and makes one domain call; errors are answered by http.py.
"""

from __future__ import annotations

import html
import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import ValidationError

from checkout_core.errors import InvalidRequest
from checkout_core.http import tenant_of
from checkout_core.models import (
    CancelRequest,
    CancelResponse,
    CreateSessionRequest,
    CreateTransactionRequest,
    ErrorResponse,
    EventList,
    ProviderEventAck,
    ProviderEventRequest,
    Session,
    SessionList,
    Transaction,
)
from checkout_core.service import get_service
from checkout_core.transitions import SessionStatus

SessionId = Annotated[str, Path(description="UUIDv7 of the session")]


def _errors(*statuses: int) -> dict[int, Any]:
    described = {
        400: "invalid_request",
        401: "invalid_api_key / invalid_signature",
        404: "session_not_found / transaction_not_found",
        409: "state conflict or idempotency_in_progress",
        422: "idempotency_key_reused",
        503: "service_unavailable",
    }
    return {
        status: {"description": described[status], "content": {"application/json": {"model": ErrorResponse}}}
        for status in statuses
    }


def _created(model: Any) -> Response[str]:
    return Response(
        status_code=201, content_type=content_types.APPLICATION_JSON, body=model.model_dump_json()
    )


def _invalid(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first.get("loc", ())) or None
    if first.get("type") == "json_invalid":
        return InvalidRequest("The body is not valid JSON.", None)
    if first.get("type") == "extra_forbidden":
        return InvalidRequest(f"Unknown field {param}.", param)
    return InvalidRequest(f"{param or 'body'}: {first.get('msg', 'is invalid')}.", param)


def _refuse_unknown_query(router: Router, allowed: set[str]) -> None:
    for name in router.current_event.query_string_parameters or {}:
        if name not in allowed:
            raise InvalidRequest(f"Unknown query parameter {name}.", name)


create_session_router = Router()


@create_session_router.post(
    "/v1/sessions",
    summary="Create a checkout session",
    responses={
        201: {"description": "Created", "content": {"application/json": {"model": Session}}},
        **_errors(400, 401, 409, 422, 503),
    },
)
def create_session(body: CreateSessionRequest) -> Response[str]:
    service = get_service()
    from checkout_core.http import public_base_url

    base_url = public_base_url(create_session_router, service.settings.public_base_url)
    return _created(service.create_session(tenant_of(create_session_router), body, base_url))


get_session_router = Router()


@get_session_router.get(
    "/v1/sessions/<sessionId>", summary="Read one session", responses=_errors(400, 401, 404)
)
def get_session(sessionId: SessionId) -> Session:
    return get_service().get_session(tenant_of(get_session_router), sessionId)


list_sessions_router = Router()


@list_sessions_router.get("/v1/sessions", summary="List sessions, newest first", responses=_errors(400, 401))
def list_sessions(
    status: Annotated[SessionStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> SessionList:
    _refuse_unknown_query(list_sessions_router, {"status", "limit", "cursor"})
    return get_service().list_sessions(tenant_of(list_sessions_router), status, limit, cursor)


create_transaction_router = Router()


@create_transaction_router.post(
    "/v1/sessions/<sessionId>/transactions",
    summary="Start a payment attempt",
    responses={
        201: {"description": "Created", "content": {"application/json": {"model": Transaction}}},
        **_errors(400, 401, 404, 409, 422, 503),
    },
)
def create_transaction(sessionId: SessionId, body: CreateTransactionRequest) -> Response[str]:
    tenant = tenant_of(create_transaction_router)
    return _created(get_service().create_transaction(tenant, sessionId, body.provider))


cancel_session_router = Router()


@cancel_session_router.post(
    "/v1/sessions/<sessionId>/cancel",
    summary="Cancel a session",
    responses=_errors(400, 401, 404, 409, 422, 503),
)
def cancel_session(
    sessionId: SessionId,
    body: Annotated[
        CancelRequest | None, Body(description="All fields optional; an empty body is a default cancel")
    ] = None,
) -> CancelResponse:
    return get_service().cancel_session(tenant_of(cancel_session_router), sessionId, body or CancelRequest())


list_session_events_router = Router()


@list_session_events_router.get(
    "/v1/sessions/<sessionId>/events",
    summary="The session's audit timeline",
    responses=_errors(400, 401, 404),
)
def list_session_events(sessionId: SessionId) -> EventList:
    return EventList(data=get_service().list_events(tenant_of(list_session_events_router), sessionId))


provider_events_router = Router()


def _signed_body_schema() -> dict[str, Any]:
    schema = ProviderEventRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"content": {"application/json": {"schema": schema}}, "required": True}


@provider_events_router.post(
    "/v1/providers/<provider>/events",
    summary="A provider reports a transaction's new status (signed with Provider-Signature)",
    responses=_errors(400, 401, 404, 503),
    # The body is read raw (the signature covers its exact bytes), so its schema is declared here.
    openapi_extensions={"requestBody": _signed_body_schema()},
)
def receive_provider_event(provider: Annotated[str, Path(max_length=64)]) -> ProviderEventAck:
    from checkout_core import signatures

    service = get_service()
    secret = service.providers.webhook_secret(provider)
    if secret is None:
        raise InvalidRequest("Unknown provider.", "provider")
    event = provider_events_router.current_event
    raw = event.decoded_body or ""
    signatures.verify(secret, event.headers.get("Provider-Signature"), raw.encode(), int(time.time()))
    try:
        request = ProviderEventRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    result = service.apply_provider_event(provider, request)
    return ProviderEventAck(applied=result.applied)


pay_page_router = Router()

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1><p>{text}</p></main></body></html>"""


def _page(status: int, title: str, text: str) -> Response[str]:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text))
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(status_code=status, content_type="text/html; charset=utf-8", body=body, headers=headers)


@pay_page_router.get("/pay/<token>", summary="Hosted checkout page", include_in_schema=False)
def pay_page(token: str) -> Response[str]:
    session = get_service().pay_page_session(token)
    if session is None:
        return _page(404, "Checkout not found", "This checkout link is not valid.")
    if session.status is not SessionStatus.OPEN:
        return _page(
            410, "Checkout closed", f"This checkout is {session.status.value.lower().replace('_', ' ')}."
        )
    amount = f"{session.amount / 100:.2f} {session.currency}"
    return _page(200, "Checkout", f"Pay {amount} for {session.referenceId}.")


ALL_ROUTERS = [
    create_session_router,
    get_session_router,
    list_sessions_router,
    create_transaction_router,
    cancel_session_router,
    list_session_events_router,
    provider_events_router,
]
