"""List sessions: the route of functions/list_sessions."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from checkout_core.http import tenant_of
from checkout_core.models import (
    SessionList,
)
from checkout_core.routes import (
    error_responses,
    get_context,
    refuse_unknown_query,
    success,
)
from checkout_core.transitions import SessionStatus

router = Router()


@router.get(
    "/v1/sessions",
    operation_id="listSessions",
    summary="List sessions, newest first",
    responses={**success(SessionList), **error_responses(400, 401)},
)
def list_sessions(
    status: Annotated[SessionStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    referenceId: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Only sessions with exactly this referenceId"),
    ] = None,
) -> SessionList:
    refuse_unknown_query(router, {"status", "limit", "cursor", "referenceId"})
    from checkout_core.sessions import list_sessions as list_page

    return list_page(get_context(), tenant_of(router), status, limit, cursor, referenceId)
