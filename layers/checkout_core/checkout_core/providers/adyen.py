"""Adyen's Checkout API (v71) through the official `Adyen` SDK's own service classes: the only code that
talks to Adyen.

Adyen answers later: a cancel is acknowledged (`received`) and its outcome arrives in a notification, so
`cancel` says REQUESTED; an attempt whose `/payments` call never answered has no pspReference and is
cancelled by our own reference (the technical cancel); Adyen has no API to ask a payment's status.

`/payments` resultCode mapping: Authorised -> AUTHORIZED (manual capture) or SETTLED (automatic);
Refused / Error -> FAILED with `refusalReason`; Pending / Received and the ones that wait for the
shopper (RedirectShopper, ChallengeShopper, IdentifyShopper, PresentToShopper) -> PROCESSING;
Cancelled -> CANCELLED.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from checkout_core.errors import InvalidRequest, InvalidSignature
from checkout_core.providers.base import (
    Attempt,
    CancelOutcome,
    ProviderBatch,
    ProviderReport,
    ProviderState,
    Refusal,
    method_not_available,
    page_origins_of,
)
from checkout_core.transitions import TransactionStatus

ACKNOWLEDGEMENT = "[accepted]"  # the body Adyen requires, or it sends the notification again
HTTP_TIMEOUT_SECONDS = 8  # under the shortest Lambda timeout of a function that calls Adyen (10 s)
CHECKOUT_API_VERSION = 71
MAX_NOTIFICATION_ITEMS = 100

_RESULT_CODES = {
    "Authorised": TransactionStatus.AUTHORIZED,  # SETTLED when the capture is automatic: see state_of
    "Refused": TransactionStatus.FAILED,
    "Error": TransactionStatus.FAILED,
    "Cancelled": TransactionStatus.CANCELLED,
    "Pending": TransactionStatus.PROCESSING,
    "Received": TransactionStatus.PROCESSING,
    "RedirectShopper": TransactionStatus.PROCESSING,
    "ChallengeShopper": TransactionStatus.PROCESSING,
    "IdentifyShopper": TransactionStatus.PROCESSING,
    "PresentToShopper": TransactionStatus.PROCESSING,
}
# eventCode -> the status a successful notification of it reports.
_SUCCEEDED = {
    "AUTHORISATION": TransactionStatus.AUTHORIZED,  # a settlement when the capture is automatic
    "CANCELLATION": TransactionStatus.CANCELLED,
    "TECHNICAL_CANCEL": TransactionStatus.CANCELLED,
    "CAPTURE": TransactionStatus.SETTLED,
    "REFUND": TransactionStatus.REFUNDED,
}
# eventCodes whose `success: "false"` means a cancel Adyen had accepted did not happen. (A CANCEL_OR_REFUND
# answers a reversal, which only refund() asks for: its refusal is a refund not made.)
_CANCELS = frozenset({"CANCELLATION", "TECHNICAL_CANCEL"})
# Handled, and nothing to move: the card scheme refused a capture or a refund Adyen had accepted, so the
# money did not move as recorded; a person must look (Adyen: some need the merchant, or Adyen's support).
_NO_MOVE = frozenset({"CAPTURE_FAILED", "REFUND_FAILED"})
# The notifications whose `amount` is the payment's money that moved: matched against the record.
_MONEY_MOVED = frozenset({"AUTHORISATION", "CAPTURE", "REFUND", "CANCEL_OR_REFUND"})


@dataclass(frozen=True)
class AdyenSettings:
    api_key: str
    merchant_account: str
    hmac_key: str
    api_base: str | None = None  # a local Adyen instead of Adyen's test environment
    live_endpoint_prefix: str | None = None  # Adyen's live environment (the account's own prefix)


class AdyenProvider:
    name = "adyen"
    cancel_in_flight = True
    cancel_is_async = True
    cancel_by_our_reference = True
    reverses = True  # refund() is Adyen's reversal: a cancel if not captured yet, else a refund
    refund_is_async = True  # a reversal is `received`; CANCEL_OR_REFUND reports its outcome
    has_status_api = False
    requires_payment_method = True
    payment_method_is_object = True

    def __init__(self, settings: AdyenSettings) -> None:
        self._settings = settings
        self._services: tuple[Any, Any] | None = None

    @property
    def customer_page_origins(self) -> tuple[str, ...]:
        """The issuer's 3-D Secure page may be on any host (Adyen's `action.url`); a local Adyen: its own."""
        return page_origins_of(self._settings.api_base, "https:")

    def _checkout(self) -> tuple[Any, Any]:
        """The SDK's PaymentsApi and ModificationsApi, made on first use, on Checkout API v71 whatever the
        SDK's default. A local Adyen is set as the services' own `baseUrl` (the SDK rewrites the version
        only in Adyen's own addresses, so it is part of the base here)."""
        if self._services is None:
            from Adyen import AdyenClient
            from Adyen.services.checkout import ModificationsApi, PaymentsApi

            live = bool(self._settings.live_endpoint_prefix)
            client = AdyenClient(
                xapikey=self._settings.api_key,
                platform="live" if live else "test",
                live_endpoint_prefix=self._settings.live_endpoint_prefix,
                merchant_account=self._settings.merchant_account,
                api_checkout_version=CHECKOUT_API_VERSION,
                http_force="urllib",  # the standard library's client: no other package in the layer
                http_timeout=HTTP_TIMEOUT_SECONDS,
            )
            payments, modifications = PaymentsApi(client), ModificationsApi(client)
            if self._settings.api_base:
                base = f"{self._settings.api_base.rstrip('/')}/v{CHECKOUT_API_VERSION}"
                for service in (payments, modifications):
                    service.baseUrl = base
            self._services = (payments, modifications)
        return self._services

    def reference_before_start(self, transaction_id: str) -> str | None:
        return None  # Adyen names the payment (pspReference) when it answers

    def check_attempt(
        self,
        amount: int,
        currency: str,
        payment_method: str | Mapping[str, Any] | None,
        capture_manually: bool,
    ) -> None:
        return None  # Adyen takes ISO minor units as they are; its own refusals come with its answer

    def start(self, attempt: Attempt) -> ProviderState:
        from Adyen import (
            AdyenAPIAuthenticationError,
            AdyenAPICommunicationError,
            AdyenAPIInvalidPermission,
            AdyenAPIUnprocessableEntity,
            AdyenAPIValidationError,
        )

        if not isinstance(attempt.payment_method, Mapping):
            raise ValueError("Adyen takes its own paymentMethod object")  # refused at the edge already
        payments, _ = self._checkout()
        request: dict[str, Any] = {
            "amount": {"value": attempt.amount, "currency": attempt.currency},
            "reference": attempt.transaction_id,
            "merchantAccount": self._settings.merchant_account,
            "paymentMethod": dict(attempt.payment_method),
            "returnUrl": attempt.return_url,
            "shopperInteraction": "Ecommerce",
            "metadata": {"sessionId": attempt.session_id},
        }
        if attempt.capture_manually:
            request["additionalData"] = {"manualCapture": "true"}
        try:
            result = payments.payments(request, idempotency_key=attempt.transaction_id)
        except (AdyenAPIUnprocessableEntity, AdyenAPIValidationError) as refused:
            # Adyen refused the request itself, not the shopper's payment: no payment was made. Its
            # `errorType` says whose it is: this account's set-up, or the merchant's paymentMethod (an
            # invalid card number).
            return _refusal(
                refused,
                input_field="paymentMethod" if isinstance(refused, AdyenAPIUnprocessableEntity) else None,
            )
        except AdyenAPICommunicationError as failed:
            # Adyen answers some refusals of the account's set-up with 500 and its error body (905_1, no
            # acquirer for the method: "errorType": "configuration"); a 500 without one is an outage,
            # whose outcome is unknown: left to reconciliation.
            if failed.status_code == 500 and _error_type(failed) in _SET_UP_ERRORS:
                return _refusal(failed, input_field=None)
            raise
        except (AdyenAPIAuthenticationError, AdyenAPIInvalidPermission) as misconfigured:
            return ProviderState(
                None,
                TransactionStatus.FAILED,
                "provider_configuration",
                refusal=Refusal.CONFIGURATION,
                refusal_message=type(misconfigured).__name__,
            )
        return state_of(result.message or {}, attempt.capture_manually)

    def cancellable_now(self, reference: str | None, transaction_id: str) -> bool:
        return True  # Adyen accepts every cancel and reports later whether it happened

    def cancel(self, reference: str | None, transaction_id: str, reason_type: str | None) -> CancelOutcome:
        _, modifications = self._checkout()
        request = {"merchantAccount": self._settings.merchant_account, "reference": transaction_id}
        if reference is None:
            # The technical cancel: by our own reference, for an attempt whose pspReference is unknown.
            result = modifications.cancel_authorised_payment(
                {**request, "paymentReference": transaction_id},
                idempotency_key=f"technical-cancel-{transaction_id}",
            )
        else:
            result = modifications.cancel_authorised_payment_by_psp_reference(
                request, reference, idempotency_key=f"cancel-{transaction_id}"
            )
        status = (result.message or {}).get("status")
        return CancelOutcome.REQUESTED if status == "received" else CancelOutcome.FAILED

    def refund(self, reference: str | None, transaction_id: str) -> str:
        if reference is None:
            raise ValueError("no pspReference recorded for this attempt")
        _, modifications = self._checkout()
        result = modifications.refund_or_cancel_payment(
            {"merchantAccount": self._settings.merchant_account, "reference": transaction_id},
            reference,
            idempotency_key=f"reversal-{transaction_id}",
        )
        message = result.message or {}
        if message.get("status") != "received" or not message.get("pspReference"):
            raise ValueError("Adyen did not accept the reversal")
        return str(message["pspReference"])

    def status(self, reference: str | None, transaction_id: str) -> ProviderState | None:
        return None  # Adyen has no API to ask a payment's status

    def complete_return(
        self, reference: str | None, transaction_id: str, returned: Mapping[str, str]
    ) -> ProviderState | None:
        """Adyen completes a redirected payment only when asked: `/payments/details` with the
        `redirectResult` it brought the shopper back with (its AUTHORISATION notification follows)."""
        redirect_result = returned.get("redirectResult")
        if not redirect_result:
            return None
        payments, _ = self._checkout()
        # Keyed by the redirectResult too: another result for this attempt is not answered from the first.
        digest = hashlib.sha256(redirect_result.encode()).hexdigest()[:32]
        result = payments.payments_details(
            {"details": {"redirectResult": redirect_result}},
            idempotency_key=f"details-{transaction_id}-{digest}",
        )
        answer = result.message or {}
        if answer.get("merchantReference") != transaction_id:
            return None  # not shown to be this attempt's (another payment's redirectResult): not taken
        # Authorised stays AUTHORIZED here: the attempt's own capture method makes it a settlement
        # (provider_batches.as_recorded), as for the notification.
        return state_of(answer, capture_manually=True)

    def parse_event(self, headers: Mapping[str, str], raw: bytes, now: int) -> ProviderReport:
        reports = self.parse_batch(headers, raw, now).reports
        if len(reports) != 1:
            raise InvalidRequest("One notification item was expected.", "notificationItems")
        return reports[0]

    def parse_batch(self, headers: Mapping[str, str], raw: bytes, now: int) -> ProviderBatch:
        """Adyen's notification: every item's HMAC checked first (with the SDK's own utility), then that
        each is for this merchant account, then each read. Adyen signs items, not requests."""
        items = notification_items(raw)
        for index, item in enumerate(items):
            if not hmac_is_valid(item, self._settings.hmac_key):
                raise InvalidSignature(
                    f"notificationItems.{index} is not signed with this account's HMAC key."
                )
        for index, item in enumerate(items):
            if item.get("merchantAccountCode") != self._settings.merchant_account:
                raise InvalidRequest(
                    "The notification is for another merchant account.",
                    f"notificationItems.{index}.NotificationRequestItem.merchantAccountCode",
                )
        return ProviderBatch(tuple(report_of(item) for item in items), ACKNOWLEDGEMENT)


def state_of(response: Mapping[str, Any], capture_manually: bool) -> ProviderState:
    """A `/payments` answer as this service records it."""
    result_code = str(response.get("resultCode", ""))
    status = _RESULT_CODES.get(result_code, TransactionStatus.PROCESSING)
    if status is TransactionStatus.AUTHORIZED and not capture_manually:
        status = TransactionStatus.SETTLED
    reference = response.get("pspReference")
    failure_code = None
    if status is TransactionStatus.FAILED:
        failure_code = str(response.get("refusalReason") or result_code or "Refused")
    action = response.get("action") or {}
    # A redirect the shopper's browser follows by GET; one to POST (3-D Secure 1) has no address alone.
    redirect = action.get("type") == "redirect" and action.get("method", "GET") == "GET" and action.get("url")
    return ProviderState(
        str(reference) if reference else None,
        status,
        failure_code,
        next_action_url=str(action["url"]) if redirect and status is TransactionStatus.PROCESSING else None,
    )


def notification_items(raw: bytes) -> list[dict[str, Any]]:
    """The NotificationRequestItem objects of a notification body. A body of another shape carries no item
    signed as Adyen signs them: InvalidSignature, as for any provider's unsigned event."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidSignature("The body is not Adyen's signed notification.") from exc
    wrapped = body.get("notificationItems") if isinstance(body, dict) else None
    if not isinstance(wrapped, list) or not 1 <= len(wrapped) <= MAX_NOTIFICATION_ITEMS:
        raise InvalidSignature(f"notificationItems must hold 1 to {MAX_NOTIFICATION_ITEMS} signed items.")
    items = []
    for index, entry in enumerate(wrapped):
        item = entry.get("NotificationRequestItem") if isinstance(entry, dict) else None
        if not isinstance(item, dict):
            raise InvalidSignature(f"notificationItems.{index} is not a signed NotificationRequestItem.")
        items.append(item)
    return items


def hmac_is_valid(item: Mapping[str, Any], hmac_key: str) -> bool:
    """Adyen's HMAC of one item, checked by the SDK's utility; a missing signature, a missing signed field
    or an unusable key is a bad signature, never an error."""
    from Adyen.util import is_valid_hmac_notification

    additional = item.get("additionalData")
    if not hmac_key or not isinstance(additional, dict) or not additional.get("hmacSignature"):
        return False
    try:
        return bool(is_valid_hmac_notification(dict(item), hmac_key))
    except (KeyError, TypeError, ValueError):  # binascii.Error is a ValueError
        return False


def report_of(item: Mapping[str, Any]) -> ProviderReport:
    """One notification item as a report; deduplicated by pspReference + eventCode + success."""
    event_code = str(item.get("eventCode", ""))
    psp = str(item.get("pspReference", ""))
    succeeded = str(item.get("success", "")).lower() == "true"
    event_id = f"{psp}:{event_code}:{'true' if succeeded else 'false'}"
    transaction_id = item.get("merchantReference") or None
    # The payment's own pspReference: a modification's notification names it `originalReference`.
    payment = item.get("originalReference") or (psp if event_code == "AUTHORISATION" else None)
    reference = str(payment) if payment else None
    if event_code in _NO_MOVE:
        return ProviderReport(event_id, transaction_id, reference, None, attention=event_code)
    if not succeeded:
        if event_code == "AUTHORISATION":
            reason = str(item.get("reason") or "Refused")
            return ProviderReport(
                event_id, transaction_id, reference, TransactionStatus.FAILED, failure_code=reason
            )
        if event_code == "CANCEL_OR_REFUND":
            return ProviderReport(event_id, transaction_id, reference, None, attention="REFUND_NOT_MADE")
        return ProviderReport(
            event_id, transaction_id, reference, None, cancel_refused=event_code in _CANCELS
        )
    money = _money_of(item) if event_code in _MONEY_MOVED else {}
    if event_code == "CANCEL_OR_REFUND":
        # Only refund() asks for a reversal, of a payment recorded SETTLED: cancelled before its capture
        # or refunded after it (`modification.action`), the customer has the money back either way.
        return ProviderReport(
            event_id, transaction_id, reference, TransactionStatus.REFUNDED, refund_id=psp or None, **money
        )
    status = _SUCCEEDED.get(event_code)
    refund_id = psp or None if status is TransactionStatus.REFUNDED else None
    return ProviderReport(event_id, transaction_id, reference, status, refund_id=refund_id, **money)


def _money_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """A notification's amount (Adyen's `value` is in ISO 4217 minor units) and currency."""
    amount = item.get("amount") or {}
    value, currency = amount.get("value"), amount.get("currency")
    return {
        "amount": value if isinstance(value, int) else None,
        "currency": str(currency).upper() if currency else None,
    }


# Adyen's "no acquirer account for the provided txvariant": the account takes no such method. The same
# request never succeeds, and another method may: the merchant's to change (400), not a service outage.
_METHODS_NOT_ON_THIS_ACCOUNT = frozenset({"adyen_905_1"})
# Adyen's errorTypes of a refusal that is this account's set-up or credentials, not the merchant's input.
_SET_UP_ERRORS = ("configuration", "security")


def _refusal(refused: Any, input_field: str | None) -> ProviderState:
    """A request Adyen refused (no payment made): a method this account does not take is the merchant's to
    change (400 naming paymentMethod); other `configuration` or `security` errors are this service's
    set-up (503); anything else is the merchant's input."""
    code = _error_code(refused)
    if code in _METHODS_NOT_ON_THIS_ACCOUNT:
        return method_not_available("adyen", None, code, _error_message(refused))
    if _error_type(refused) in _SET_UP_ERRORS:
        return ProviderState(
            None,
            TransactionStatus.FAILED,
            code,
            refusal=Refusal.CONFIGURATION,
            refusal_message=_error_message(refused),
        )
    return ProviderState(
        None,
        TransactionStatus.FAILED,
        code,
        refusal=Refusal.INPUT,
        refused_field=input_field,
        refusal_message=_error_message(refused),
    )


def _error_message(error: Any) -> str:
    """Adyen's own words for a refused request (the SDK keeps its whole answer as `message`)."""
    message = getattr(error, "message", None)
    if isinstance(message, Mapping):
        message = message.get("message")
    return str(message or _error_code(error))


def _error_type(error: Any) -> str | None:
    """Adyen's `errorType` of a refused request (validation, configuration, security, ...)."""
    try:
        answer = json.loads(getattr(error, "raw_response", None) or "{}")
    except (TypeError, ValueError):
        return None
    return str(answer.get("errorType")) if isinstance(answer, dict) and answer.get("errorType") else None


def _error_code(error: Any) -> str:
    code = getattr(error, "error_code", None)
    return f"adyen_{code}" if code else "invalid_request"
