"""The console: the routes of functions/console (with routes/console_webhooks.py). HTML in and out;
signed in by a cookie, not an API key.

Each action is a call of the capability the API route makes (cancel with actor `console`, the webhook
endpoint operations); a refusal is shown on the page with the message the API would give."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ValidationError

from checkout_core import errors
from checkout_core.clock import is_uuid7
from checkout_core.console import access
from checkout_core.http import ERROR_TABLE
from checkout_core.routes import get_context
from checkout_core.routes.console_web import (
    action,
    answer,
    base,
    cookie,
    field,
    form,
    page,
    query,
    see_other,
    services,
    signed_in,
)
from checkout_core.transitions import SessionStatus

router = Router()


# -- signing in and out ----------------------------------------------------------------------------


@router.get("/console", include_in_schema=False)
def home() -> Response[str]:
    signed = signed_in()
    if signed is None:
        return _sign_in_form()
    from checkout_core.console.overview import overview
    from checkout_core.console.pages import overview_page

    ctx = get_context()
    data = overview(ctx, services(), signed.tenant)
    return answer(overview_page(base(), signed.form_token, signed.tenant.tenant_id, data, ctx.clock()))


def _sign_in_form(error: str | None = None, status: int = 200) -> Response[str]:
    from checkout_core.console.pages import sign_in_page

    nonce = access.new_form_nonce()
    shown = sign_in_page(base(), access.sign_in_form_token(nonce), error, status)
    return answer(shown, cookies=[cookie(access.FORM_COOKIE, nonce, access.FORM_COOKIE_SECONDS)])


@router.post("/console/sign-in", include_in_schema=False)
def sign_in() -> Response[str]:
    nonce = access.cookie_value(router.current_event.headers.get("Cookie"), access.FORM_COOKIE)
    try:
        fields = form()
        access.check_sign_in_form(nonce, fields)
    except access.FormRefused:
        return _sign_in_form("This page had expired. Please sign in again.", 403)
    signed = access.sign_in(get_context(), field(fields, "api_key"))
    if signed is None:
        return _sign_in_form("That API key is not valid.", 401)
    cookies = [
        cookie(access.SESSION_COOKIE, signed.cookie_value, access.SIGN_IN_SECONDS),
        cookie(access.FORM_COOKIE, "", 0),
    ]
    return see_other(base(), cookies)


@router.post("/console/sign-out", include_in_schema=False)
def sign_out() -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        access.sign_out(get_context(), signed)
        return see_other(base(), [cookie(access.SESSION_COOKIE, "", 0)])

    return action(act)


# -- sessions ----------------------------------------------------------------------------------------


@router.get("/console/sessions", include_in_schema=False)
def sessions() -> Response[str]:
    def render(signed: access.SignedIn) -> Response[str]:
        from checkout_core.console.pages import sessions_page
        from checkout_core.models import SessionList
        from checkout_core.sessions import get_session, list_sessions

        ctx = get_context()
        wanted = query("status")
        status = SessionStatus(wanted) if wanted in SessionStatus.__members__ else None
        found = query("q").strip()[:64]
        cursor = query("cursor")[:512] or None
        notice = None
        if found and is_uuid7(found):
            try:
                listed = SessionList(data=[get_session(ctx, signed.tenant, found)])
            except errors.SessionNotFound:
                listed, notice = SessionList(data=[]), "No session of this account has that id."
        else:
            try:
                listed = list_sessions(ctx, signed.tenant, status, 20, cursor, found or None)
            except errors.InvalidRequest:
                listed, notice = SessionList(data=[]), "That page link is no longer valid."
        return answer(
            sessions_page(base(), signed.form_token, signed.tenant.tenant_id, listed, status, found, notice)
        )

    return page(render)


def _render_session(
    signed: access.SignedIn,
    session_id: str,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response[str]:
    from checkout_core.console.pages import session_page
    from checkout_core.sessions import get_session, list_events

    ctx = get_context()
    session = get_session(ctx, signed.tenant, session_id)
    events = list_events(ctx, signed.tenant, session_id)
    shown = session_page(
        base(), signed.form_token, signed.tenant.tenant_id, session, events, notice, error, status
    )
    return answer(shown)


def _session_id(session_id: str) -> str:
    if not is_uuid7(session_id):
        raise errors.SessionNotFound(session_id)
    return session_id


@router.get("/console/sessions/<sessionId>", include_in_schema=False)
def session(sessionId: str) -> Response[str]:
    from checkout_core.console.pages import NOTICES

    return page(lambda signed: _render_session(signed, _session_id(sessionId), NOTICES.get(query("done"))))


@router.post("/console/sessions/<sessionId>/cancel", include_in_schema=False)
def cancel(sessionId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.cancellation import cancel_session
        from checkout_core.models import CancelRequest

        session_id = _session_id(sessionId)
        body = {
            "reason": field(fields, "reason") or None,
            "reasonType": field(fields, "reasonType") or None,
            "whenInFlight": field(fields, "whenInFlight") or "WAIT",
        }
        try:
            request = CancelRequest.model_validate_json(json.dumps(body))
        except ValidationError:
            return _render_session(
                signed, session_id, error="The cancel form was not filled in right.", status=400
            )
        try:
            answer = cancel_session(get_context(), signed.tenant, session_id, request, actor="console")
        except (errors.StateConflict, errors.InvalidRequest) as exc:
            status = next(spec.status for kind, spec in ERROR_TABLE if isinstance(exc, kind))
            return _render_session(signed, session_id, error=f"Not cancelled: {exc.message}", status=status)
        done = "pending" if answer.status is SessionStatus.PENDING_CANCELLATION else "cancelled"
        return see_other(f"{base()}/sessions/{session_id}?done={done}#timeline")

    return action(act)
