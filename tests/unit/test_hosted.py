"""The hosted page's pure parts: money, time left, the way back to the merchant, anti-forgery tokens."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest

from checkout_core.hosted import checkout
from checkout_core.hosted.pages import STYLE, checkout_page, closed_page, time_left
from checkout_core.models import Session
from checkout_core.money import format_amount
from checkout_core.transitions import SessionStatus

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TOKENS = {"pay": "p" * 64, "cancel": "c" * 64}


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (5000, "USD", "$50.00"),
        (5000, "JPY", "¥5,000"),
        (129900, "JPY", "¥129,900"),
        (1234, "KWD", "KWD 1.234"),
        (5, "BHD", "BHD 0.005"),
        (0, "EUR", "€0.00"),
        (123456789, "GBP", "£1,234,567.89"),
        (10000, "CLF", "CLF 1.0000"),
        (999, "CHF", "CHF 9.99"),
        (250, "VND", "VND 250"),
    ],
)
def test_amounts_use_the_currency_exponent(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "less than a minute"),
        (60, "1 minute"),
        (29 * 60 + 59, "29 minutes"),
        (3600, "1 hour"),
        (3600 + 5 * 60, "1 hour 5 minutes"),
        (86400, "24 hours"),
    ],
)
def test_time_left_reads_naturally(seconds: int, text: str) -> None:
    assert time_left(NOW + timedelta(seconds=seconds), NOW) == text


def _session(**overrides: object) -> Session:
    fields: dict[str, object] = {
        "sessionId": "01a237f9-f53a-755d-aa0f-7763eec8203b",
        "status": SessionStatus.OPEN,
        "amount": 5000,
        "currency": "USD",
        "referenceId": "order-1",
        "returnUrl": "https://example.com/return?cart=1&status=stale",
        "createdAt": "2026-12-02T12:00:00.000Z",
        "updatedAt": "2026-12-02T12:00:00.000Z",
        "expiresAt": "2026-12-02T12:30:00.000Z",
        **overrides,
    }
    return Session.model_validate(fields)


def test_the_way_back_keeps_the_merchants_query_and_says_how_it_ended() -> None:
    session = _session(cancelUrl="https://shop.example/c")
    back = checkout.back_to_merchant(session, SessionStatus.COMPLETED)
    assert back == f"https://example.com/return?cart=1&sessionId={session.sessionId}&status=COMPLETED"
    cancelled = checkout.back_to_merchant(session, SessionStatus.CANCELLED, cancelled=True)
    assert cancelled.startswith("https://shop.example/c?sessionId=")
    assert checkout.merchant_origins(session) == ["https://example.com", "https://shop.example"]


def test_a_form_token_binds_the_cookie_nonce_to_the_page_and_the_action() -> None:
    nonce = checkout.new_form_nonce()
    token = checkout.form_token("page-token-aaaaaaaaaaaa", nonce, "cancel")
    checkout.check_form("page-token-aaaaaaaaaaaa", nonce, {"form_token": token}, "cancel")
    for page, sent_nonce, fields, action in [
        ("page-token-bbbbbbbbbbbb", nonce, {"form_token": token}, "cancel"),  # another page's token
        ("page-token-aaaaaaaaaaaa", checkout.new_form_nonce(), {"form_token": token}, "cancel"),  # cookie
        ("page-token-aaaaaaaaaaaa", None, {"form_token": token}, "cancel"),  # no cookie
        ("page-token-aaaaaaaaaaaa", nonce, {}, "cancel"),  # no token
        ("page-token-aaaaaaaaaaaa", nonce, {"form_token": token}, "pay"),  # the cancel form's token
    ]:
        with pytest.raises(checkout.FormRefused):
            checkout.check_form(page, sent_nonce, fields, action)
    with pytest.raises(ValueError):
        checkout.form_token("page-token-aaaaaaaaaaaa", nonce, "refund")


def test_the_style_is_pinned_by_its_hash_and_nothing_else_may_load() -> None:
    page = checkout_page(_session(), "tok", TOKENS, [], NOW, ["https://example.com"])
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    policy = page.headers()["Content-Security-Policy"]
    assert f"style-src 'sha256-{digest}'" in policy and policy.startswith("default-src 'none';")
    assert "<script" not in page.html and not re.search(r"(src|href)=", page.html)


def test_every_button_has_a_text_label_and_the_page_a_language() -> None:
    methods = list(checkout.TEST_METHODS[:1])
    page = checkout_page(_session(), "tok", TOKENS, methods, NOW, [])
    assert '<html lang="en">' in page.html
    labels = re.findall(r"<button[^>]*>([^<]+)</button>", page.html)
    assert labels == ["Pay $50.00 with Test card (sandbox)", "Cancel and return to the merchant"]


def test_the_page_names_the_merchant_escaped_and_only_when_known() -> None:
    page = checkout_page(_session(), "tok", TOKENS, [], NOW, [], merchant="Ben & Jerry's <Shop>")
    assert '<p class="merchant">Ben &amp; Jerry&#x27;s &lt;Shop&gt;</p>' in page.html
    assert 'class="merchant"' not in checkout_page(_session(), "tok", TOKENS, [], NOW, []).html


@pytest.mark.parametrize(
    ("status", "heading", "refresh"),
    [
        (SessionStatus.COMPLETED, "Payment received", True),
        (SessionStatus.CANCELLED, "This checkout is closed", False),
    ],
)
def test_a_closed_page_keeps_what_it_was_for(status: SessionStatus, heading: str, refresh: bool) -> None:
    session = _session(status=status, referenceId="order-77", amount=129900, currency="JPY")
    page = closed_page(
        session, heading, "why", "https://example.com/back", go_back_now=refresh, merchant="Demo"
    )
    assert page.status == 410
    assert f"<h1>{heading}</h1>" in page.html and f"<title>{heading}</title>" in page.html
    assert "¥129,900" in page.html and "order-77" in page.html and "Demo" in page.html
    assert ('http-equiv="refresh"' in page.html) is refresh
