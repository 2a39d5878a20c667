"""The local Adyen: the part of Adyen's Checkout API v71 that the `adyen` provider calls, with payments kept
in memory and Adyen's standard notifications sent back signed. `python -m local.adyen_emulator --port N ...`.

Answers as Adyen documents (docs.adyen.com: "Test card numbers", "Testing result codes and refusal reasons"):
- `POST /v71/payments` with a card (`paymentMethod.type` `scheme`; `number`, or `encryptedCardNumber` with
  Adyen's `test_` prefix): Adyen's test cards (e.g. 4111111111111111, 5555341244441115, expiry 03/2030, CVC
  737, Amex 7373) are `Authorised`; a number that fails the Luhn check is a 422 (`101 Invalid card number`);
  a past expiry is `Refused` / `Expired Card`, a wrong CVC on a test card `Refused` / `CVC Declined`. The
  holder name asks for an outcome, as on Adyen's test platform (`DECLINED` → `Refused`, `NOT_ENOUGH_BALANCE`,
  `CARD_EXPIRED`, `ERROR` → `Error`, `PENDING` → `Received`, ... see REFUSALS). The 3-D Secure 2 test cards
  (THREE_DS_CARDS) answer `RedirectShopper` with a `redirect` action to a one-screen stand-in for the
  issuer's page (authenticate / fail / cancel), which sends the shopper to `returnUrl?redirectResult=...`;
  `POST /v71/payments/details` with that `redirectResult` completes the payment. Manual capture:
  `additionalData.manualCapture: "true"` or `captureDelayHours`; otherwise an authorised payment is captured
  at once.
- `POST /v71/payments/{psp}/cancels`, `/captures`, `/refunds`, `/reversals` and `POST /v71/cancels` (by
  `paymentReference`: Adyen's technical cancel) answer 201 `status: received`; their outcome follows in a
  notification (CANCELLATION, CAPTURE, REFUND, CANCEL_OR_REFUND with `modification.action`,
  TECHNICAL_CANCEL), `success: "false"` with a `reason` where Adyen would refuse (already captured, not
  authorised, unknown payment).
- Authentication by `X-API-Key` (401 otherwise), the merchant account (403 `901`), the currency (422 `138`)
  and a negative amount (422 `137`) are checked as Adyen does.

Every request to `/v71/...` and every answer is checked against Adyen's published OpenAPI document
(tests/data/adyen/CheckoutService-v71.json), every notification against its webhooks document
(Webhooks-v1.json), with `openapi-schema-validator` (OAS 3.1). A request the document refuses is answered 422
in Adyen's error shape (`errorType: validation`) and counted; an answer or notification it refuses is logged
at ERROR and counted. The counts are read at `GET /_emulator/stats` (`specViolations` is their sum; it stays
0 on a faithful run).

Notifications (Adyen's JSON: `{"live": "false", "notificationItems": [{"NotificationRequestItem": {...}}]}`,
one item per request, signed with the SDK's own `Adyen.util.generate_notification_sig` into
`additionalData.hmacSignature`) are POSTed to the notification URL from a background thread after
ADYEN_NOTIFICATION_DELAY_SECONDS (default 1) and retried (ADYEN_NOTIFICATION_ATTEMPTS, default 5, backing off
from 1 s) until the receiver answers 2xx with the body `[accepted]`. `merchantReference` is always the
payment's own `reference`; for a modification `originalReference` is the payment's pspReference and
`pspReference` the modification's.

Control routes (outside Adyen's paths, not checked against the document; JSON in, JSON out):
- `GET  /_emulator/stats`: `{"specViolations", "requestViolations", "responseViolations",
  "notificationViolations", "requests", "payments", "notificationsSent", "notificationsDropped",
  "notificationsFailed", "notificationsPending"}`
- `GET  /_emulator/violations`: the messages behind the counts
- `GET  /_emulator/notifications`: every notification with its state (pending, sent, dropped, failed) and
  attempts
- `POST /_emulator/notifications` `{"drop": true | false | n, "delaySeconds": s}`: drop every (or the next n)
  notification instead of sending it; change the delay
- `POST /_emulator/fail-cancels` `{"count": n, "reason": "..."}`: the next n cancels (by pspReference,
  technical, or a reversal of an uncaptured payment) are acknowledged but fail: `success: "false"`, the
  payment stays authorised
- `POST /_emulator/notify` `{"eventCode": "CAPTURE", "pspReference": "<payment>", "success": true, "reason":
  "", "badSignature": false}`: send that notification for a payment now, and apply it (CAPTURE captures,
  AUTHORISATION authorises); answers the receiver's status and body
- `POST /_emulator/hold-payments` `{"count": n, "seconds": s}`: the next n `/payments` are processed (the
  payment exists, its notification follows) but answered only after s seconds or a release, as when an answer
  is lost
- `POST /_emulator/release`: answer the held calls now
- `POST /_emulator/reset`: forget payments, notifications and controls (the violation counts stay)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import heapq
import html
import itertools
import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from Adyen.util import generate_notification_sig
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

log = logging.getLogger("local.adyen")

SPEC_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "adyen"
CHECKOUT_SPEC = SPEC_DIR / "CheckoutService-v71.json"
WEBHOOKS_SPEC = SPEC_DIR / "Webhooks-v1.json"
VERSION_PREFIX = "/v71"

# Adyen's test cards (docs.adyen.com/development-resources/testing/test-card-numbers): expiry 03/2030, CVC 737
# (Amex 7373). Other Luhn-valid numbers are authorised too, as on Adyen's test platform.
TEST_CARDS = {
    "4111111111111111": "visa",
    "4111111145551142": "visa",
    "4988438843884305": "visa",
    "4166676667666746": "visa",
    "4646464646464644": "visa",
    "4444333322221111": "visa",
    "4400000000000008": "visa",
    "5555341244441115": "mc",
    "5555555555554444": "mc",
    "5555444433331111": "mc",
    "5100290029002909": "mc",
    "5500000000000004": "mc",
    "2222400070000005": "mc",
    "370000000000002": "amex",
    "371449635398431": "amex",
}
THREE_DS_CARDS = {  # 3-D Secure 2 test cards: the issuer asks the shopper to authenticate
    "4212345678910006": "visa",
    "4917610000000000": "visa",
    "5454545454545454": "mc",
    "5201281505129736": "mc",
}
# holderName → (resultCode, refusalReason, refusalReasonCode), Adyen's "Values for testing refusal reasons".
REFUSALS = {
    "UNKNOWN": ("Error", "Unknown", "0"),
    "DECLINED": ("Refused", "Refused", "2"),
    "REFERRAL": ("Refused", "Referral", "3"),
    "ERROR": ("Error", "Acquirer Error", "4"),
    "BLOCK_CARD": ("Refused", "Blocked Card", "5"),
    "CARD_EXPIRED": ("Refused", "Expired Card", "6"),
    "INVALID_AMOUNT": ("Refused", "Invalid Amount", "7"),
    "INVALID_CARD_NUMBER": ("Refused", "Invalid Card Number", "8"),
    "ISSUER_UNAVAILABLE": ("Refused", "Issuer Unavailable", "9"),
    "NOT_SUPPORTED": ("Refused", "Not supported", "10"),
    "NOT_3D_AUTHENTICATED": ("Refused", "3D Not Authenticated", "11"),
    "NOT_ENOUGH_BALANCE": ("Refused", "Not enough balance", "12"),
    "ACQUIRER_FRAUD": ("Refused", "Acquirer Fraud", "14"),
    "CANCELLED": ("Refused", "Cancelled", "15"),
    "SHOPPER_CANCELLED": ("Refused", "Shopper Cancelled", "16"),
    "FRAUD": ("Refused", "FRAUD", "20"),
    "TRANSACTION_NOT_PERMITTED": ("Refused", "Transaction Not Permitted", "23"),
    "CVC_DECLINED": ("Refused", "CVC Declined", "24"),
    "RESTRICTED_CARD": ("Refused", "Restricted Card", "25"),
}
PENDING_HOLDER = (
    "PENDING"  # Adyen's trigger for resultCode Received (code 13): the outcome comes by notification
)
CURRENCIES = set(
    "AED AUD BGN BHD BRL CAD CHF CLP CNY COP CZK DKK EGP EUR GBP HKD HUF IDR ILS INR ISK JOD JPY KRW KWD MAD "
    "MXN MYR NOK NZD OMR PEN PHP PKR PLN QAR RON RSD SAR SEK SGD THB TND TRY TWD UAH USD VND ZAR".split()
)
PSP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_psp_reference() -> str:
    return "".join(secrets.choice(PSP_ALPHABET) for _ in range(16))


def _brand(number: str) -> str:
    return "visa" if number.startswith("4") else "amex" if number[:2] in ("34", "37") else "mc"


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char) * (2 if index % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


# ---------------------------------------------------------------------------------------------- OpenAPI check


class OpenApiCheck:
    """Adyen's published documents, as validators: a request body and an answer per operation, a notification
    per event code. Schemas are resolved inside their own document (`#/components/schemas/...`)."""

    def __init__(self, checkout_path: Path = CHECKOUT_SPEC, webhooks_path: Path = WEBHOOKS_SPEC) -> None:
        checkout = json.loads(checkout_path.read_text())
        webhooks = json.loads(webhooks_path.read_text())
        self._registry: Registry[Any] = (
            Registry()
            .with_resource("urn:adyen:checkout", DRAFT202012.create_resource(checkout))
            .with_resource("urn:adyen:webhooks", DRAFT202012.create_resource(webhooks))
        )
        self._validators: dict[str, Any] = {}
        self._operations: list[tuple[re.Pattern[str], dict[str, Any]]] = []
        for template, item in checkout["paths"].items():
            pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
            if "post" in item:
                self._operations.append((re.compile(f"^{VERSION_PREFIX}{pattern}$"), item["post"]))
        self._webhooks = {
            name.lstrip("/"): entry["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            for name, entry in webhooks.get("webhooks", {}).items()
        }

    def operation(self, path: str) -> dict[str, Any] | None:
        for pattern, operation in self._operations:
            if pattern.match(path):
                return operation
        return None

    def _errors(self, document: str, ref: str, instance: Any) -> list[str]:
        key = f"urn:adyen:{document}{ref}"
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = OAS31Validator(
                {"$ref": key}, registry=self._registry, format_checker=oas31_format_checker
            )
        return [
            f"{'.'.join(str(part) for part in error.absolute_path) or '(body)'}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda error: list(error.absolute_path))
        ]

    def request_errors(self, operation: dict[str, Any], content_type: str, body: Any) -> list[str]:
        content = operation["requestBody"]["content"]
        if content_type.split(";")[0].strip().lower() not in content:
            return [f"content type {content_type!r} is not one of {sorted(content)}"]
        return self._errors("checkout", content["application/json"]["schema"]["$ref"], body)

    def answer_errors(self, operation: dict[str, Any], status: int, body: Any) -> list[str]:
        response = operation["responses"].get(str(status))
        if response is None:
            return [f"status {status} is not documented for {operation.get('operationId')}"]
        return self._errors("checkout", response["content"]["application/json"]["schema"]["$ref"], body)

    def notification_errors(self, event_code: str, body: Any) -> list[str]:
        ref = self._webhooks.get(event_code)
        if ref is None:
            return [f"no webhook {event_code} in Adyen's webhooks document"]
        return self._errors("webhooks", ref, body)


# ------------------------------------------------------------------------------------------------------ state


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


@dataclass(order=True)
class Notification:
    due: float
    seq: int
    event_code: str = field(compare=False)
    item: dict[str, Any] = field(compare=False)
    state: str = field(default="pending", compare=False)
    attempts: int = field(default=0, compare=False)
    last_answer: str = field(default="", compare=False)


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
    """Payments, notifications and the test controls; every method takes the lock it needs."""

    def __init__(self, settings: Settings, check: OpenApiCheck) -> None:
        self.settings = settings
        self.check = check
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._seq = itertools.count()
        self._stopping = False
        self.counts = {
            "requestViolations": 0,
            "responseViolations": 0,
            "notificationViolations": 0,
            "requests": 0,
        }
        self.violations: list[str] = []
        self._reset_state()
        self._sender = threading.Thread(target=self._send_forever, name="adyen-notifications", daemon=True)
        self._sender.start()

    def _reset_state(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.answered: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}  # by path and Idempotency-Key
        self.notifications: list[Notification] = []
        self._queue: list[Notification] = []
        self.drop_all = False
        self.drop_next = 0
        self.fail_cancels = 0
        self.fail_reason = "Cancellation failed"
        self.hold_count = 0
        self.hold_seconds = 0.0
        self.release_event = threading.Event()

    def reset(self) -> None:
        with self._lock:
            self.release_event.set()
            self._reset_state()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self.release_event.set()
            self._wake.notify_all()

    def violation(self, kind: str, message: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.violations.append(f"{kind}: {message}")
        log.error("Adyen's OpenAPI document refuses this (%s): %s", kind, message)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            states = [notification.state for notification in self.notifications]
            return {
                "specViolations": sum(v for k, v in self.counts.items() if k.endswith("Violations")),
                **self.counts,
                "payments": len(self.payments),
                "notificationsSent": states.count("sent"),
                "notificationsDropped": states.count("dropped"),
                "notificationsFailed": states.count("failed"),
                "notificationsPending": states.count("pending"),
            }

    # ------------------------------------------------------------------------------------------- payments

    def create_payment(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The answer to /payments, and whether it is to be held back (the payment exists either way)."""
        amount = self._checked_amount(request["amount"])
        method = request["paymentMethod"]
        if method.get("type", "scheme") != "scheme":
            raise ApiError(
                422, "905_1", "Could not find an acquirer account for the provided txvariant", "configuration"
            )
        number = method.get("number") or str(method.get("encryptedCardNumber", "")).removeprefix("test_")
        if not luhn_ok(number):
            raise ApiError(422, "101", "Invalid card number", "validation")
        brand = TEST_CARDS.get(number) or THREE_DS_CARDS.get(number) or _brand(number)
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
                self._schedule_item(event, modification_psp, None, reference, amount, False, reason, {})
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
        """A notification the test asks for, sent at once (and applied to the payment)."""
        event = str(request.get("eventCode", ""))
        success = request.get("success", True) not in (False, "false")
        with self._lock:
            payment = self.payments.get(str(request.get("pspReference", "")))
            if payment is None:
                raise ApiError(404, "000", "No such payment", "validation")
            if event == "CAPTURE" and success:
                payment.captured = True
            if event == "AUTHORISATION" and success:
                payment.status = "Authorised"
            own = event == "AUTHORISATION"
            notification = self._schedule(
                event,
                payment,
                payment.psp_reference if own else new_psp_reference(),
                None if own else payment.psp_reference,
                success,
                str(request.get("reason", "")),
                queue=False,
            )
        if request.get("badSignature"):
            notification.item["additionalData"]["hmacSignature"] = "forged" + "A" * 38
        answer = self._deliver(notification)
        self._retry_later(notification)
        return answer

    # -------------------------------------------------------------------------------------- notifications

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
        queue: bool = True,
    ) -> Notification:
        extra = dict(extra or {})
        extra.setdefault("paymentMethod", payment.brand)
        return self._schedule_item(
            event, psp, original, payment.reference, amount or payment.amount, success, reason, extra, queue
        )

    def _schedule_item(
        self,
        event: str,
        psp: str,
        original: str | None,
        reference: str,
        amount: dict[str, Any],
        success: bool,
        reason: str,
        extra: dict[str, Any],
        queue: bool = True,
    ) -> Notification:
        item: dict[str, Any] = {
            "amount": dict(amount),
            "eventCode": event,
            "eventDate": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "merchantAccountCode": self.settings.merchant_account,
            "merchantReference": reference,
            "pspReference": psp,
            "reason": reason,
            "success": "true" if success else "false",
        }
        if original:
            item["originalReference"] = original
        additional = dict(extra.pop("additionalData", {}))
        item.update(extra)
        additional["hmacSignature"] = generate_notification_sig(item, self.settings.hmac_key).decode()
        item["additionalData"] = additional
        due = time.monotonic() + self.settings.notification_delay_seconds
        notification = Notification(due, next(self._seq), event, item)
        with self._lock:
            self.notifications.append(notification)
            if not queue:
                return notification
            if self.drop_all or self.drop_next > 0:
                notification.state = "dropped"
                self.drop_next = max(0, self.drop_next - 1)
                return notification
            if self.settings.notification_url:
                heapq.heappush(self._queue, notification)
                self._wake.notify_all()
            else:
                notification.state = "dropped"
        return notification

    def _body(self, notification: Notification) -> dict[str, Any]:
        return {"live": "false", "notificationItems": [{"NotificationRequestItem": notification.item}]}

    def _deliver(self, notification: Notification) -> tuple[int, str]:
        body = self._body(notification)
        for error in self.check.notification_errors(notification.event_code, body):
            self.violation("notificationViolations", f"{notification.event_code}: {error}")
        notification.attempts += 1
        request = urllib.request.Request(  # noqa: S310 - the configured receiver, usually the runtime on loopback
            str(self.settings.notification_url),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "Adyen HttpPost Notification Service"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                status, text = answer.status, answer.read().decode(errors="replace")
        except urllib.error.HTTPError as refused:
            status, text = refused.code, refused.read().decode(errors="replace")
        except (OSError, ValueError) as failed:
            status, text = 0, str(failed)
        notification.last_answer = f"{status} {text[:200]}"
        with self._lock:
            if 200 <= status < 300 and text == "[accepted]":
                notification.state = "sent"
            elif notification.attempts >= self.settings.notification_attempts:
                notification.state = "failed"
                log.warning(
                    "Adyen notification %s given up: %s", notification.event_code, notification.last_answer
                )
        return status, text

    def _send_forever(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._queue or self._queue[0].due > time.monotonic()):
                    timeout = self._queue[0].due - time.monotonic() if self._queue else None
                    self._wake.wait(timeout)
                if self._stopping:
                    return
                notification = heapq.heappop(self._queue)
                if notification.state != "pending":
                    continue
            self._deliver(notification)
            self._retry_later(notification)

    def _retry_later(self, notification: Notification) -> None:
        """Not accepted yet: again after 1, 2, 4... seconds (Adyen retries for days; tests need seconds)."""
        with self._lock:
            if notification.state == "pending" and notification in self.notifications:
                notification.due = time.monotonic() + 2 ** (notification.attempts - 1)
                heapq.heappush(self._queue, notification)
                self._wake.notify_all()


# -------------------------------------------------------------------------------------------------- HTTP side


ISSUER_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Issuer authentication (local Adyen)</title></head><body>
<h1>3-D Secure: authenticate this payment?</h1><p>Local Adyen test issuer, payment {psp}.</p>
<form method="post"><button name="outcome" value="authenticated">Authenticate</button>
<button name="outcome" value="failed">Fail authentication</button>
<button name="outcome" value="cancelled">Cancel</button></form></body></html>"""

_MODIFICATION = re.compile(
    rf"^{VERSION_PREFIX}/payments/(?P<psp>[^/]+)/(?P<kind>cancels|captures|refunds|reversals)$"
)
_KINDS = {"cancels": "cancel", "captures": "capture", "refunds": "refund", "reversals": "reversal"}


class Handler(BaseHTTPRequestHandler):
    server: AdyenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        adyen = self.server.adyen
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_emulator/stats":
            self._send(200, adyen.stats())
        elif path == "/_emulator/violations":
            with adyen._lock:
                self._send(200, {"violations": list(adyen.violations)})
        elif path == "/_emulator/notifications":
            with adyen._lock:
                listed = [
                    {
                        "eventCode": n.event_code,
                        "state": n.state,
                        "attempts": n.attempts,
                        "lastAnswer": n.last_answer,
                        "item": n.item,
                    }
                    for n in adyen.notifications
                ]
            self._send(200, {"notifications": listed})
        elif path.startswith("/_emulator/3ds/"):
            token = path.rsplit("/", 1)[1]
            with adyen._lock:
                payment = next((p for p in adyen.payments.values() if p.redirect_token == token), None)
            if payment is None:
                self._send(404, b"unknown authentication", "text/plain")
            else:
                self._send(
                    200, ISSUER_PAGE.format(psp=html.escape(payment.psp_reference)).encode(), "text/html"
                )
        else:
            self._send(
                404, {"status": 404, "errorCode": "000", "message": "Not found", "errorType": "validation"}
            )

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        raw = self._read()
        if path.startswith("/_emulator/"):
            self._control(path, raw)
        elif path.startswith(VERSION_PREFIX + "/"):
            self._api(path, raw)
        else:
            self._send(
                404, {"status": 404, "errorCode": "000", "message": "Not found", "errorType": "validation"}
            )

    def _api(self, path: str, raw: bytes) -> None:
        adyen = self.server.adyen
        with adyen._lock:
            adyen.counts["requests"] += 1
        operation = adyen.check.operation(path)
        if operation is None:
            self._send(
                404, {"status": 404, "errorCode": "000", "message": "Not found", "errorType": "validation"}
            )
            return
        held = False
        try:
            if self.headers.get("X-API-Key") != adyen.settings.api_key:
                raise ApiError(401, "000", "HTTP Status Response - Unauthorized", "security")
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = raw.decode(errors="replace")
            errors = adyen.check.request_errors(operation, self.headers.get("Content-Type", ""), body)
            if errors:
                adyen.violation("requestViolations", f"POST {path}: " + "; ".join(errors))
                raise ApiError(422, "702", "; ".join(errors), "validation")
            if (
                body.get("merchantAccount", adyen.settings.merchant_account)
                != adyen.settings.merchant_account
            ):
                raise ApiError(403, "901", "Invalid Merchant Account", "security")
            status, answer, held = self._operate_once(path, body)
        except ApiError as refused:
            status, answer = refused.status, refused.body
        for error in adyen.check.answer_errors(operation, status, answer):
            adyen.violation("responseViolations", f"POST {path} → {status}: {error}")
        if held:
            adyen.release_event.wait(adyen.hold_seconds)
        psp = answer.get("pspReference")
        with contextlib.suppress(OSError):  # a held caller may have given up
            self._send(status, answer, extra={"pspReference": psp} if psp else None)

    def _operate_once(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """Adyen's idempotency: a request repeated with the same Idempotency-Key gets the first one's answer
        (at once, even where the first answer was held back) and changes nothing."""
        adyen = self.server.adyen
        key = self.headers.get("Idempotency-Key")
        with adyen._lock:
            if key and (path, key) in adyen.answered:
                status, answer = adyen.answered[(path, key)]
                return status, answer, False
            status, answer, held = self._operate(path, body)
            if key:
                adyen.answered[(path, key)] = (status, answer)
            return status, answer, held

    def _operate(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        adyen = self.server.adyen
        if path == f"{VERSION_PREFIX}/payments":
            answer, held = adyen.create_payment(body)
            return 200, answer, held
        if path == f"{VERSION_PREFIX}/payments/details":
            return 200, adyen.payment_details(body), False
        if path == f"{VERSION_PREFIX}/cancels":
            return 201, adyen.modify("technical-cancel", None, body), False
        found = _MODIFICATION.match(path)
        if found is None:
            raise ApiError(422, "905", f"{path} is not emulated", "configuration")
        return 201, adyen.modify(_KINDS[found.group("kind")], found.group("psp"), body), False

    def _control(self, path: str, raw: bytes) -> None:
        adyen = self.server.adyen
        if path.startswith("/_emulator/3ds/"):
            outcome = urllib.parse.parse_qs(raw.decode()).get("outcome", [""])[0]
            target = adyen.shopper_chooses(path.rsplit("/", 1)[1], outcome)
            if target is None:
                self._send(404, b"unknown authentication", "text/plain")
            else:
                self._send(303, b"", "text/plain", {"Location": target})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return
        with adyen._lock:
            if path == "/_emulator/notifications":
                if isinstance(body.get("drop"), bool):
                    adyen.drop_all, adyen.drop_next = body["drop"], 0
                elif "drop" in body:
                    adyen.drop_all, adyen.drop_next = False, int(body["drop"])
                if "delaySeconds" in body:
                    adyen.settings.notification_delay_seconds = float(body["delaySeconds"])
            elif path == "/_emulator/fail-cancels":
                adyen.fail_cancels = int(body.get("count", 1))
                adyen.fail_reason = str(body.get("reason") or "Cancellation failed")
            elif path == "/_emulator/hold-payments":
                adyen.hold_count = int(body.get("count", 1))
                adyen.hold_seconds = float(body.get("seconds", 60))
                adyen.release_event = threading.Event()
            elif path == "/_emulator/release":
                adyen.release_event.set()
            elif path == "/_emulator/reset":
                adyen.reset()
            elif path != "/_emulator/notify":
                self._send(404, {"error": f"no control {path}"})
                return
        if path == "/_emulator/notify":
            try:
                status, text = adyen.notify_now(body)
            except ApiError as refused:
                self._send(refused.status, refused.body)
                return
            self._send(200, {"status": status, "body": text})
            return
        self._send(200, adyen.stats())


class AdyenServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], settings: Settings) -> None:
        super().__init__(address, Handler)
        self.url = f"http://{address[0]}:{self.server_address[1]}"
        settings.public_url = settings.public_url or self.url
        self.adyen = Adyen(settings, OpenApiCheck())

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.adyen.stop()
        self.shutdown()
        self.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="The local Adyen (Checkout API v71)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--merchant-account", required=True)
    parser.add_argument("--notification-url", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="local Adyen: %(levelname)s %(message)s")
    settings = Settings(
        args.api_key, args.merchant_account, os.environ["ADYEN_HMAC_KEY"], args.notification_url
    )
    server = AdyenServer(("127.0.0.1", args.port), settings)
    server.serve_forever(poll_interval=0.2)  # SIGTERM's default action ends the process at once


class LocalAdyen:
    """The emulator as a child process of the runtime, on a free port, notifying the runtime."""

    API_KEY = "adyen_test_local_key"
    MERCHANT_ACCOUNT = "CheckoutSessionsLocal"
    READY_TIMEOUT_SECONDS = 30

    def __init__(
        self,
        notification_url: str,
        hmac_key: str,
        api_key: str = API_KEY,
        merchant_account: str = MERCHANT_ACCOUNT,
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.api_base = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen(  # noqa: S603 - this module, on a free port
            [
                sys.executable,
                "-m",
                "local.adyen_emulator",
                "--port",
                str(port),
                "--api-key",
                api_key,
                "--merchant-account",
                merchant_account,
                "--notification-url",
                notification_url,
            ],
            env={**os.environ, "ADYEN_HMAC_KEY": hmac_key},
        )
        deadline = time.monotonic() + self.READY_TIMEOUT_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{self.api_base}/_emulator/stats", timeout=5):  # noqa: S310
                    return
            except (urllib.error.URLError, ConnectionError):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the local Adyen emulator did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()


if __name__ == "__main__":
    main()
