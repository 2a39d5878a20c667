"""What the customer can do on the hosted page: see the session, cancel it, pay it with a test method.

The page is reached by a secret link, not an API key: the token names the session (stored only as
its hash) and the session names its tenant. Every form carries an anti-forgery token: an HMAC, keyed
by the pay token, of the form's action and a nonce the browser holds in a SameSite=Strict cookie, new
with every rendering. Another site can neither read the cookie nor make the browser send it, so a post
it forges is refused and changes nothing; a token serves only the action it was rendered for, on the
checkout and the rendering it came with (the cancel form's token does not pay).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from checkout_core import transitions
from checkout_core.api_keys import hash_secret
from checkout_core.context import Context
from checkout_core.models import (
    CancelRequest,
    ReasonType,
    Session,
    Tenant,
    Transaction,
    WhenInFlight,
)
from checkout_core.providers import ProviderReport
from checkout_core.transitions import SessionStatus, TransactionStatus
from checkout_core.views import session_view

ACTOR = "customer"
FORM_COOKIE_PREFIX = "checkout_form_"
FORM_COOKIE_MAX_AGE_SECONDS = 3600


ACTIONS = ("pay", "cancel")


class FormRefused(Exception):
    """A post without a valid anti-forgery token, or with fields the page never offers."""


@dataclass(frozen=True)
class TestMethod:
    """A test payment method offered on the page where HOSTED_TEST_PAYMENTS allows it."""

    key: str
    label: str
    provider: str
    settles_at_once: bool
    payment_method: str | None = None


TEST_METHODS = (
    TestMethod("sandbox_card", "Test card (sandbox)", "sandbox_card", settles_at_once=True),
    # Stripe answers the card's payment itself (succeeded at once for pm_card_visa).
    TestMethod("stripe_card_visa", "Test Visa card (Stripe)", "stripe", False, "pm_card_visa"),
    # Stripe's card that always asks for 3-D Secure: the customer is sent to authenticate (§6.3).
    TestMethod(
        "stripe_card_3ds",
        "Test card with 3-D Secure (Stripe)",
        "stripe",
        False,
        "pm_card_threeDSecure2Required",
    ),
)


@dataclass(frozen=True)
class HostedSession:
    session: Session
    tenant_id: str
    merchant_name: str | None = None  # the tenant's display name when the session was created


def _well_formed(token: str) -> bool:
    return 16 <= len(token) <= 128 and all(ch.isalnum() or ch in "-_" for ch in token)


def find(ctx: Context, token: str) -> HostedSession | None:
    """The session behind a hosted checkout token, or None for a token that names none."""
    if not _well_formed(token):
        return None
    pointer = ctx.repository.get_pay_token(hash_secret(token))
    if pointer is None:
        return None
    item = ctx.repository.get_session(pointer["sessionId"])
    if item is None:
        return None
    return HostedSession(session_view(item, ctx.clock()), item["tenantId"], item.get("merchantName"))


def test_methods(ctx: Context) -> list[TestMethod]:
    if not ctx.settings.hosted_test_payments:
        return []
    return [method for method in TEST_METHODS if ctx.providers.get(method.provider) is not None]


# -- anti-forgery ------------------------------------------------------------------------------------


def form_cookie_name(token: str) -> str:
    """One cookie per checkout, so two open checkouts do not invalidate each other's forms."""
    return FORM_COOKIE_PREFIX + hash_secret(token)[:16]


def new_form_nonce() -> str:
    return secrets.token_urlsafe(18)


def form_token(token: str, nonce: str, action: str) -> str:
    """The token of one form (`action`, one of ACTIONS) of one rendering (`nonce`) of one checkout."""
    if action not in ACTIONS:
        raise ValueError(f"no form posts to {action!r}")
    return hmac.new(token.encode(), f"{action}\x00{nonce}".encode(), hashlib.sha256).hexdigest()


def check_form(token: str, nonce: str | None, fields: dict[str, str], action: str) -> None:
    sent = fields.get("form_token", "")
    if not nonce or not hmac.compare_digest(sent.encode(), form_token(token, nonce, action).encode()):
        raise FormRefused("This page has expired; open the checkout link again.")


