"""The local Stripe: the `localstripe` emulator (1.15.10), made faithful where the `stripe` provider
depends on Stripe's behaviour and localstripe differs. `python -m local.stripe_emulator --port N` (or
`--listen-fd F`, a listening socket its parent bound).

Each patch is what Stripe does (https://docs.stripe.com/api/payment_intents):
- cancel accepts `cancellation_reason` (localstripe answered "Unexpected cancellation_reason");
- cancelling a `processing` intent is refused with code `payment_intent_unexpected_state` (localstripe
  answered a bare 400), and a cancel sends `payment_intent.canceled`;
- an authorised SEPA debit stays `processing` for LOCAL_STRIPE_SEPA_SECONDS before it succeeds (Stripe's
  test IBAN DE89370400440532013000 does so for minutes; localstripe succeeded it at once) and sends
  `payment_intent.processing` when confirmed;
- a manual-capture intent that is authorised sends `payment_intent.amount_capturable_updated`;
- a decline on confirm is a `card_error` that carries the PaymentIntent, as Stripe's does (localstripe's
  named neither);
- `GET /v1/payment_intents/search?query=metadata['transactionId']:'...'` finds intents by metadata
  (localstripe answered 404);
- a refund of a charge already refunded in full is refused with code `charge_already_refunded`
  (https://docs.stripe.com/error-codes#charge-already-refunded; localstripe refunded it again);
- an intent's `payment_method_types` are kept and checked as Stripe checks them: `sepa_debit` only in EUR
  (https://docs.stripe.com/payments/sepa-debit), and the payment method of one of the listed types;
- amounts follow Stripe's currency rules (https://docs.stripe.com/currencies#special-cases): ISK and UGX in
  multiples of 100, three-decimal currencies with a last digit of 0, the documented minimum charge in USD,
  EUR, GBP and JPY, and at most eight digits;
- a SEPA debit is confirmed only with `mandate_data` (the customer's acceptance of the mandate) or an
  existing `mandate`, which confirm accepts (localstripe refused the parameters);
- Stripe's documented test payment methods (https://docs.stripe.com/testing#declined-payments) answer as
  Stripe's do: the decline cards are declined when charged (localstripe declined them only when attached
  to a customer, and settled them), with Stripe's error and decline codes, and the test PaymentMethod ids
  localstripe did not know (`pm_card_mastercard`, `pm_card_visa_chargeDeclinedInsufficientFunds`, ...,
  `pm_card_threeDSecure2Required`) exist;
- a confirm with `return_url` of a card that needs the customer (`pm_card_authenticationRequired`,
  `pm_card_threeDSecure2Required`) answers `requires_action` with `next_action.redirect_to_url`, as Stripe
  does (https://docs.stripe.com/payments/3d-secure/authentication-flow), and sends
  `payment_intent.requires_action`; the URL is a one-screen stand-in for Stripe's test authentication page
  (Complete / Fail authentication), reachable only with the intent's client secret, which sends the
  customer back to the return_url with `payment_intent`, `payment_intent_client_secret` and
  `redirect_status`; a failed authentication leaves the intent `requires_payment_method` with
  `payment_intent_authentication_failure` and sends `payment_intent.payment_failed` (localstripe answered
  only `use_stripe_sdk`, and sent nothing);
- the store is not pickled to disk after every POST (which made each request cost in proportion to all
  before it), and LOCAL_STRIPE_LATENCY_MS adds Stripe's round trip to every answer (default 0).
The store is kept in memory only (`--from-scratch`): a restart of `make run` starts a new Stripe, as a
new test-mode account would.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import Charge, Event, PaymentIntent, PaymentMethod, Refund, store
from localstripe.webhooks import schedule_webhook

from local import processes

SEPA_PROCESSING_SECONDS = float(os.environ.get("LOCAL_STRIPE_SEPA_SECONDS", "3"))
# A round trip to Stripe takes a few hundred milliseconds; the emulator answers in a few. The bench sets
# this to see what concurrent provider calls save, which an instant emulator would hide.
LATENCY_SECONDS = float(os.environ.get("LOCAL_STRIPE_LATENCY_MS", "0")) / 1000
CANCELLATION_REASONS = {"duplicate", "fraudulent", "requested_by_customer", "abandoned"}
_METADATA_QUERY = re.compile(r"^metadata\['(?P<key>[^']+)'\]:'(?P<value>[^']*)'$")

WHOLE_UNITS_IN_TWO_DECIMALS = {"isk", "ugx"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
METHOD_CURRENCIES = {"sepa_debit": {"eur"}}
# Stripe's documented minimum charge amounts (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts),
# for an account settling in the same currency; the largest amount is eight digits.
MINIMUM_AMOUNTS = {"usd": 50, "eur": 50, "gbp": 30, "jpy": 50}
MAXIMUM_AMOUNT = 99_999_999

# Card number -> (error code, decline code, message), as Stripe declines them when they are charged.
DECLINED_CARDS: dict[str, tuple[str, str | None, str]] = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": ("expired_card", None, "Your card has expired."),
    "4000000000000127": ("incorrect_cvc", None, "Your card's security code is incorrect."),
    "4000000000000119": (
        "processing_error",
        None,
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}
# Stripe's test PaymentMethod ids that localstripe does not know, and the card number each stands for.
TEST_PAYMENT_METHODS = {
    "pm_card_mastercard": "5555555555554444",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_threeDSecure2Required": "4000000000003220",
}

_original_cancel = PaymentIntent._api_cancel.__func__
_original_test_article = PaymentMethod._try_get_canonical_test_article.__func__
_original_charging_is_declined = PaymentMethod._charging_is_declined
_original_set_auth_failure = Charge._set_auth_failure
_original_last_payment_error = PaymentIntent.last_payment_error.fget
_original_intent_init = PaymentIntent.__init__
_original_confirm = PaymentIntent._api_confirm.__func__
_original_initialize_charge = Charge._initialize_charge
_original_create_charge = PaymentIntent._create_charge
_original_report_failure = PaymentIntent._report_failure
_original_refund_init = Refund.__init__


def _cancel(cls: Any, id: str, cancellation_reason: str | None = None, **kwargs: Any) -> Any:
    if cancellation_reason is not None and cancellation_reason not in CANCELLATION_REASONS:
        raise UserError(400, f"Invalid cancellation_reason: {cancellation_reason}")
    current = cls._api_retrieve(id)
    if current.status == "processing":
        raise UserError(
            400,
            "You cannot cancel this PaymentIntent because it has a status of processing.",
            {"code": "payment_intent_unexpected_state"},
        )
    intent = _original_cancel(cls, id, **kwargs)
    intent.cancellation_reason = cancellation_reason
    schedule_webhook(Event("payment_intent.canceled", intent))
    return intent


def _intent_init(self: Any, payment_method_types: Any = None, **kwargs: Any) -> None:
    """What Stripe refuses of a new intent and localstripe took: a method type in a currency it does not
    pay in, a payment method of a type the intent does not list, an amount the currency's rules forbid."""
    currency = str(kwargs.get("currency") or "").lower()
    types = list(payment_method_types or ["card"])
    for method_type in types:
        allowed = METHOD_CURRENCIES.get(method_type)
        if allowed is not None and currency not in allowed:
            raise UserError(
                400,
                f"The currency provided ({currency}) is invalid. Payments with {method_type} support the "
                f"following currencies: {', '.join(sorted(allowed))}.",
                {"code": "payment_intent_invalid_parameter", "param": "payment_method_types"},
            )
    amount = kwargs.get("amount")
    amount = int(amount) if isinstance(amount, (int, str)) and str(amount).isdigit() else None
    if amount is not None and amount < MINIMUM_AMOUNTS.get(currency, 1):
        raise UserError(
            400,
            f"Amount must be at least {MINIMUM_AMOUNTS.get(currency, 1)} in {currency}'s smallest unit.",
            {"code": "amount_too_small", "param": "amount"},
        )
    if amount is not None and amount > MAXIMUM_AMOUNT:
        raise UserError(
            400,
            "Amount must be no more than 99999999 in the currency's smallest unit.",
            {"code": "amount_too_large", "param": "amount"},
        )
    if amount is not None and currency in WHOLE_UNITS_IN_TWO_DECIMALS and amount % 100:
        raise UserError(
            400,
            f"Invalid amount. Currency {currency.upper()} has become effectively zero-decimal and charged "
            "amounts must be evenly divisible by 100.",
            {"code": "invalid_charge_amount_no_decimal_compatible", "param": "amount"},
        )
    if amount is not None and currency in THREE_DECIMAL and amount % 10:
        raise UserError(
            400,
            f"Invalid amount. Amounts in {currency.upper()} must have a last digit of 0.",
            {"code": "invalid_charge_amount", "param": "amount"},
        )
    method = kwargs.get("payment_method")
    if isinstance(method, str) and method.startswith("pm_"):
        method_type = PaymentMethod._api_retrieve(method).type
        if method_type not in types:
            raise UserError(
                400,
                f"The PaymentMethod provided ({method_type}) is not allowed for this PaymentIntent. Please "
                f"attach a PaymentMethod of one of the following types: {', '.join(types)}.",
                {"code": "payment_intent_incompatible_payment_method", "param": "payment_method"},
            )
    _original_intent_init(self, **kwargs)
    self.payment_method_types = types


