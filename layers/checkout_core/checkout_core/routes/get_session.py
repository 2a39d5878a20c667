"""Get session: the route of functions/get_session."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from checkout_core.http import tenant_of
from checkout_core.models import (
    Session,
)
from checkout_core.routes import (
    SessionId,
    error_responses,
    get_context,
    success,
)

router = Router()


@router.get(
    "/v1/sessions/<sessionId>",
    operation_id="getSession",
    summary="Read one session",
    responses={**success(Session), **error_responses(400, 401, 404)},
)
def get_session(sessionId: SessionId) -> Session:
    from checkout_core.sessions import get_session as read

    return read(get_context(), tenant_of(router), sessionId)
