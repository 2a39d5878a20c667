"""Cancel session: the route of functions/cancel_session."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from checkout_core.http import tenant_of
from checkout_core.models import (
    CancelRequest,
    CancelResponse,
)
from checkout_core.routes import (
    SessionId,
    error_responses,
    get_context,
    success,
)

router = Router()


@router.post(
    "/v1/sessions/<sessionId>/cancel",
    operation_id="cancelSession",
    summary="Cancel a session",
    responses={**success(CancelResponse), **error_responses(400, 401, 404, 409, 422, 503)},
)
def cancel_session(
    sessionId: SessionId,
    body: Annotated[
        CancelRequest | None, Body(description="All fields optional; an empty body is a default cancel")
    ] = None,
) -> CancelResponse:
    from checkout_core.cancellation import cancel_session as cancel

    return cancel(get_context(), tenant_of(router), sessionId, body or CancelRequest())