def _confirm(
    cls: Any, id: str, mandate_data: Any = None, mandate: Any = None, return_url: Any = None, **kwargs: Any
) -> Any:
    intent = cls._api_retrieve(id)
    method = PaymentMethod._api_retrieve(intent.payment_method) if intent.payment_method else None
    if method is not None and method.type == "sepa_debit" and not (mandate_data or mandate):
        raise UserError(
            400,
            "A mandate is required to confirm a sepa_debit payment: provide mandate_data or mandate.",
            {"code": "parameter_missing", "param": "mandate_data"},
        )
    if return_url is not None and not (isinstance(return_url, str) and re.match(r"^https?://", return_url)):
        raise UserError(400, "Invalid URL: return_url", {"code": "url_invalid", "param": "return_url"})
    confirmed = _original_confirm(cls, id, **kwargs)
    confirmed._return_url = return_url  # kept for the way back, after next_action is cleared
    if confirmed.next_action and return_url:
        # With a return_url Stripe sends the customer to authenticate on its own page, then back.
        query = urllib.parse.urlencode({"client_secret": confirmed.client_secret})
        confirmed.next_action = {
            "type": "redirect_to_url",
            "redirect_to_url": {
                "url": f"{_own_url}{AUTHENTICATION_PATH}{confirmed.id}?{query}",
                "return_url": return_url,
            },
        }
    if confirmed.next_action:
        schedule_webhook(Event("payment_intent.requires_action", confirmed))
    return confirmed


