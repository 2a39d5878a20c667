"""The hosted checkout page: the routes of functions/pay_page. HTML in and out; no API key.

The pay token is a secret in the path: it is never logged, and never written anywhere but the page.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from checkout_core import errors
from checkout_core.hosted import checkout
from checkout_core.hosted.pages import Page, checkout_page, closed_page, message_page
from checkout_core.http import public_base_url
from checkout_core.observability import logger
from checkout_core.routes import get_context
from checkout_core.transitions import SessionStatus

router = Router()

_HTML = {"text/html": {"schema": {"type": "string"}}}
_PAGE_RESPONSES: dict[int, Any] = {
    200: {"description": "The checkout page", "content": _HTML},
    404: {"description": "No checkout for this link", "content": _HTML},
    410: {"description": "The session is no longer OPEN; the page says why", "content": _HTML},
}
_FORM_RESPONSES: dict[int, Any] = {
    303: {"description": "Sent on: to the merchant's cancelUrl / returnUrl, or back to the page"},
    403: {"description": "No valid anti-forgery token: nothing changed", "content": _HTML},
    404: {"description": "No checkout for this link", "content": _HTML},
    409: {
        "description": "A payment is in flight: it cannot be cancelled, nor another start; nothing changed",
        "content": _HTML,
    },
    410: {"description": "The session is no longer OPEN", "content": _HTML},
}
# Set when Pay sends the customer to their provider's page: the page's token, to lead them back to it from
# the attempt's return link (the link itself never serves the page). One per session, so that two
# checkouts open in one browser do not take each other's way back.
RETURNING_COOKIE_PREFIX = "checkout_returning_"
_NOT_FOUND = ("Checkout not found", "This checkout link is not valid. Ask the merchant for a new one.")
_BUSY = ("Please try again", "We could not complete this just now; nothing was changed. Please try again.")


@router.get(
    "/pay/<token>", operation_id="showPayPage", summary="Hosted checkout page", responses=_PAGE_RESPONSES
)
def show_page(token: str) -> Response[str]:
    ctx = get_context()
    hosted = checkout.find(ctx, token)
    if hosted is None:
        return _answer(message_page(404, *_NOT_FOUND))
    if hosted.session.status is not SessionStatus.OPEN:
        return _answer(_closed(hosted))
    return _render_open(token, hosted, page_ref=token)


@router.head(
    "/pay/<token>",
    operation_id="showPayPageHeaders",
    summary="Hosted checkout page: the headers of GET, no body",
    responses=_PAGE_RESPONSES,
)
def show_page_headers(token: str) -> Response[str]:
    return show_page(token)


@router.post(
    "/pay/<token>/cancel",
    operation_id="cancelFromPayPage",
    summary="The customer cancels from the hosted page",
    responses=_FORM_RESPONSES,
)
def cancel_from_page(token: str) -> Response[str]:
    posted = _posted_form(token, "cancel")
    if isinstance(posted, Response):
        return posted
    hosted, _, _ = posted
    try:
        session = checkout.cancel(get_context(), hosted)
    except errors.TransactionsInFlight:
        notice = (
            "A payment is already being processed and can no longer be cancelled here. "
            "Nothing was changed; if the payment does not go through, you can cancel then."
        )
        return _render_open(token, hosted, _page_link(token)[0], notice=notice, status=409)
    except (errors.StateConflict, errors.ConcurrentUpdate, errors.ServiceUnavailable) as exc:
        return _refused_write(hosted, exc)
    return _see_other(checkout.back_to_merchant(session, session.status, cancelled=True))


@router.post(
    "/pay/<token>/pay",
    operation_id="payFromPayPage",
    summary="The customer pays with a test method (where HOSTED_TEST_PAYMENTS)",
    responses=_FORM_RESPONSES,
)
def pay_from_page(token: str) -> Response[str]:
    posted = _posted_form(token, "pay")
    if isinstance(posted, Response):
        return posted
    hosted, fields, nonce = posted
    ctx = get_context()
    base_url = public_base_url(router, ctx.settings.public_base_url)
    try:
        transaction = checkout.pay(ctx, hosted, fields.get("method", ""), nonce, base_url)
    except checkout.FormRefused as exc:
        return _answer(message_page(400, "Payment not started", str(exc), link=_page_link(token)))
    except errors.PaymentInFlight:
        # Whatever form was posted: one payment at a time, and this one is already under way.
        current = checkout.find(ctx, token) or hosted
        if current.session.status is not SessionStatus.OPEN:
            return _answer(_closed(current))
        notice = "A payment is already being processed for this checkout. Nothing was changed."
        return _render_open(token, current, _page_link(token)[0], notice=notice, status=409)
    except (errors.StateConflict, errors.ConcurrentUpdate, errors.ServiceUnavailable) as exc:
        return _refused_write(hosted, exc)
    if transaction.nextAction is not None:
        # The provider needs the customer (3-D Secure): off to its page, which brings them back to the
        # attempt's return link; this browser's cookie then leads back to this page if they did not pay.
        returning = Cookie(
            name=_returning_cookie(hosted.session.sessionId),
            value=token,
            path=f"{urlsplit(base_url).path.rstrip('/')}/pay/",
            secure=_over_https(),
            http_only=True,
            same_site=SameSite.LAX_MODE,  # sent on the provider's redirect back, a top-level GET
            max_age=checkout.FORM_COOKIE_MAX_AGE_SECONDS,
        )
        return _see_other(transaction.nextAction.url, cookies=[returning])
    paid = checkout.find(ctx, token)
    if paid is not None and paid.session.status is SessionStatus.COMPLETED:
        # Paid at once: straight on to the merchant, not through the closed page.
        return _see_other(checkout.back_to_merchant(paid.session, SessionStatus.COMPLETED))
    return _see_other(_page_link(token)[0])


@router.get(
    "/pay/<token>/return",
    operation_id="returnToPayPage",
    summary="The customer is back from the provider's page (3-D Secure, their bank)",
    responses={
        303: {
            "description": "Paid: on to the merchant's returnUrl with sessionId and status=COMPLETED; "
            "not paid: back to the hosted page (from which the customer came) or the returnUrl with "
            "status=OPEN"
        },
        404: _PAGE_RESPONSES[404],
        410: _PAGE_RESPONSES[410],
    },
)
def return_from_provider(token: str) -> Response[str]:
    """Records what the provider says of the attempt the customer was sent away for, as its webhook
    would, then shows the outcome: paid, on to the merchant's returnUrl; not paid, back to the hosted page
    when this browser came from it, else to the merchant's returnUrl with status OPEN (the merchant's own
    page offers another try); the closed page when the session closed meanwhile."""
    ctx = get_context()
    found = checkout.find_return(ctx, token)
    if found is None:
        return _answer(message_page(404, *_NOT_FOUND))
    hosted, transaction_id = found
    returned = router.current_event.query_string_parameters or {}
    if hosted.session.status is SessionStatus.OPEN:
        hosted = checkout.complete_return(ctx, hosted, transaction_id, returned)
    session = hosted.session
    if session.status is SessionStatus.COMPLETED:
        return _see_other(checkout.back_to_merchant(session, SessionStatus.COMPLETED))
    if session.status is not SessionStatus.OPEN:
        return _answer(_closed(hosted))
    page_token = _cookie(_returning_cookie(session.sessionId))
    if page_token and checkout.is_page_of(ctx, page_token, session.sessionId):
        return _see_other(_page_link(page_token)[0])
    return _see_other(checkout.back_to_merchant(session, SessionStatus.OPEN))


def _posted_form(
    token: str, action: str
) -> tuple[checkout.HostedSession, dict[str, str], str] | Response[str]:
    """What every form post checks first: the checkout exists, the form is the page's own form for this
    action (anti-forgery), and the session is still OPEN. Its session, fields and nonce; or the page that
    answers instead."""
    hosted = checkout.find(get_context(), token)
    if hosted is None:
        return _answer(message_page(404, *_NOT_FOUND))
    nonce = _form_nonce(token)
    try:
        fields = checkout.parse_form(router.current_event.decoded_body or "")
        checkout.check_form(token, nonce, fields, action)
    except checkout.FormRefused as exc:
        logger.warning("hosted page form refused: no valid anti-forgery token")
        return _answer(message_page(403, "This page has expired", str(exc), link=_page_link(token)))
    if hosted.session.status is not SessionStatus.OPEN:
        return _answer(_closed(hosted))
    return hosted, fields, nonce or ""


def _refused_write(hosted: checkout.HostedSession, exc: errors.DomainError) -> Response[str]:
    """The session moved on meanwhile (its status is in the refusal), or the write could not be made."""
    if isinstance(exc, errors.StateConflict):
        moved_on = hosted.session.model_copy(update={"status": SessionStatus(exc.current_status)})
        return _answer(_closed(replace(hosted, session=moved_on)))
    return _answer(message_page(503, *_BUSY))


def _render_open(
    token: str,
    hosted: checkout.HostedSession,
    page_ref: str,
    notice: str | None = None,
    status: int = 200,
) -> Response[str]:
    """`page_ref` is the page's address relative to the one requested: links hold behind a stage prefix."""
    ctx = get_context()
    nonce = checkout.new_form_nonce()
    page = checkout_page(
        hosted.session,
        page_ref,
        {action: checkout.form_token(token, nonce, action) for action in checkout.ACTIONS},
        checkout.test_methods(ctx),
        ctx.clock(),
        [*checkout.merchant_origins(hosted.session), *checkout.provider_page_origins(ctx)],
        merchant=hosted.merchant_name,
        notice=notice,
        status=status,
        in_flight=checkout.payment_in_flight(hosted.session),
        waiting_at=(
            checkout.waiting_action(hosted.session)
            if checkout.waits_for_customer_only(hosted.session)
            else None
        ),
        last_failed=checkout.last_attempt_failed(hosted.session),
    )
    cookie = Cookie(
        name=checkout.form_cookie_name(token),
        value=nonce,
        secure=_over_https(),
        http_only=True,
        same_site=SameSite.STRICT_MODE,
        max_age=checkout.FORM_COOKIE_MAX_AGE_SECONDS,
    )
    return _answer(page, cookies=[cookie])


