"""The routes: one module, one Router, per Lambda function, so a function imports only its own.

Each route takes validated input and makes one domain call; errors are answered by http.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import ValidationError

from checkout_core.errors import InvalidRequest
from checkout_core.models import ErrorResponse

if TYPE_CHECKING:
    from checkout_core.context import Context

SessionId = Annotated[str, Path(description="UUIDv7 of the session")]


def error_responses(*statuses: int) -> dict[int, Any]:
    described = {
        400: "invalid_request",
        401: "invalid_api_key / invalid_signature",
        402: "payment_declined: the transaction is kept, FAILED, with failureCode",
        404: "session_not_found / transaction_not_found",
        409: "state conflict or idempotency_in_progress",
        422: "idempotency_key_reused",
        503: "service_unavailable",
    }
    return {
        status: {"description": described[status], "content": {"application/json": {"model": ErrorResponse}}}
        for status in statuses
    }


def success(model: Any, status: int = 200, description: str = "OK") -> dict[int, Any]:
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}


def get_context() -> Context:
    """What the capabilities work with, built on first use: importing a handler stays cheap (cold starts)."""
    from checkout_core.context import get_context as context

    return context()


def created(model: Any) -> Response[str]:
    return Response(
        status_code=201, content_type=content_types.APPLICATION_JSON, body=model.model_dump_json()
    )


def invalid(exc: ValidationError) -> InvalidRequest:
    from checkout_core.http import param_of, validation_message

    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return InvalidRequest("The body is not valid JSON.", None)
    param = param_of(first.get("loc", ()))
    return InvalidRequest(
        validation_message(first.get("type", ""), param, first.get("msg", "is invalid")), param
    )


def refuse_unknown_query(router: Router, allowed: set[str]) -> None:
    for name in router.current_event.query_string_parameters or {}:
        if name not in allowed:
            raise InvalidRequest(f"Unknown query parameter {name}.", name)