AUTHENTICATION_PATH = "/redirect/authenticate/"
_own_url = "http://127.0.0.1"  # this emulator's address, as a customer's browser reaches it (main())
_AUTHENTICATION_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>3D Secure test page</title></head><body>
<h1>3D Secure test page</h1><p>{text}</p>{forms}</body></html>"""


async def _authentication_page(request: Any) -> Any:
    """Stripe's test page for a payment that needs the customer: authenticate, or fail, then back to the
    confirm's return_url with `payment_intent`, `payment_intent_client_secret` and `redirect_status`.
    Reached only through next_action.redirect_to_url: it carries the intent's client secret."""
    from html import escape

    from aiohttp import web

    intent_id = request.path[len(AUTHENTICATION_PATH) :]
    form = dict(await request.post()) if request.method == "POST" else {}
    secret = form.get("client_secret") or request.query.get("client_secret", "")
    intent = store.get(f"{PaymentIntent.object}:{intent_id}") if intent_id else None
    if not isinstance(intent, PaymentIntent) or secret != intent.client_secret:
        return web.Response(status=404, text="No such payment.", content_type="text/plain")
    if request.method == "POST" and intent.status == "requires_action":
        succeeded = form.get("outcome") == "authenticate"
        PaymentIntent._api_authenticate(intent.id, client_secret=secret, success=succeeded)
        if not succeeded:
            schedule_webhook(Event("payment_intent.payment_failed", intent))
    if request.method == "POST" or intent.status != "requires_action":
        back = getattr(intent, "_return_url", None) or ""
        separator = "&" if "?" in back else "?"
        status = {"canceled": "failed", "requires_payment_method": "failed"}.get(intent.status, "succeeded")
        query = urllib.parse.urlencode(
            {"payment_intent": intent.id, "payment_intent_client_secret": secret, "redirect_status": status}
        )
        raise web.HTTPSeeOther(f"{back}{separator}{query}")
    amount = f"{intent.amount} {intent.currency.upper()} (smallest unit)"
    forms = "".join(
        f'<form method="post"><input type="hidden" name="client_secret" value="{escape(secret)}">'
        f'<button type="submit" name="outcome" value="{outcome}">{label}</button></form>'
        for outcome, label in (("authenticate", "Complete authentication"), ("fail", "Fail authentication"))
    )
    text = escape(f"A payment of {amount} asks you to authenticate.")
    return web.Response(text=_AUTHENTICATION_PAGE.format(text=text, forms=forms), content_type="text/html")


