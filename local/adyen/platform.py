"""The local Adyen's payments and modifications, in memory behind one lock, and the test controls; what it
reports later goes out through `notifications.Notifier`."""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from local.adyen.cards import (
    CURRENCIES,
    PENDING_HOLDER,
    REFUSALS,
    TEST_CARDS,
    THREE_DS_CARDS,
    brand_of,
    luhn_ok,
    new_psp_reference,
)
from local.adyen.notifications import Notification, Notifier
from local.adyen.openapi_check import OpenApiCheck

log = logging.getLogger("local.adyen")


@dataclass
class Payment:
    psp_reference: str
    reference: str
    amount: dict[str, Any]
    brand: str
    holder_name: str
    return_url: str
    manual_capture: bool
    status: str  # RedirectShopper | Authorised | Refused | Error | Cancelled
    result_code: str = ""  # what /payments answered, when it differs from the status (Received)
    refusal: tuple[str, str] | None = None  # refusalReason, refusalReasonCode
    captured: bool = False
    cancelled: bool = False
    refunded: int = 0
    redirect_token: str | None = None
    shopper_choice: str | None = None  # on the issuer's page: authenticated | failed | cancelled


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, error_type: str) -> None:
        super().__init__(message)
        self.body = {"status": status, "errorCode": code, "message": message, "errorType": error_type}
        self.status = status


@dataclass
class Settings:
    api_key: str
    merchant_account: str
    hmac_key: str
    notification_url: str | None
    public_url: str = ""  # where the shopper reaches the issuer's page (the emulator's own base URL)
    notification_delay_seconds: float = field(
        default_factory=lambda: float(os.environ.get("ADYEN_NOTIFICATION_DELAY_SECONDS", "1"))
    )
    notification_attempts: int = field(
        default_factory=lambda: int(os.environ.get("ADYEN_NOTIFICATION_ATTEMPTS", "5"))
    )


