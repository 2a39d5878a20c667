"""Create session: the route of functions/create_session."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from checkout_core.http import public_base_url, tenant_of
from checkout_core.models import (
    CreateSessionRequest,
    Session,
)
from checkout_core.routes import (
    created,
    error_responses,
    get_context,
)

router = Router()


@router.post(
    "/v1/sessions",
    operation_id="createSession",
    summary="Create a checkout session",
    responses={
        201: {"description": "Created", "content": {"application/json": {"model": Session}}},
        **error_responses(400, 401, 409, 422, 503),
    },
)
def create_session(body: CreateSessionRequest) -> Response[str]:
    from checkout_core.sessions import create_session as create

    context = get_context()
    base_url = public_base_url(router, context.settings.public_base_url)
    return created(create(context, tenant_of(router), body, base_url))