def _test_article(cls: Any, id: str) -> Any:
    found = _original_test_article(cls, id)
    if found is None and id in TEST_PAYMENT_METHODS:
        card = {"number": TEST_PAYMENT_METHODS[id], "exp_month": "12", "exp_year": "2030", "cvc": "123"}
        found = PaymentMethod(type="card", card=card)
    return found


def _charging_is_declined(self: Any) -> bool:
    return bool(
        _original_charging_is_declined(self) or (self.type == "card" and self._card_number in DECLINED_CARDS)
    )


def _set_auth_failure(self: Any) -> None:
    """Stripe's codes and message for the test card declined (localstripe said card_declined of all)."""
    _original_set_auth_failure(self)
    self._decline_code = None
    if isinstance(self.payment_method, str) and self.payment_method.startswith("pm_"):
        method = PaymentMethod._api_retrieve(self.payment_method)
        declined = DECLINED_CARDS.get(getattr(method, "_card_number", ""))
        if declined is not None:
            self.failure_code, self._decline_code, self.failure_message = declined


def _last_payment_error(self: Any) -> Any:
    error = _original_last_payment_error(self)
    if error is None or not self.latest_charge or self.latest_charge.status != "failed":
        return error
    decline_code = getattr(self.latest_charge, "_decline_code", None)
    return {**error, "type": "card_error", **({"decline_code": decline_code} if decline_code else {})}


def _initialize_charge(
    self: Any, on_success: Any = None, on_failure_now: Any = None, on_failure_later: Any = None
) -> None:
    if not (self._authorized and self._is_async_payment_method()):
        _original_initialize_charge(self, on_success, on_failure_now, on_failure_later)
        return
    self.status = "pending"  # the intent reads `processing` until the debit clears

    async def clear() -> None:
        await asyncio.sleep(SEPA_PROCESSING_SECONDS)
        self.status = "succeeded"
        if self.captured:
            self._trigger_payment(on_success)
        _pending.discard(asyncio.current_task())

    _pending.add(asyncio.ensure_future(clear()))


_pending: set[Any] = set()  # the debits clearing, kept referenced until they are done


def _create_charge(self: Any, on_failure_now: Any) -> None:
    _original_create_charge(self, on_failure_now)
    if self.status == "processing":
        schedule_webhook(Event("payment_intent.processing", self))
    elif self.status == "requires_capture":
        schedule_webhook(Event("payment_intent.amount_capturable_updated", self))


def _report_failure(self: Any) -> None:
    """A decline on confirm is Stripe's card_error carrying the PaymentIntent (localstripe's has neither)."""
    try:
        _original_report_failure(self)
    except UserError as declined:
        if declined.code == 402:
            declined.body["error"].update(type="card_error", payment_intent=self._export())
            decline_code = getattr(self.latest_charge, "_decline_code", None)
            if decline_code:
                declined.body["error"]["decline_code"] = decline_code
        raise


def _refund_init(
    self: Any, charge: Any = None, payment_intent: Any = None, amount: Any = None, **kwargs: Any
) -> None:
    """Stripe refuses to refund what is refunded already (localstripe refunded it again)."""
    target = charge
    if target is None and isinstance(payment_intent, str) and payment_intent.startswith("pi_"):
        latest = PaymentIntent._api_retrieve(payment_intent).latest_charge
        target = latest.id if latest is not None else None
    if isinstance(target, str) and target.startswith("ch_") and Charge._api_retrieve(target).refunded:
        raise UserError(
            400, f"Charge {target} has already been refunded.", {"code": "charge_already_refunded"}
        )
    _original_refund_init(self, charge=charge, payment_intent=payment_intent, amount=amount, **kwargs)


class _SearchResult:
    def __init__(self, found: list[Any]) -> None:
        self.found = found

    def _export(self, expand: Any = None) -> dict[str, Any]:
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": False,
            "next_page": None,
            "data": [intent._export(expand=expand) for intent in self.found],
        }


def _search(query: str | None = None, limit: Any = None, **kwargs: Any) -> _SearchResult:
    match = _METADATA_QUERY.match(query or "")
    if match is None:
        raise UserError(400, "Only metadata['key']:'value' queries are emulated here")
    key, value = match.group("key"), match.group("value")
    found = [
        obj
        for obj in list(store.values())
        if isinstance(obj, PaymentIntent) and (obj.metadata or {}).get(key) == value
    ]
    return _SearchResult(found)