def parse_form(body: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body), max_num_fields=8)
    except ValueError as exc:
        raise FormRefused("The form could not be read.") from exc
    return dict(pairs)


# -- actions ---------------------------------------------------------------------------------------


def cancel(ctx: Context, hosted: HostedSession) -> Session:
    """The API's own cancel, asked for by the customer; it refuses rather than wait on a payment in flight."""
    from checkout_core.cancellation import cancel_session

    request = CancelRequest(
        reasonType=ReasonType.CUSTOMER_REQUESTED,
        reason="Cancelled by the customer on the checkout page.",
        whenInFlight=WhenInFlight.REJECT,
    )
    session_id = hosted.session.sessionId
    answer = cancel_session(ctx, _tenant(hosted), session_id, request, actor=ACTOR)
    return hosted.session.model_copy(update={"status": answer.status})


def pay(
    ctx: Context, hosted: HostedSession, method_key: str, nonce: str, public_base_url: str
) -> Transaction:
    """Starts a test payment, only while no other is in flight (errors.PaymentInFlight). The sandbox
    test card is approved at once, as a provider's test card is on its own hosted form: the sandbox
    reports SETTLED through the same path a provider event takes. A provider that needs the customer
    brings them back to the attempt's return route under `public_base_url`."""
    from checkout_core.customer_actions import cancel_waiting_payments
    from checkout_core.errors import PaymentInFlight
    from checkout_core.payments import create_transaction, earlier_attempt
    from checkout_core.provider_events import apply_provider_event

    method = next((m for m in test_methods(ctx) if m.key == method_key), None)
    if method is None:
        raise FormRefused("This payment method is not offered here.")
    earlier = earlier_attempt(ctx, _tenant(hosted), hosted.session.sessionId, f"hosted-page {nonce}")
    if earlier is not None:
        return earlier  # this page's form, posted again (a double click): the attempt it made
    if waits_for_customer_only(hosted.session):
        # The customer chose another way to pay over the payment waiting for them: that one is cancelled
        # at its provider first (nothing of it was authorised). If it cannot be (they completed it
        # meanwhile), it stays in flight and this attempt is refused below.
        item = ctx.repository.get_session(hosted.session.sessionId)
        if item is not None:
            cancel_waiting_payments(ctx, item, ACTOR)
            hosted = replace(
                hosted,
                session=session_view(ctx.repository.get_session(item["sessionId"]) or item, ctx.clock()),
            )
    if payment_in_flight(hosted.session):
        raise PaymentInFlight(
            [tx.transactionId for tx in hosted.session.transactions if transitions.is_in_flight(tx.status)]
        )
    # One attempt per rendered page: a double click, or a reload that re-posts, pays once; and none while
    # another is in flight (the write's own condition, for two pages posting at once).
    transaction = create_transaction(
        ctx,
        _tenant(hosted),
        hosted.session.sessionId,
        method.provider,
        idempotency_key=f"hosted-page {nonce}",
        actor=ACTOR,
        payment_method=method.payment_method,
        alone=True,
        public_base_url=public_base_url,
    )
    if method.settles_at_once and transitions.is_in_flight(transaction.status):
        event = ProviderReport(
            f"hosted-test-{transaction.transactionId}",
            transaction.transactionId,
            transaction.providerReference,
            TransactionStatus.SETTLED,
        )
        apply_provider_event(ctx, method.provider, event)
    return transaction


def find_return(ctx: Context, token: str) -> tuple[HostedSession, str] | None:
    """The session and the attempt behind a return link (payments.py), or None for a token that names
    none. A return link serves its attempt's return, never the page."""
    if not _well_formed(token):
        return None
    pointer = ctx.repository.get_return_token(hash_secret(token))
    item = ctx.repository.get_session(pointer["sessionId"]) if pointer else None
    if pointer is None or item is None:
        return None
    hosted = HostedSession(session_view(item, ctx.clock()), item["tenantId"], item.get("merchantName"))
    return hosted, str(pointer["transactionId"])


