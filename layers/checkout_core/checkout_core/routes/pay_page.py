"""Pay page: the route of functions/pay_page."""

from __future__ import annotations

import html

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from checkout_core.routes import (
    get_context,
)
from checkout_core.transitions import SessionStatus

router = Router()

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1><p>{text}</p></main></body></html>"""


def _page(status: int, title: str, text: str) -> Response[str]:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text))
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(status_code=status, content_type="text/html; charset=utf-8", body=body, headers=headers)


@router.get("/pay/<token>", summary="Hosted checkout page", include_in_schema=False)
def pay_page(token: str) -> Response[str]:
    from checkout_core.sessions import pay_page_session

    session = pay_page_session(get_context(), token)
    if session is None:
        return _page(404, "Checkout not found", "This checkout link is not valid.")
    if session.status is not SessionStatus.OPEN:
        return _page(
            410, "Checkout closed", f"This checkout is {session.status.value.lower().replace('_', ' ')}."
        )
    amount = f"{session.amount / 100:.2f} {session.currency}"
    return _page(200, "Checkout", f"Pay {amount} for {session.referenceId}.")