def patch() -> None:
    # In memory only: localstripe pickles its whole store to disk after every POST, which makes each
    # request cost in proportion to everything created before it (Stripe's cost does not grow so).
    store.dump_to_disk = lambda *args, **kwargs: None
    PaymentIntent._api_cancel = classmethod(_cancel)
    PaymentIntent._api_confirm = classmethod(_confirm)
    PaymentIntent.__init__ = _intent_init
    PaymentIntent.last_payment_error = property(_last_payment_error)
    PaymentMethod._try_get_canonical_test_article = classmethod(_test_article)
    PaymentMethod._charging_is_declined = _charging_is_declined
    Charge._set_auth_failure = _set_auth_failure
    Charge._initialize_charge = _initialize_charge
    PaymentIntent._create_charge = _create_charge
    PaymentIntent._report_failure = _report_failure
    Refund.__init__ = _refund_init
    # The server registers the routes of `extra_apis` when it is imported: replace the cancel route's
    # function there, and add search before the generic /v1/payment_intents/{id}.
    apis = resources.extra_apis
    for index, (method, url, _) in enumerate(apis):
        if (method, url) == ("POST", "/v1/payment_intents/{id}/cancel"):
            apis[index] = (method, url, PaymentIntent._api_cancel)
        if (method, url) == ("POST", "/v1/payment_intents/{id}/confirm"):
            apis[index] = (method, url, PaymentIntent._api_confirm)
    apis.insert(0, ("GET", "/v1/payment_intents/search", _search))


def main() -> None:
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--listen-fd", type=int, help="a listening socket inherited from the parent")
    args = parser.parse_args()
    patch()
    from aiohttp import web
    from localstripe import server  # routes are built now, from the patched extra_apis

    if LATENCY_SECONDS:

        @web.middleware
        async def latency(request: Any, handler: Any) -> Any:
            await asyncio.sleep(LATENCY_SECONDS)  # concurrent requests wait together, as at Stripe
            return await handler(request)

        server.app.middlewares.insert(0, latency)

    @web.middleware
    async def authentication_pages(request: Any, handler: Any) -> Any:
        # The customer's page, outside the API and its keys, as hooks.stripe.com is.
        if request.path.startswith(AUTHENTICATION_PATH) and request.method in ("GET", "POST"):
            return await _authentication_page(request)
        return await handler(request)

    server.app.middlewares.insert(0, authentication_pages)
    if args.listen_fd is not None:
        listener = processes.inherited_listener(args.listen_fd)
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", args.port))
    global _own_url
    host, port = listener.getsockname()[:2]
    _own_url = f"http://{host}:{port}"
    logging.basicConfig(level=logging.WARNING)
    # Exits at once on SIGTERM: the store is in memory only, so there is nothing to save, and aiohttp's own
    # graceful exit waits up to a minute for the SDK's idle keep-alive connections to close.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: os._exit(0))
    web.run_app(server.app, sock=listener, print=None, access_log=None, handle_signals=False)


if __name__ == "__main__":
    main()


class LocalStripe:
    """The emulator as a child process of the runtime, on a free port, with the runtime's own Stripe
    webhook URL registered, so a PaymentIntent made through the API comes back as a signed webhook."""

    API_KEY = "sk_test_local"
    READY_TIMEOUT_SECONDS = 60  # a busy machine: it loads its library (Adyen: its OpenAPI documents) first

    def __init__(self, webhook_url: str, webhook_secret: str, wait: bool = True) -> None:
        """Starts the emulator; with `wait=False`, `wait_until_ready` is left to the caller (the runtime
        does other work meanwhile)."""
        with processes.loopback_listener() as listener:
            self.api_base = f"http://127.0.0.1:{listener.getsockname()[1]}"
            self._process = processes.spawn(
                [sys.executable, "-m", "local.stripe_emulator", "--listen-fd", str(listener.fileno())],
                pass_fds=(listener.fileno(),),
            )
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        if wait:
            self.wait_until_ready()

    def wait_until_ready(self) -> None:
        """Registers the webhook endpoint as soon as the emulator answers."""
        registration = urllib.request.Request(  # noqa: S310 - the emulator on loopback
            f"{self.api_base}/_config/webhooks/checkout-sessions",
            data=urllib.parse.urlencode({"url": self.webhook_url, "secret": self.webhook_secret}).encode(),
            method="POST",
        )
        if not processes.wait_until_answered(self._process, registration, self.READY_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError("the local Stripe emulator did not start")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except Exception:
                self._process.kill()
                self._process.wait()
