"""The console: the routes of functions/console. HTML in and out; signed in by a cookie, not an API key.

Each action is a call of the capability the API route makes (cancel with actor `console`, the webhook
endpoint operations); a refusal is shown on the page with the message the API would give."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from pydantic import ValidationError

from checkout_core import errors
from checkout_core.clock import is_uuid7, to_iso
from checkout_core.console import access
from checkout_core.console.layout import ConsolePage, headers, message
from checkout_core.http import ERROR_TABLE
from checkout_core.models import DeliveryStatus, Tenant
from checkout_core.routes import get_context
from checkout_core.transitions import SessionStatus

router = Router()

_NOT_FOUND = ("Not found", "There is no such page in this console.")
_SESSION_NOT_FOUND = ("Session not found", "No session of this account has that id.")
_ENDPOINT_NOT_FOUND = ("Endpoint not found", "No webhook endpoint of this account has that id.")


def _services() -> Any:
    from checkout_core.webhooks.services import get_services

    return get_services()


# -- the plumbing of every page ------------------------------------------------------------------


def _base() -> str:
    """The console's path as the browser sees it: behind API Gateway's stage prefix on its own host."""
    event = router.current_event
    host = event.headers.get("Host") or event.headers.get("host") or ""
    stage = (event.raw_event.get("requestContext") or {}).get("stage")
    return (f"/{stage}" if stage and ".execute-api." in host else "") + "/console"


def _over_https() -> bool:
    return (router.current_event.headers.get("X-Forwarded-Proto") or "").lower() == "https"


def _cookie(name: str, value: str, max_age: int) -> Cookie:
    return Cookie(
        name=name,
        value=value,
        path=_base(),
        secure=_over_https(),
        http_only=True,
        same_site=SameSite.STRICT_MODE,
        max_age=max_age,
    )


def _answer(page: ConsolePage, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        status_code=page.status,
        content_type="text/html; charset=utf-8",
        body=page.html,
        headers=headers(),
        cookies=cookies,
    )


def _see_other(location: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        status_code=303,
        content_type="text/html; charset=utf-8",
        body="",
        headers={**headers(), "Location": location},
        cookies=cookies,
    )


def _signed_in() -> access.SignedIn | None:
    cookie = access.cookie_value(router.current_event.headers.get("Cookie"), access.SESSION_COOKIE)
    return access.signed_in(get_context(), cookie)


def _form() -> dict[str, list[str]]:
    return access.parse_form(router.current_event.decoded_body or "")


def _field(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[0]


def _query(name: str) -> str:
    return (router.current_event.query_string_parameters or {}).get(name) or ""


Page = Callable[[access.SignedIn], Response[str]]
Action = Callable[[access.SignedIn, dict[str, list[str]]], Response[str]]


def _page(render: Page) -> Response[str]:
    """A page for the signed-in only; anyone else is sent to sign in."""
    signed = _signed_in()
    if signed is None:
        return _see_other(_base())
    try:
        return render(signed)
    except errors.DomainError as exc:
        return _refused(signed, exc)


def _action(act: Action) -> Response[str]:
    """A form post: signed in, and the form is one the console gave this sign-in (anti-forgery)."""
    signed = _signed_in()
    if signed is None:
        return _see_other(_base())
    try:
        fields = _form()
        access.check_signed_in_form(signed, fields)
    except access.FormRefused:
        return _answer(
            message(
                403,
                "This form has expired",
                "Nothing was changed. Open the page again and retry.",
                _base(),
                signed.form_token,
                signed.tenant.tenant_id,
            )
        )
    try:
        return act(signed, fields)
    except errors.DomainError as exc:
        return _refused(signed, exc)


def _refused(signed: access.SignedIn, exc: errors.DomainError) -> Response[str]:
    """The status and words the API would answer, as a page."""
    status = next((spec.status for kind, spec in ERROR_TABLE if isinstance(exc, kind)), 500)
    titles = {
        errors.SessionNotFound: _SESSION_NOT_FOUND,
        errors.EndpointNotFound: _ENDPOINT_NOT_FOUND,
        errors.DeliveryNotFound: ("Delivery not found", "This endpoint has no such delivery."),
    }
    title, text = next(
        (words for kind, words in titles.items() if isinstance(exc, kind)), ("Not done", exc.message)
    )
    return _answer(message(status, title, text, _base(), signed.form_token, signed.tenant.tenant_id))


# -- signing in and out ----------------------------------------------------------------------------


@router.get("/console", include_in_schema=False)
def home() -> Response[str]:
    signed = _signed_in()
    if signed is None:
        return _sign_in_form()
    from checkout_core.console.overview import overview
    from checkout_core.console.pages import overview_page

    ctx = get_context()
    data = overview(ctx, _services(), signed.tenant)
    return _answer(overview_page(_base(), signed.form_token, signed.tenant.tenant_id, data, ctx.clock()))


def _sign_in_form(error: str | None = None, status: int = 200) -> Response[str]:
    from checkout_core.console.pages import sign_in_page

    nonce = access.new_form_nonce()
    page = sign_in_page(_base(), access.sign_in_form_token(nonce), error, status)
    return _answer(page, cookies=[_cookie(access.FORM_COOKIE, nonce, access.FORM_COOKIE_SECONDS)])


@router.post("/console/sign-in", include_in_schema=False)
def sign_in() -> Response[str]:
    nonce = access.cookie_value(router.current_event.headers.get("Cookie"), access.FORM_COOKIE)
    try:
        fields = _form()
        access.check_sign_in_form(nonce, fields)
    except access.FormRefused:
        return _sign_in_form("This page had expired. Please sign in again.", 403)
    signed = access.sign_in(get_context(), _field(fields, "api_key"))
    if signed is None:
        return _sign_in_form("That API key is not valid.", 401)
    cookies = [
        _cookie(access.SESSION_COOKIE, signed.cookie_value, access.SIGN_IN_SECONDS),
        _cookie(access.FORM_COOKIE, "", 0),
    ]
    return _see_other(_base(), cookies)


@router.post("/console/sign-out", include_in_schema=False)
def sign_out() -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        access.sign_out(get_context(), signed)
        return _see_other(_base(), [_cookie(access.SESSION_COOKIE, "", 0)])

    return _action(act)


# -- sessions ----------------------------------------------------------------------------------------


@router.get("/console/sessions", include_in_schema=False)
def sessions() -> Response[str]:
    def render(signed: access.SignedIn) -> Response[str]:
        from checkout_core.console.pages import sessions_page
        from checkout_core.models import SessionList
        from checkout_core.sessions import get_session, list_sessions

        ctx = get_context()
        wanted = _query("status")
        status = SessionStatus(wanted) if wanted in SessionStatus.__members__ else None
        found = _query("q").strip()[:64]
        cursor = _query("cursor")[:512] or None
        notice = None
        if found and is_uuid7(found):
            try:
                page = SessionList(data=[get_session(ctx, signed.tenant, found)])
            except errors.SessionNotFound:
                page, notice = SessionList(data=[]), "No session of this account has that id."
        else:
            try:
                page = list_sessions(ctx, signed.tenant, status, 20, cursor, found or None)
            except errors.InvalidRequest:
                page, notice = SessionList(data=[]), "That page link is no longer valid."
        return _answer(
            sessions_page(_base(), signed.form_token, signed.tenant.tenant_id, page, status, found, notice)
        )

    return _page(render)


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
    page = session_page(
        _base(), signed.form_token, signed.tenant.tenant_id, session, events, notice, error, status
    )
    return _answer(page)


def _session_id(session_id: str) -> str:
    if not is_uuid7(session_id):
        raise errors.SessionNotFound(session_id)
    return session_id


@router.get("/console/sessions/<sessionId>", include_in_schema=False)
def session(sessionId: str) -> Response[str]:
    from checkout_core.console.pages import NOTICES

    return _page(lambda signed: _render_session(signed, _session_id(sessionId), NOTICES.get(_query("done"))))


@router.post("/console/sessions/<sessionId>/cancel", include_in_schema=False)
def cancel(sessionId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.cancellation import cancel_session
        from checkout_core.models import CancelRequest

        session_id = _session_id(sessionId)
        body = {
            "reason": _field(fields, "reason") or None,
            "reasonType": _field(fields, "reasonType") or None,
            "whenInFlight": _field(fields, "whenInFlight") or "WAIT",
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
        return _see_other(f"{_base()}/sessions/{session_id}?done={done}#timeline")

    return _action(act)


# -- webhook endpoints -------------------------------------------------------------------------------


def _endpoints(tenant: Tenant) -> list[Any]:
    """Every endpoint of the tenant (at most 16: one page of the API's own list)."""
    from checkout_core.webhooks.endpoints import list_endpoints
    from checkout_core.webhooks.store import MAX_ENDPOINTS

    return list(list_endpoints(_services(), tenant, MAX_ENDPOINTS, None).data)


def _endpoints_answer(
    signed: access.SignedIn, notice: str | None = None, error: str | None = None, status: int = 200
) -> Response[str]:
    from checkout_core.console.webhook_pages import endpoints_page

    page = endpoints_page(
        _base(), signed.form_token, signed.tenant.tenant_id, _endpoints(signed.tenant), notice, error, status
    )
    return _answer(page)


@router.get("/console/webhooks", include_in_schema=False)
def webhooks() -> Response[str]:
    notices = {"deleted": "The endpoint was deleted; its pending deliveries were dropped."}
    return _page(lambda signed: _endpoints_answer(signed, notices.get(_query("done"))))


def _endpoint_request(fields: dict[str, list[str]], model: Any) -> Any:
    body: dict[str, Any] = {"url": _field(fields, "url"), "eventTypes": fields.get("eventTypes", [])}
    description = _field(fields, "description")
    body["description"] = description or None
    return model.model_validate_json(json.dumps(body))


def _invalid(exc: ValidationError) -> str:
    from checkout_core.routes import invalid

    return invalid(exc).message


@router.post("/console/webhooks", include_in_schema=False)
def create_endpoint() -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.models import CreateEndpointRequest
        from checkout_core.webhooks.endpoints import create_endpoint as create

        try:
            request = _endpoint_request(fields, CreateEndpointRequest)
        except ValidationError as exc:
            return _endpoints_answer(signed, error=f"Not added: {_invalid(exc)}", status=400)
        try:
            created = create(_services(), signed.tenant, request)
        except (errors.InvalidRequest, errors.EndpointLimitReached) as exc:
            return _endpoints_answer(signed, error=f"Not added: {exc.message}", status=400)
        return _endpoint_answer(
            signed, created.endpointId, notice="The endpoint was added.", secret=created.secret, status=201
        )

    return _action(act)


def _endpoint_answer(
    signed: access.SignedIn,
    endpoint_id: str,
    notice: str | None = None,
    error: str | None = None,
    secret: str | None = None,
    status: int = 200,
) -> Response[str]:
    from checkout_core.console.webhook_pages import endpoint_page
    from checkout_core.webhooks.deliveries import list_deliveries
    from checkout_core.webhooks.endpoints import get_endpoint

    services = _services()
    endpoint = get_endpoint(services, signed.tenant, endpoint_id)
    wanted = _query("status") if router.current_event.http_method == "GET" else ""
    status_filter = DeliveryStatus(wanted) if wanted in DeliveryStatus.__members__ else None
    cursor = (_query("cursor")[:512] or None) if router.current_event.http_method == "GET" else None
    try:
        deliveries = list_deliveries(services, signed.tenant, endpoint_id, status_filter, 20, cursor)
    except errors.InvalidRequest:
        deliveries = list_deliveries(services, signed.tenant, endpoint_id, status_filter, 20, None)
    page = endpoint_page(
        _base(),
        signed.form_token,
        signed.tenant.tenant_id,
        endpoint,
        deliveries,
        status_filter,
        notice,
        error,
        secret,
        status,
    )
    return _answer(page)


def _endpoint_id(endpoint_id: str) -> str:
    if not is_uuid7(endpoint_id):
        raise errors.EndpointNotFound(endpoint_id)
    return endpoint_id


_ENDPOINT_NOTICES = {
    "saved": "The endpoint was saved.",
    "status": "The endpoint's status was changed.",
    "test": "A webhook.test event was queued; it appears in the log below.",
    "resent": "The delivery was queued for one more attempt.",
}


@router.get("/console/webhooks/<endpointId>", include_in_schema=False)
def endpoint(endpointId: str) -> Response[str]:
    return _page(
        lambda signed: _endpoint_answer(
            signed, _endpoint_id(endpointId), _ENDPOINT_NOTICES.get(_query("done"))
        )
    )


def _back(endpoint_id: str, done: str) -> Response[str]:
    return _see_other(f"{_base()}/webhooks/{endpoint_id}?done={done}")


@router.post("/console/webhooks/<endpointId>", include_in_schema=False)
def update_endpoint(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.models import UpdateEndpointRequest
        from checkout_core.webhooks.endpoints import update_endpoint as update

        endpoint_id = _endpoint_id(endpointId)
        try:
            request = _endpoint_request(fields, UpdateEndpointRequest)
        except ValidationError as exc:
            return _endpoint_answer(signed, endpoint_id, error=f"Not saved: {_invalid(exc)}", status=400)
        try:
            update(_services(), signed.tenant, endpoint_id, request)
        except errors.InvalidRequest as exc:
            return _endpoint_answer(signed, endpoint_id, error=f"Not saved: {exc.message}", status=400)
        return _back(endpoint_id, "saved")

    return _action(act)


@router.post("/console/webhooks/<endpointId>/status", include_in_schema=False)
def set_status(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.models import UpdateEndpointRequest
        from checkout_core.webhooks.endpoints import update_endpoint as update

        endpoint_id = _endpoint_id(endpointId)
        try:
            request = UpdateEndpointRequest.model_validate_json(
                json.dumps({"status": _field(fields, "status")})
            )
        except ValidationError:
            return _endpoint_answer(signed, endpoint_id, error="Unknown status.", status=400)
        update(_services(), signed.tenant, endpoint_id, request)
        return _back(endpoint_id, "status")

    return _action(act)


@router.post("/console/webhooks/<endpointId>/rotate-secret", include_in_schema=False)
def rotate(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.endpoints import rotate_secret

        endpoint_id = _endpoint_id(endpointId)
        rotated = rotate_secret(_services(), signed.tenant, endpoint_id)
        notice = "A new secret signs from now on; the old one keeps signing alongside for 24 hours."
        return _endpoint_answer(signed, endpoint_id, notice=notice, secret=rotated.secret)

    return _action(act)


@router.post("/console/webhooks/<endpointId>/delete", include_in_schema=False)
def delete(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.endpoints import delete_endpoint

        delete_endpoint(_services(), signed.tenant, _endpoint_id(endpointId))
        return _see_other(f"{_base()}/webhooks?done=deleted")

    return _action(act)


@router.post("/console/webhooks/<endpointId>/test", include_in_schema=False)
def test(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.endpoints import send_test

        endpoint_id = _endpoint_id(endpointId)
        send_test(_services(), signed.tenant, endpoint_id)
        return _back(endpoint_id, "test")

    return _action(act)


@router.post("/console/webhooks/<endpointId>/deliveries/<deliveryId>/resend", include_in_schema=False)
def resend(endpointId: str, deliveryId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.deliveries import resend as resend_delivery

        endpoint_id = _endpoint_id(endpointId)
        if not is_uuid7(deliveryId):
            raise errors.DeliveryNotFound(deliveryId)
        resend_delivery(_services(), signed.tenant, endpoint_id, deliveryId)
        return _back(endpoint_id, "resent")

    return _action(act)


@router.post("/console/webhooks/<endpointId>/recover", include_in_schema=False)
def recover(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.deliveries import recover as recover_deliveries

        endpoint_id = _endpoint_id(endpointId)
        since = _since(_field(fields, "since"))
        if since is None:
            return _endpoint_answer(signed, endpoint_id, error="Give the time to recover from.", status=400)
        answer = recover_deliveries(_services(), signed.tenant, endpoint_id, since)
        return _endpoint_answer(signed, endpoint_id, notice=f"{answer.recovered} deliveries queued again.")

    return _action(act)


def _since(text: str) -> str | None:
    """A datetime-local value (no zone; the form says UTC) as the API's time."""
    for shape in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return to_iso(datetime.strptime(text, shape).replace(tzinfo=UTC))
        except ValueError:
            continue
    return None
