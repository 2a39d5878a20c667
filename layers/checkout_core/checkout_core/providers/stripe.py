"""Stripe PaymentIntents through the official `stripe` SDK: the only code that talks to Stripe.

An attempt is made in two calls so that nothing can charge before its PaymentIntent is recorded: the
intent is created unconfirmed, its id recorded (`Attempt.record_reference`), and only then confirmed. An
attempt with no recorded id was therefore never confirmed (reconciliation needs no search), and an intent
left unconfirmed by a crash is cancelled once it is older than `confirm_window_seconds`.

A card that needs 3-D Secure answers requires_action with next_action.redirect_to_url: PROCESSING with
that page as `next_action_url`; Stripe brings the customer back to the attempt's return_url, where
`complete_return` reads the intent again.

Status mapping: requires_confirmation / requires_action / processing -> PROCESSING;
requires_capture -> AUTHORIZED; succeeded -> SETTLED; canceled -> CANCELLED; requires_payment_method
after an attempt -> FAILED. Stripe refuses to cancel a `processing` intent: that is NOT_SUPPORTED (the
payment ends on its own), not a failure.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from checkout_core.errors import InvalidRequest, InvalidSignature, ServiceUnavailable
from checkout_core.observability import logger
from checkout_core.providers.base import (
    Attempt,
    CancelOutcome,
    ProviderReport,
    ProviderState,
    Refusal,
    method_not_available,
    page_origins_of,
)
from checkout_core.providers.stripe_amounts import AmountNotAccepted, from_stripe, to_stripe
from checkout_core.transitions import TransactionStatus

SIGNATURE_TOLERANCE_SECONDS = 300
_STATUSES = {
    "requires_confirmation": TransactionStatus.PROCESSING,
    "requires_action": TransactionStatus.PROCESSING,
    "processing": TransactionStatus.PROCESSING,
    "requires_capture": TransactionStatus.AUTHORIZED,
    "succeeded": TransactionStatus.SETTLED,
    "canceled": TransactionStatus.CANCELLED,
    "requires_payment_method": TransactionStatus.FAILED,
}
_CANCELLATION_REASONS = {
    "DUPLICATE": "duplicate",
    "FRAUDULENT": "fraudulent",
    "ABANDONED": "abandoned",
}
# Events this service acts on; any other type is acknowledged and ignored.
_EVENT_STATUSES = {
    "payment_intent.processing": TransactionStatus.PROCESSING,
    "payment_intent.amount_capturable_updated": TransactionStatus.AUTHORIZED,
    "payment_intent.succeeded": TransactionStatus.SETTLED,
    "payment_intent.payment_failed": TransactionStatus.FAILED,
    "payment_intent.canceled": TransactionStatus.CANCELLED,
}
_REFUSED_WHILE_PROCESSING = "payment_intent_unexpected_state"
_ALREADY_REFUNDED = "charge_already_refunded"
# The payment method types this service confirms server-side, and the currencies Stripe takes each in
# (https://docs.stripe.com/payments/sepa-debit: EUR only); a card takes any currency Stripe does.
_METHOD_CURRENCIES: dict[str, frozenset[str] | None] = {"card": None, "sepa_debit": frozenset({"EUR"})}
# Stripe's parameters, as this service's request names them: a refusal naming one is the merchant's input.
_FIELDS = {
    "payment_method": "paymentMethod",
    "payment_method_types": "paymentMethod",
    "mandate_data": "paymentMethod",
    "amount": "amount",
    "currency": "currency",
    "capture_method": "captureMethod",
}
# The types Stripe can authorise and capture later (https://docs.stripe.com/payments/place-a-hold-on-a-payment-method).
_HOLDS = frozenset({"card"})
# Refusals that are this service's account, not the merchant's input. (payment_method_unactivated, a
# method type not activated on the account, is the merchant's to change: another method may work.)
_CONFIGURATION_CODES = frozenset({"account_invalid", "secret_key_required"})
_METHOD_NOT_ACTIVATED = "payment_method_unactivated"
_UNEXPECTED_STATE = "payment_intent_unexpected_state"
_KNOWN_METHOD_TYPES = 1024  # PaymentMethod types remembered: a type never changes
# Where Stripe's next_action.redirect_to_url sends a customer (https://docs.stripe.com/payments/3d-secure).
CUSTOMER_PAGE_ORIGIN = "https://hooks.stripe.com"


@dataclass(frozen=True)
class StripeSettings:
    api_key: str
    webhook_secret: str
    api_base: str | None = None  # a Stripe emulator (localstripe) instead of api.stripe.com
    # An intent still unconfirmed this long after its creation was left by a crash between recording and
    # confirming it: cancelled. Longer than any call that creates and confirms one can last.
    confirm_window_seconds: int = 120


class StripeProvider:
    name = "stripe"
    cancel_in_flight = True  # except what Stripe already reports `processing`: see cancel()
    cancel_is_async = False
    cancel_by_our_reference = False  # reconciliation finds an intent by our id instead (status())
    reverses = False  # a refund needs a succeeded PaymentIntent
    refund_is_async = False  # Stripe answers a refund with the refund made (or pending at the bank)
    has_status_api = True
    requires_payment_method = True
    payment_method_is_object = False  # an id: pm_card_visa, pm_...

    def __init__(self, settings: StripeSettings) -> None:
        self._settings = settings
        self._client: Any = None
        self._method_types: dict[str, str] = {}

    @property
    def customer_page_origins(self) -> tuple[str, ...]:
        """Stripe sends a customer to authenticate at hooks.stripe.com; a Stripe emulator at its own."""
        return page_origins_of(self._settings.api_base, CUSTOMER_PAGE_ORIGIN)

    def _stripe(self) -> Any:
        """The SDK's client, made on first use (importing the SDK costs a cold start that most calls skip)."""
        if self._client is None:
            import stripe

            options: dict[str, Any] = {"max_network_retries": 2}
            if self._settings.api_base:
                options["base_addresses"] = {"api": self._settings.api_base}
            self._client = stripe.StripeClient(self._settings.api_key, **options)
        return self._client

    def reference_before_start(self, transaction_id: str) -> str | None:
        return None  # Stripe names the PaymentIntent when it creates it

    def check_attempt(
        self,
        amount: int,
        currency: str,
        payment_method: str | Mapping[str, Any] | None,
        capture_manually: bool,
    ) -> None:
        try:
            to_stripe(amount, currency)
        except AmountNotAccepted as refused:
            raise InvalidRequest(str(refused), "amount") from refused
        method_type = self._method_type(str(payment_method))
        if method_type not in _METHOD_CURRENCIES:
            raise InvalidRequest(
                f"A {method_type} PaymentMethod is not taken here; "
                f"use one of {', '.join(_METHOD_CURRENCIES)}.",
                "paymentMethod",
            )
        currencies = _METHOD_CURRENCIES[method_type]
        if currencies is not None and currency not in currencies:
            raise InvalidRequest(
                f"A {method_type} PaymentMethod pays in {', '.join(sorted(currencies))} only; "
                f"this session is in {currency}.",
                "paymentMethod",
            )
        if capture_manually and method_type not in _HOLDS:
            raise InvalidRequest(
                f"A {method_type} payment cannot be authorised now and captured later; "
                "use captureMethod AUTOMATIC.",
                "captureMethod",
            )

    def _method_type(self, payment_method: str) -> str:
        """The PaymentMethod's type (card, sepa_debit, ...): asked of Stripe once, then remembered."""
        import stripe

        known = self._method_types.get(payment_method)
        if known is not None:
            return known
        try:
            method = self._stripe().v1.payment_methods.retrieve(payment_method)
        except stripe.InvalidRequestError as refused:
            raise InvalidRequest(
                f"Stripe does not know this PaymentMethod: {refused.user_message or refused.code}.",
                "paymentMethod",
            ) from refused
        except stripe.StripeError as failed:
            raise ServiceUnavailable() from failed
        if len(self._method_types) >= _KNOWN_METHOD_TYPES:
            self._method_types.clear()
        self._method_types[payment_method] = str(method.type)
        return str(method.type)

    def start(self, attempt: Attempt) -> ProviderState:
        import stripe

        method_type = self._method_type(str(attempt.payment_method))
        params: dict[str, Any] = {
            "amount": to_stripe(attempt.amount, attempt.currency),
            "currency": attempt.currency.lower(),
            "payment_method": attempt.payment_method,
            "payment_method_types": [method_type],
            "capture_method": "manual" if attempt.capture_manually else "automatic",
            "metadata": {"sessionId": attempt.session_id, "transactionId": attempt.transaction_id},
        }
        # With a return_url, a payment that needs the customer answers requires_action with a redirect
        # (next_action.redirect_to_url) that brings them back there once they have authenticated.
        confirm: dict[str, Any] = {"return_url": attempt.return_url} if attempt.return_url else {}
        if method_type == "sepa_debit":
            # A server-side confirm of a debit carries the mandate the merchant collected from the customer.
            confirm["mandate_data"] = {"customer_acceptance": {"type": "offline"}}
        client = self._stripe()
        created: str | None = None
        try:
            intent = client.v1.payment_intents.create(
                params=params, options={"idempotency_key": attempt.transaction_id}
            )
            created = str(intent.id)
            if attempt.record_reference is not None and not attempt.record_reference(str(intent.id)):
                raise RuntimeError("the PaymentIntent's id could not be recorded: it is left unconfirmed")
            intent = client.v1.payment_intents.confirm(
                intent.id, params=confirm, options={"idempotency_key": f"confirm-{attempt.transaction_id}"}
            )
        except stripe.CardError as declined:
            error = declined.error
            code = (error.decline_code or error.code) if error else None
            return ProviderState(
                _intent_id_of(error),
                TransactionStatus.FAILED,
                code or "card_declined",
                refusal=Refusal.DECLINED,
            )
        except stripe.InvalidRequestError as refused:
            # Not a decline: Stripe refused the request (the merchant's input where it names a field).
            intent_id = _intent_id_of(refused.error) or created
            if refused.code == _UNEXPECTED_STATE and intent_id:
                return state_of(client.v1.payment_intents.retrieve(intent_id))  # cancelled meanwhile, say
            if refused.code == _METHOD_NOT_ACTIVATED:  # Stripe names `type`, or nothing, as its param
                return method_not_available(
                    "stripe", intent_id, _METHOD_NOT_ACTIVATED, refused.user_message or str(refused)
                )
            if refused.code in _CONFIGURATION_CODES:
                return ProviderState(
                    intent_id,
                    TransactionStatus.FAILED,
                    refused.code or "provider_configuration",
                    refusal=Refusal.CONFIGURATION,
                    refusal_message=refused.user_message or str(refused),
                )
            return ProviderState(
                intent_id,
                TransactionStatus.FAILED,
                refused.code or "invalid_request",
                refusal=Refusal.INPUT,
                refused_field=_FIELDS.get(refused.param or ""),
                refusal_message=refused.user_message or str(refused),
            )
        except (stripe.AuthenticationError, stripe.PermissionError) as misconfigured:
            return ProviderState(
                None,
                TransactionStatus.FAILED,
                "provider_configuration",
                refusal=Refusal.CONFIGURATION,
                refusal_message=type(misconfigured).__name__,
            )
        return state_of(intent)

    def cancellable_now(self, reference: str | None, transaction_id: str) -> bool:
        """False for an intent Stripe reports `processing` (it refuses that cancel); when it cannot be
        asked, True: the cancel is tried, and a refusal then leaves the payment pending."""
        if reference is None:
            return True
        try:
            return bool(self._stripe().v1.payment_intents.retrieve(reference).status != "processing")
        except Exception:
            return True

    def cancel(self, reference: str | None, transaction_id: str, reason_type: str | None) -> CancelOutcome:
        import stripe

        if reference is None:
            return CancelOutcome.FAILED  # the attempt's answer is not recorded yet: reconciliation finds it
        reason = _CANCELLATION_REASONS.get(reason_type or "", "requested_by_customer")
        try:
            self._stripe().v1.payment_intents.cancel(
                reference,
                params={"cancellation_reason": reason},
                # The reason is part of the request: a cancel asked for another reason has a key of its own.
                options={"idempotency_key": f"cancel-{transaction_id}-{reason}"},
            )
        except stripe.InvalidRequestError as refused:
            if refused.code == _REFUSED_WHILE_PROCESSING:
                current = self._stripe().v1.payment_intents.retrieve(reference)
                if current.status == "canceled":
                    return CancelOutcome.CANCELLED
                return CancelOutcome.NOT_SUPPORTED
            raise
        return CancelOutcome.CANCELLED

    def refund(self, reference: str | None, transaction_id: str) -> str:
        import stripe

        if reference is None:
            raise ValueError("no PaymentIntent recorded for this attempt")
        try:
            refund = self._stripe().v1.refunds.create(
                params={"payment_intent": reference, "metadata": {"transactionId": transaction_id}},
                options={"idempotency_key": f"refund-{transaction_id}"},
            )
        except stripe.InvalidRequestError as refused:
            if refused.code != _ALREADY_REFUNDED:
                raise
            # Refunded already: by an earlier call of ours whose answer was never recorded (its idempotency
            # key forgotten after 24 h), or in the Dashboard. The refund made is the one to record.
            return self._refund_made(reference, transaction_id)
        return str(refund.id)

    def _refund_made(self, reference: str, transaction_id: str) -> str:
        """The id of the refund Stripe already made of this PaymentIntent: ours (its metadata names the
        attempt) where there is one, else the latest that is not failed or cancelled."""
        found = self._stripe().v1.refunds.list(params={"payment_intent": reference, "limit": 100})
        refunds = [refund.to_dict() for refund in found.data]
        made = [refund for refund in refunds if refund.get("status") not in ("failed", "canceled")]
        ours = [r for r in made if (r.get("metadata") or {}).get("transactionId") == transaction_id]
        chosen = ours or made
        if not chosen:
            raise RuntimeError("Stripe says the payment is refunded but lists no refund of it")
        return str(chosen[0]["id"])

    def _refund_id(self, reference: str, transaction_id: str) -> str | None:
        try:
            return self._refund_made(reference, transaction_id)
        except RuntimeError:
            return None  # none listed yet: the refund job records it when it refunds

    def status(self, reference: str | None, transaction_id: str) -> ProviderState | None:
        """None for an attempt with no recorded intent: an intent is confirmed only once its id is
        recorded, so nothing of such an attempt can have charged."""
        if reference is None:
            return None
        client = self._stripe()
        intent = client.v1.payment_intents.retrieve(reference)
        age = int(time.time()) - int(intent.created or 0)
        if intent.status == "requires_confirmation" and age > self._settings.confirm_window_seconds:
            intent = client.v1.payment_intents.cancel(
                reference,
                params={"cancellation_reason": "abandoned"},
                options={"idempotency_key": f"abandon-{transaction_id}"},
            )
        return state_of(intent)

    def complete_return(
        self, reference: str | None, transaction_id: str, returned: Mapping[str, str]
    ) -> ProviderState | None:
        """The PaymentIntent as Stripe has it once the customer is back: its status says how the
        authentication went (the query Stripe adds, `redirect_status`, is not proof of anything). An
        intent whose authentication failed is cancelled: the way back carried its client secret, with which
        it could otherwise be confirmed again outside this service."""
        state = self.status(reference, transaction_id)
        if state is not None and state.status is TransactionStatus.FAILED and reference:
            import stripe

            try:
                self._stripe().v1.payment_intents.cancel(
                    reference,
                    params={"cancellation_reason": "abandoned"},
                    options={"idempotency_key": f"abandon-{transaction_id}"},
                )
            except stripe.StripeError:
                logger.warning(
                    "an intent whose authentication failed could not be cancelled",
                    extra={"transactionId": transaction_id},
                )
        return state

    def parse_event(self, headers: Mapping[str, str], raw: bytes, now: int) -> ProviderReport:
        import stripe

        header = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
        try:
            event = stripe.Webhook.construct_event(
                raw.decode("utf-8"), header or "", self._settings.webhook_secret, SIGNATURE_TOLERANCE_SECONDS
            )
        except (stripe.SignatureVerificationError, ValueError) as exc:
            raise InvalidSignature("Stripe-Signature is missing, stale or does not match.") from exc
        obj = event.data.object.to_dict()
        if event.type == "charge.refunded":
            if not obj.get("refunded"):
                return ProviderReport(event.id, None, None, None)  # partly refunded: not a move here
            metadata = dict(obj.get("metadata") or {})
            if not metadata.get("transactionId") and obj.get("payment_intent"):
                # A charge does not carry its PaymentIntent's metadata: ask for the intent's.
                intent = self._stripe().v1.payment_intents.retrieve(obj["payment_intent"])
                metadata = intent.metadata.to_dict()
            refunds = (obj.get("refunds") or {}).get("data") or []
            if refunds:
                refund_id: str | None = refunds[0]["id"]
            elif obj.get("payment_intent"):
                # Current API versions do not embed the refunds in the charge: ask for them.
                refund_id = self._refund_id(obj["payment_intent"], metadata.get("transactionId") or "")
            else:
                refund_id = None
            return ProviderReport(
                event.id,
                metadata.get("transactionId"),
                obj.get("payment_intent"),
                TransactionStatus.REFUNDED,
                refund_id=refund_id,
                **_money_of(obj),
            )
        status = _EVENT_STATUSES.get(event.type)
        if status is None:
            return ProviderReport(event.id, None, None, None)
        metadata = dict(obj.get("metadata") or {})
        failure = obj.get("last_payment_error") or {}
        code = (
            (failure.get("decline_code") or failure.get("code"))
            if status is TransactionStatus.FAILED
            else None
        )
        return ProviderReport(
            event.id,
            metadata.get("transactionId"),
            obj.get("id"),
            status,
            failure_code=code,
            **_money_of(obj),
        )


