"""The hosted page's HTML: no script, no asset from another host, one inline style pinned by its hash."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from checkout_core.clock import from_iso
from checkout_core.hosted.checkout import TestMethod
from checkout_core.models import Session
from checkout_core.money import format_amount

STYLE = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1a1a1a;background:#f4f5f7}
body{margin:0;padding:1rem;display:flex;justify-content:center}
main{background:#fff;max-width:28rem;width:100%;padding:1.5rem;border-radius:.75rem;
box-shadow:0 1px 4px #0002}
.merchant{font-weight:600;color:#4a4a4a;margin:0 0 .5rem;overflow-wrap:anywhere}
h1{font-size:1.25rem;margin:0 0 1rem}
.amount{font-size:2.25rem;font-weight:700;margin:.25rem 0 1rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem;margin:0 0 1.5rem}
dt{color:#4a4a4a}dd{margin:0;overflow-wrap:anywhere}
form{margin:.75rem 0;display:grid;gap:.75rem}
button{width:100%;font:inherit;font-weight:600;padding:.8rem 1rem;border-radius:.5rem;cursor:pointer;
border:2px solid #0b57a4}
button.pay{background:#0b57a4;color:#fff}
button.cancel{background:#fff;color:#0b57a4}
button:focus-visible,a:focus-visible{outline:3px solid #d35400;outline-offset:2px}
.notice{border-left:4px solid #b35c00;background:#fff6e5;padding:.75rem;margin:0 0 1rem}
a{color:#0b57a4}
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

_DOCUMENT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh}<title>{title}</title><style>{style}</style></head>
<body><main>{content}</main></body></html>"""


@dataclass
class Page:
    status: int
    html: str
    merchant_origins: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        form_action = " ".join(["'self'", *self.merchant_origins])
        return {
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": (
                f"default-src 'none'; style-src '{STYLE_HASH}'; form-action {form_action}; "
                "frame-ancestors 'none'; base-uri 'none'"
            ),
        }


def _document(title: str, content: str, refresh: str | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{escape(refresh)}">\n' if refresh else ""
    return _DOCUMENT.format(refresh=meta, title=escape(title), style=STYLE, content=content)


def time_left(expires_at: datetime, now: datetime) -> str:
    seconds = int((expires_at - now).total_seconds())
    if seconds < 60:
        return "less than a minute"
    hours, minutes = divmod(seconds // 60, 60)
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if minutes or not hours:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts)


def checkout_page(
    session: Session,
    page_ref: str,
    form_tokens: Mapping[str, str],
    methods: list[TestMethod],
    now: datetime,
    merchant_origins: list[str],
    notice: str | None = None,
    status: int = 200,
    in_flight: bool = False,
    merchant: str | None = None,
    waiting_at: str | None = None,
    last_failed: bool = False,
) -> Page:
    """`waiting_at`: the provider's page a payment waits for the customer on (3-D Secure);
    `last_failed`: the newest attempt failed (declined, or not authenticated)."""
    amount = format_amount(session.amount, session.currency)
    expires_at = from_iso(session.expiresAt)

    def hidden(action: str) -> str:
        return f'<input type="hidden" name="form_token" value="{escape(form_tokens[action])}">'

    base = escape(page_ref)
    rows = [("Reference", escape(session.referenceId))]
    rows.append(
        (
            "Time left",
            f'<time datetime="{escape(session.expiresAt)}">{escape(time_left(expires_at, now))}</time>',
        )
    )
    details = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    notices = []
    if waiting_at:
        notices.append(
            "Your payment waits for you to confirm it with your bank. You can also pay another way: "
            "the payment waiting is then cancelled."
        )
    elif in_flight:
        notices.append("A payment is being processed. This page will update on its own.")
    elif last_failed:
        notices.append("Your last payment did not go through, so nothing was charged. You can try again.")
    if notice:
        notices.append(notice)
    notice_html = "".join(f'<p class="notice" role="alert">{escape(text)}</p>' for text in notices)
    if waiting_at:
        notice_html += f'<p><a class="continue" href="{escape(waiting_at)}">Continue to your bank</a></p>'

    pay_forms = ""
    if methods and (not in_flight or waiting_at):
        buttons = "".join(
            f'<button class="pay" type="submit" name="method" value="{escape(m.key)}">'
            f"Pay {escape(amount)} with {escape(m.label)}</button>"
            for m in methods
        )
        pay_forms = f'<form method="post" action="{base}/pay">{hidden("pay")}{buttons}</form>'
    cancel_form = (
        f'<form method="post" action="{base}/cancel">{hidden("cancel")}'
        '<button class="cancel" type="submit">Cancel and return to the merchant</button></form>'
    )
    content = (
        f"{_merchant(merchant)}<h1>{escape(session.description or 'Your order')}</h1>"
        f'<p class="amount" aria-label="Amount due">{escape(amount)}</p>'
        f"{notice_html}<dl>{details}</dl>{pay_forms}{cancel_form}"
    )
    refresh = "3" if in_flight and not waiting_at else None
    return Page(status, _document(f"Pay {amount}", content, refresh), merchant_origins)


def closed_page(
    session: Session,
    heading: str,
    why: str,
    back_url: str,
    go_back_now: bool,
    merchant: str | None = None,
) -> Page:
    """A checkout no longer open: what it was for (amount, reference), why it is closed, the way back."""
    amount = format_amount(session.amount, session.currency)
    content = (
        f"{_merchant(merchant)}<h1>{escape(heading)}</h1>"
        f'<p class="amount" aria-label="Amount">{escape(amount)}</p>'
        f"<dl><dt>Reference</dt><dd>{escape(session.referenceId)}</dd></dl><p>{escape(why)}</p>"
        f'<p><a href="{escape(back_url)}">Return to the merchant</a></p>'
    )
    refresh = f"0; url={back_url}" if go_back_now else None
    return Page(410, _document(heading, content, refresh))


def _merchant(name: str | None) -> str:
    return f'<p class="merchant">{escape(name)}</p>' if name else ""


def message_page(status: int, title: str, text: str, link: tuple[str, str] | None = None) -> Page:
    content = f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"
    if link:
        content += f'<p><a href="{escape(link[0])}">{escape(link[1])}</a></p>'
    return Page(status, _document(title, content))
