"""List session events: the route of functions/list_session_events."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from checkout_core.http import tenant_of
from checkout_core.models import (
    EventList,
)
from checkout_core.routes import (
    SessionId,
    error_responses,
    get_context,
    success,
)

router = Router()


@router.get(
    "/v1/sessions/<sessionId>/events",
    operation_id="listSessionEvents",
    summary="The session's audit timeline",
    responses={**success(EventList), **error_responses(400, 401, 404)},
)
def list_session_events(sessionId: SessionId) -> EventList:
    from checkout_core.sessions import list_events

    return EventList(data=list_events(get_context(), tenant_of(router), sessionId))