def _money_of(obj: dict[str, Any]) -> dict[str, Any]:
    """A PaymentIntent's or a Charge's amount and currency as a report carries them: ISO minor units and
    an upper-case code (Stripe writes lower case, in its own units)."""
    amount, currency = obj.get("amount"), obj.get("currency")
    code = currency.upper() if isinstance(currency, str) else None
    return {
        "amount": from_stripe(amount, code) if isinstance(amount, int) and code else None,
        "currency": code,
    }


def state_of(intent: Any) -> ProviderState:
    """A PaymentIntent (the SDK's object, or the dict of a webhook) as this service records it."""
    data = intent if isinstance(intent, dict) else intent.to_dict()
    status = _STATUSES.get(data.get("status", ""), TransactionStatus.PROCESSING)
    failure_code = None
    if status is TransactionStatus.FAILED:
        error = data.get("last_payment_error") or {}
        failure_code = error.get("decline_code") or error.get("code") or "payment_failed"
    next_action = data.get("next_action") or {}
    redirect = next_action.get("redirect_to_url") or {}
    waits_for_customer = data.get("status") == "requires_action" and redirect.get("url")
    return ProviderState(
        str(data["id"]),
        status,
        failure_code,
        next_action_url=str(redirect["url"]) if waits_for_customer else None,
        **_money_of(data),
    )


def _intent_id_of(error: Any) -> str | None:
    intent = getattr(error, "payment_intent", None) if error else None
    if intent is None:
        return None
    return str(intent["id"] if isinstance(intent, dict) else getattr(intent, "id", None) or "") or None