def complete_return(
    ctx: Context, hosted: HostedSession, transaction_id: str, returned: Mapping[str, str]
) -> HostedSession:
    """The customer is back from the provider's page: what the provider says of the attempt is recorded
    (customer_actions.py), and the session read again (a webhook may have recorded it meanwhile)."""
    from checkout_core.customer_actions import complete_return as complete

    item = ctx.repository.get_session(hosted.session.sessionId)
    if item is None:
        return hosted
    complete(ctx, item, transaction_id, returned)
    # Read again, whoever recorded the outcome: this return, or the provider's webhook meanwhile.
    item = ctx.repository.get_session(hosted.session.sessionId) or item
    return replace(hosted, session=session_view(item, ctx.clock()))


def is_page_of(ctx: Context, token: str, session_id: str) -> bool:
    """Whether `token` is the hosted page's token of that session."""
    if not _well_formed(token):
        return False
    pointer = ctx.repository.get_pay_token(hash_secret(token))
    return pointer is not None and pointer["sessionId"] == session_id


def provider_page_origins(ctx: Context) -> list[str]:
    """Where the page's Pay may send the customer: the pages of the providers it offers (3-D Secure)."""
    origins: list[str] = []
    for method in test_methods(ctx):
        provider = ctx.providers.get(method.provider)
        for origin in provider.customer_page_origins if provider else ():
            if origin not in origins:
                origins.append(origin)
    return origins


def last_attempt_failed(session: Session) -> bool:
    """Whether the newest attempt failed: the page says so."""
    latest = session.transactions[-1] if session.transactions else None
    return latest is not None and latest.status is TransactionStatus.FAILED


def waits_for_customer_only(session: Session) -> bool:
    """Whether every payment in flight waits for the customer (and one does): they may pay another way."""
    in_flight = [tx for tx in session.transactions if transitions.is_in_flight(tx.status)]
    return bool(in_flight) and all(
        tx.status is TransactionStatus.PROCESSING
        and tx.nextAction is not None
        and tx.cancelRequestedAt is None
        for tx in in_flight
    )


def waiting_action(session: Session) -> str | None:
    """The page a payment of this session waits for the customer on, if one does."""
    for tx in session.transactions:
        if tx.status is TransactionStatus.PROCESSING and tx.nextAction is not None:
            return tx.nextAction.url
    return None


def _tenant(hosted: HostedSession) -> Tenant:
    return Tenant(tenant_id=hosted.tenant_id, return_hosts=frozenset())


# -- where the customer goes back to -----------------------------------------------------------------


def back_to_merchant(session: Session, status: SessionStatus, cancelled: bool = False) -> str:
    """`returnUrl` (or `cancelUrl` after a cancel) with sessionId and status added to its query."""
    base = (session.cancelUrl or session.returnUrl) if cancelled else session.returnUrl
    parts = urlsplit(base)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("sessionId", "status")
    ]
    query += [("sessionId", session.sessionId), ("status", status.value)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def merchant_origins(session: Session) -> list[str]:
    """The origins the page may send the customer to (a form's redirect is bound by form-action)."""
    origins: list[str] = []
    for url in (session.returnUrl, session.cancelUrl):
        if url:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


def describe_closed(session: Session) -> str:
    """Why a checkout no longer takes payments, in the customer's words."""
    reasons: dict[SessionStatus, str] = {
        SessionStatus.COMPLETED: "This checkout has been paid. Thank you.",
        SessionStatus.CANCELLED: "This checkout was cancelled, and no payment was taken.",
        SessionStatus.PENDING_CANCELLATION: (
            "This checkout is being cancelled. A payment that was already under way will be returned "
            "if it goes through."
        ),
        SessionStatus.EXPIRED: "This checkout expired before it was paid, and no payment was taken.",
    }
    return reasons.get(session.status, "This checkout is closed.")


def payment_in_flight(session: Session) -> bool:
    return any(transitions.is_in_flight(tx.status) for tx in session.transactions)