def _closed(hosted: checkout.HostedSession) -> Page:
    """Why the checkout is closed, with what it was for and a way back; a paid one sends the customer
    back at once."""
    session = hosted.session
    back = checkout.back_to_merchant(session, session.status)
    paid = session.status is SessionStatus.COMPLETED
    heading = "Payment received" if paid else "This checkout is closed"
    return closed_page(
        session,
        heading,
        checkout.describe_closed(session),
        back,
        go_back_now=paid,
        merchant=hosted.merchant_name,
    )


def _returning_cookie(session_id: str) -> str:
    return RETURNING_COOKIE_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()[:16]


def _form_nonce(token: str) -> str | None:
    return _cookie(checkout.form_cookie_name(token))


def _cookie(name: str) -> str | None:
    header = router.current_event.headers.get("Cookie") or ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def _page_link(token: str) -> tuple[str, str]:
    # Relative to /pay/<token>/<action>.
    return (f"../{token}", "Back to the checkout")


def _over_https() -> bool:
    return (router.current_event.headers.get("X-Forwarded-Proto") or "").lower() == "https"


def _answer(page: Page, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        status_code=page.status,
        content_type="text/html; charset=utf-8",
        body=page.html,
        headers=page.headers(),
        cookies=cookies,
    )


def _see_other(location: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        status_code=303,
        content_type="text/html; charset=utf-8",
        body="",
        headers={**Page(303, "").headers(), "Location": location},
        cookies=cookies,
    )