class Adyen:
    """Payments, their modifications and the test controls; every method takes the lock it needs."""

    def __init__(self, settings: Settings, check: OpenApiCheck) -> None:
        self.settings = settings
        self.check = check
        self._lock = threading.RLock()
        self.counts = {
            "requestViolations": 0,
            "responseViolations": 0,
            "notificationViolations": 0,
            "requests": 0,
        }
        self.violations: list[str] = []
        self.notifier = Notifier(
            settings.notification_url,
            settings.merchant_account,
            settings.hmac_key,
            settings.notification_delay_seconds,
            settings.notification_attempts,
            check,
            self.violation,
        )
        self._reset_state()

    def _reset_state(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.answered: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}  # by path and Idempotency-Key
        self.fail_cancels = 0
        self.fail_reason = "Cancellation failed"
        self.hold_count = 0
        self.hold_seconds = 0.0
        self.release_event = threading.Event()

    def reset(self) -> None:
        with self._lock:
            self.release_event.set()
            self._reset_state()
            self.notifier.reset()

    def stop(self) -> None:
        self.notifier.stop()
        with self._lock:
            self.release_event.set()

    def violation(self, kind: str, message: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.violations.append(f"{kind}: {message}")
        log.error("Adyen's OpenAPI document refuses this (%s): %s", kind, message)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "specViolations": sum(v for k, v in self.counts.items() if k.endswith("Violations")),
                **self.counts,
                "payments": len(self.payments),
                **self.notifier.counts(),
            }

    # ------------------------------------------------------------------------------------------- payments

    def create_payment(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The answer to /payments, and whether it is to be held back (the payment exists either way)."""
        amount = self._checked_amount(request["amount"])
        method = request["paymentMethod"]
        if method.get("type", "scheme") != "scheme":
            # As Adyen answers it: 500 with its error body (its OpenAPI document's generic-500 example is
            # errorCode 905, errorType configuration).
            raise ApiError(
                500, "905_1", "Could not find an acquirer account for the provided txvariant", "configuration"
            )
        number = method.get("number") or str(method.get("encryptedCardNumber", "")).removeprefix("test_")
        if not luhn_ok(number):
            raise ApiError(422, "101", "Invalid card number", "validation")
        brand = TEST_CARDS.get(number) or THREE_DS_CARDS.get(number) or brand_of(number)
        holder = str(method.get("holderName", "")).strip()
        additional = request.get("additionalData") or {}
        payment = Payment(
            psp_reference=new_psp_reference(),
            reference=request["reference"],
            amount=amount,
            brand=brand,
            holder_name=holder,
            return_url=request["returnUrl"],
            manual_capture=additional.get("manualCapture") == "true"
            or bool(request.get("captureDelayHours")),
            status="Authorised",
        )
        refusal = REFUSALS.get(holder.upper()) or self._card_refusal(method, number)
        if refusal is not None:
            payment.status, reason, code = refusal
            payment.refusal = (reason, code)
        elif holder.upper() == PENDING_HOLDER:
            payment.result_code = "Received"
        elif number in THREE_DS_CARDS:
            payment.status = "RedirectShopper"
            payment.redirect_token = secrets.token_urlsafe(24)
        with self._lock:
            self.payments[payment.psp_reference] = payment
            if payment.status == "Authorised":
                self._authorise(payment, success=True)
            elif payment.status in ("Refused", "Error"):
                self._notify_authorisation(payment, success=False)
            held = self.hold_count > 0
            if held:
                self.hold_count -= 1
        return self._payment_answer(payment), held

    def _checked_amount(self, amount: dict[str, Any]) -> dict[str, Any]:
        if amount["currency"] not in CURRENCIES:
            raise ApiError(422, "138", "Unsupported currency specified", "validation")
        if amount["value"] < 0:
            raise ApiError(422, "137", "Invalid amount specified", "validation")
        return {"currency": amount["currency"], "value": amount["value"]}

    @staticmethod
    def _card_refusal(method: dict[str, Any], number: str) -> tuple[str, str, str] | None:
        month = str(method.get("expiryMonth") or method.get("encryptedExpiryMonth", "")).removeprefix("test_")
        year = str(method.get("expiryYear") or method.get("encryptedExpiryYear", "")).removeprefix("test_")
        if month.isdigit() and year.isdigit():
            today = datetime.date.today()
            if (int(year), int(month)) < (today.year, today.month):
                return REFUSALS["CARD_EXPIRED"]
        cvc = str(method.get("cvc") or method.get("encryptedSecurityCode", "")).removeprefix("test_")
        expected = "7373" if TEST_CARDS.get(number) == "amex" else "737"
        if cvc and (number in TEST_CARDS or number in THREE_DS_CARDS) and cvc != expected:
            return REFUSALS["CVC_DECLINED"]
        return None

    def _authorise(self, payment: Payment, success: bool) -> None:
        if success:
            payment.status = "Authorised"
            payment.captured = payment.captured or not payment.manual_capture
        self._notify_authorisation(payment, success)

    def _notify_authorisation(self, payment: Payment, success: bool) -> None:
        reason = payment.refusal[0] if payment.refusal and not success else ""
        extra = {"operations": ["CANCEL", "CAPTURE", "REFUND"]} if success else {}
        self._schedule("AUTHORISATION", payment, payment.psp_reference, None, success, reason, extra=extra)

    def _payment_answer(self, payment: Payment) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "pspReference": payment.psp_reference,
            "resultCode": payment.result_code or payment.status,
            "merchantReference": payment.reference,
            "amount": dict(payment.amount),
            "paymentMethod": {"type": "scheme", "brand": payment.brand},
        }
        if payment.refusal is not None:
            answer["refusalReason"], answer["refusalReasonCode"] = payment.refusal
        if payment.status == "RedirectShopper":
            answer["action"] = {
                "type": "redirect",
                "method": "GET",
                "url": f"{self.settings.public_url}/_emulator/3ds/{payment.redirect_token}",
                "paymentMethodType": "scheme",
            }
        return answer

    def payment_details(self, request: dict[str, Any]) -> dict[str, Any]:
        token = (request.get("details") or {}).get("redirectResult")
        with self._lock:
            payment = next((p for p in self.payments.values() if token and p.redirect_token == token), None)
            if payment is None or payment.shopper_choice is None:
                raise ApiError(422, "14_018", "Invalid payload provided", "validation")
            if payment.status == "RedirectShopper":
                if payment.cancelled or payment.shopper_choice == "cancelled":
                    payment.status = "Cancelled"
                elif payment.shopper_choice == "failed":
                    payment.status, reason, code = REFUSALS["NOT_3D_AUTHENTICATED"]
                    payment.refusal = (reason, code)
                    self._notify_authorisation(payment, success=False)
                else:
                    self._authorise(payment, success=True)
            return self._payment_answer(payment)

    def shopper_chooses(self, token: str, choice: str) -> str | None:
        """The shopper's answer on the issuer's page; the URL to send them back to."""
        with self._lock:
            payment = next((p for p in self.payments.values() if p.redirect_token == token), None)
            if payment is None or choice not in ("authenticated", "failed", "cancelled"):
                return None
            payment.shopper_choice = payment.shopper_choice or choice
            separator = "&" if urllib.parse.urlsplit(payment.return_url).query else "?"
            return f"{payment.return_url}{separator}redirectResult={urllib.parse.quote(token)}"

    # -------------------------------------------------------------------------------------- modifications

    def modify(self, kind: str, psp: str | None, request: dict[str, Any]) -> dict[str, Any]:
        """A modification is acknowledged at once (`received`); its outcome goes out as a notification."""
        modification_psp = new_psp_reference()
        with self._lock:
            if kind == "technical-cancel":
                matches = [p for p in self.payments.values() if p.reference == request["paymentReference"]]
                payment = matches[-1] if matches else None
            else:
                payment = self.payments.get(psp or "")
            answer: dict[str, Any] = {
                "merchantAccount": request["merchantAccount"],
                "pspReference": modification_psp,
                "status": "received",
            }
            if "reference" in request:
                answer["reference"] = request["reference"]
            if kind == "technical-cancel":
                answer["paymentReference"] = request["paymentReference"]
            else:
                answer["paymentPspReference"] = psp
            if kind in ("capture", "refund"):
                answer["amount"] = self._checked_amount(request["amount"])
            success, reason, extra = self._apply(kind, payment, request)
            event = {
                "cancel": "CANCELLATION",
                "technical-cancel": "TECHNICAL_CANCEL",
                "capture": "CAPTURE",
                "refund": "REFUND",
                "reversal": "CANCEL_OR_REFUND",
            }[kind]
            if payment is None:
                amount = answer.get("amount") or {"currency": "EUR", "value": 0}
                reference = request.get("paymentReference") or request.get("reference") or ""
                unknown = self.notifier.make(event, modification_psp, None, reference, amount, False, reason)
                self.notifier.send_later(unknown)
            else:
                amount = answer.get("amount") or payment.amount
                self._schedule(
                    event, payment, modification_psp, payment.psp_reference, success, reason, amount, extra
                )
        return answer

    def _apply(
        self, kind: str, payment: Payment | None, request: dict[str, Any]
    ) -> tuple[bool, str, dict[str, Any]]:
        if payment is None:
            return False, "Original pspReference not found", {}
        cancellable = payment.status in ("Authorised", "RedirectShopper") and not payment.cancelled
        if kind in ("cancel", "technical-cancel") or (kind == "reversal" and not payment.captured):
            extra = {"additionalData": {"modification.action": "cancel"}} if kind == "reversal" else {}
            if not cancellable:
                return False, "Payment is not authorised", extra
            if payment.captured:
                return False, "Payment has already been captured", extra
            if self.fail_cancels > 0:
                self.fail_cancels -= 1
                return False, self.fail_reason, extra
            payment.cancelled = True
            return True, "", extra
        if kind == "reversal":  # captured: refunded in full
            remaining = payment.amount["value"] - payment.refunded
            if payment.cancelled or remaining <= 0:
                return False, "Payment has already been refunded", {}
            payment.refunded = payment.amount["value"]
            return True, "", {"additionalData": {"modification.action": "refund"}}
        amount = request["amount"]
        if amount["currency"] != payment.amount["currency"]:
            return False, "Currency does not match the payment's", {}
        if kind == "capture":
            if not cancellable or payment.captured or amount["value"] > payment.amount["value"]:
                return False, "Payment cannot be captured", {}
            payment.captured = True
            return True, "", {}
        if not payment.captured or payment.refunded + amount["value"] > payment.amount["value"]:
            return False, "Payment cannot be refunded", {}
        payment.refunded += amount["value"]
        return True, "", {}

    def notify_now(self, request: dict[str, Any]) -> tuple[int, str]:
        """Notifications the test asks for (`{"items": [...]}` for several in one request), sent at once and
        applied to their payments (a successful CAPTURE captures, AUTHORISATION authorises)."""
        specs = request.get("items") or [request]
        with self._lock:
            made = [self._notification_asked(spec) for spec in specs]
        notification = made[0] if len(made) == 1 else self.notifier.batch(made)
        return self.notifier.send_now(notification)

    def _notification_asked(self, spec: dict[str, Any]) -> Notification:
        event = str(spec.get("eventCode", ""))
        success = spec.get("success", True) not in (False, "false")
        payment = self.payments.get(str(spec.get("pspReference", "")))
        if payment is None:
            raise ApiError(404, "000", "No such payment", "validation")
        if event == "CAPTURE" and success:
            payment.captured = True
        if event == "AUTHORISATION" and success:
            payment.status = "Authorised"
        own = event == "AUTHORISATION"
        notification = self._make(
            event,
            payment,
            payment.psp_reference if own else new_psp_reference(),
            None if own else payment.psp_reference,
            success,
            str(spec.get("reason", "")),
        )
        if spec.get("badSignature"):
            notification.item["additionalData"]["hmacSignature"] = "forged" + "A" * 38
        return notification

    def _schedule(
        self,
        event: str,
        payment: Payment,
        psp: str,
        original: str | None,
        success: bool,
        reason: str,
        amount: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Notification:
        """A notification about a payment, sent after the delay (or dropped, as the test asked)."""
        notification = self._make(event, payment, psp, original, success, reason, amount, extra)
        self.notifier.send_later(notification)
        return notification

    def _make(
        self,
        event: str,
        payment: Payment,
        psp: str,
        original: str | None,
        success: bool,
        reason: str,
        amount: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Notification:
        extra = {"paymentMethod": payment.brand, **(extra or {})}
        return self.notifier.make(
            event, psp, original, payment.reference, amount or payment.amount, success, reason, extra
        )
