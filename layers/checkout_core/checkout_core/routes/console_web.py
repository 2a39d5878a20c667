"""What every console page and form shares: where the console is, its answers and cookies, who is signed
in, the anti-forgery check of a form post, and a refusal shown with the API's own status and words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from checkout_core import errors
from checkout_core.console import access
from checkout_core.console.layout import ConsolePage, headers, message
from checkout_core.http import ERROR_TABLE
from checkout_core.routes import get_context


def _event() -> BaseProxyEvent:
    """The request being answered (Powertools keeps it for every router of the resolver)."""
    return BaseRouter.current_event


_SESSION_NOT_FOUND = ("Session not found", "No session of this account has that id.")
_ENDPOINT_NOT_FOUND = ("Endpoint not found", "No webhook endpoint of this account has that id.")


def services() -> Any:
    from checkout_core.webhooks.services import get_services

    return get_services()


def base() -> str:
    """The console's path as the browser sees it: behind API Gateway's stage prefix on its own host."""
    event = _event()
    host = event.headers.get("Host") or event.headers.get("host") or ""
    stage = (event.raw_event.get("requestContext") or {}).get("stage")
    return (f"/{stage}" if stage and ".execute-api." in host else "") + "/console"


def over_https() -> bool:
    return (_event().headers.get("X-Forwarded-Proto") or "").lower() == "https"


def cookie(name: str, value: str, max_age: int) -> Cookie:
    return Cookie(
        name=name,
        value=value,
        path=base(),
        secure=over_https(),
        http_only=True,
        same_site=SameSite.STRICT_MODE,
        max_age=max_age,
    )


def answer(page: ConsolePage, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        status_code=page.status,
        content_type="text/html; charset=utf-8",
        body=page.html,
        headers=headers(),
        cookies=cookies,
    )


def see_other(location: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        status_code=303,
        content_type="text/html; charset=utf-8",
        body="",
        headers={**headers(), "Location": location},
        cookies=cookies,
    )


def signed_in() -> access.SignedIn | None:
    cookie = access.cookie_value(_event().headers.get("Cookie"), access.SESSION_COOKIE)
    return access.signed_in(get_context(), cookie)


def form() -> dict[str, list[str]]:
    return access.parse_form(_event().decoded_body or "")


def field(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[0]


def query(name: str) -> str:
    return (_event().query_string_parameters or {}).get(name) or ""


Page = Callable[[access.SignedIn], Response[str]]
Action = Callable[[access.SignedIn, dict[str, list[str]]], Response[str]]


def page(render: Page) -> Response[str]:
    """A page for the signed-in only; anyone else is sent to sign in."""
    signed = signed_in()
    if signed is None:
        return see_other(base())
    try:
        return render(signed)
    except errors.DomainError as exc:
        return refused(signed, exc)


def action(act: Action) -> Response[str]:
    """A form post: signed in, and the form is one the console gave this sign-in (anti-forgery)."""
    signed = signed_in()
    if signed is None:
        return see_other(base())
    try:
        fields = form()
        access.check_signed_in_form(signed, fields)
    except access.FormRefused:
        return answer(
            message(
                403,
                "This form has expired",
                "Nothing was changed. Open the page again and retry.",
                base(),
                signed.form_token,
                signed.tenant.tenant_id,
            )
        )
    try:
        return act(signed, fields)
    except errors.DomainError as exc:
        return refused(signed, exc)


def refused(signed: access.SignedIn, exc: errors.DomainError) -> Response[str]:
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
    return answer(message(status, title, text, base(), signed.form_token, signed.tenant.tenant_id))
