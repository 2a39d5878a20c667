"""The local Adyen, driven by Adyen's own SDK as the `adyen` provider drives it: answers as Adyen documents them,
notifications signed with Adyen's HMAC scheme, and the OpenAPI check that refuses what Adyen's document refuses."""

from __future__ import annotations

import binascii
import http.server
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from Adyen import (
    AdyenAPIAuthenticationError,
    AdyenAPIInvalidPermission,
    AdyenAPIUnprocessableEntity,
    AdyenClient,
)
from Adyen.services.checkout import AdyenCheckoutApi
from Adyen.util import is_valid_hmac_notification

from local.adyen.openapi_check import OpenApiCheck
from local.adyen.platform import Settings
from local.adyen.server import AdyenServer

API_KEY = "adyen_test_key"
MERCHANT = "CheckoutSessionsTest"
HMAC_KEY = binascii.hexlify(secrets.token_bytes(32)).decode()
CARD = {
    "type": "scheme",
    "number": "4111111111111111",
    "expiryMonth": "03",
    "expiryYear": "2030",
    "cvc": "737",
}
DEADLINE_SECONDS = 10.0


class NotificationReceiver:
    """The merchant's notification endpoint: records each item and answers `[accepted]` unless told otherwise."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.requests = 0
        self.answer: Callable[[int], tuple[int, bytes]] = lambda attempt: (200, b"[accepted]")
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    receiver.requests += 1
                    status, text = receiver.answer(receiver.requests)
                    if (status, text) == (200, b"[accepted]"):
                        receiver.items += [w["NotificationRequestItem"] for w in body["notificationItems"]]
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/providers/adyen/events"

    def wait_for(self, event_code: str, reference: str, count: int = 1) -> list[dict[str, Any]]:
        """The items of that event about a payment (its pspReference or merchantReference) or a modification."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            with self._lock:
                found = [
                    item
                    for item in self.items
                    if item["eventCode"] == event_code
                    and reference
                    in (item.get("originalReference"), item["pspReference"], item["merchantReference"])
                ]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"no {event_code} for {reference}; got {self.items}"
                return found
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    receiver = NotificationReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def emulator(receiver: NotificationReceiver) -> Iterator[AdyenServer]:
    settings = Settings(API_KEY, MERCHANT, HMAC_KEY, receiver.url, notification_delay_seconds=0.05)
    server = AdyenServer(("127.0.0.1", 0), settings)
    server.serve_in_thread()
    yield server
    server.stop()


def checkout_api(
    emulator: AdyenServer, api_key: str = API_KEY, http: str = "urllib", timeout: float = 10
) -> AdyenCheckoutApi:
    """The SDK as the adapter sets it up: an API key, Checkout v71 at the configured base URL, the standard
    library's HTTP client (the SDK's other choice, `requests`, is tested once)."""
    client = AdyenClient(xapikey=api_key, platform="test", http_force=http, http_timeout=timeout)
    checkout = AdyenCheckoutApi(client=client)
    for service in (checkout.payments_api, checkout.modifications_api):
        service.baseUrl = f"{emulator.url}/v71"
    return checkout


def control(emulator: AdyenServer, route: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the emulator on loopback
        f"{emulator.url}/_emulator/{route}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


def settled_notifications(emulator: AdyenServer) -> list[dict[str, Any]]:
    """The emulator's notifications once none is pending: it records an answer only after the receiver has sent it."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        notifications = control(emulator, "notifications")["notifications"]
        if all(n["state"] != "pending" for n in notifications) or time.monotonic() > deadline:
            return notifications
        time.sleep(0.02)


def pay(checkout: AdyenCheckoutApi, reference: str, value: int = 1250, **card: str) -> dict[str, Any]:
    result = checkout.payments_api.payments(
        {
            "amount": {"currency": "EUR", "value": value},
            "merchantAccount": MERCHANT,
            "reference": reference,
            "paymentMethod": {**CARD, "holderName": "J. Smith", **card},
            "returnUrl": "https://pay.example.test/pay/tok/return",
            "additionalData": {"manualCapture": "true"},
        },
        idempotency_key=f"pay-{reference}",
    )
    return dict(result.message)


def assert_genuine(item: dict[str, Any]) -> None:
    assert is_valid_hmac_notification(item, HMAC_KEY), item
    assert item["merchantAccountCode"] == MERCHANT


def assert_no_violations(emulator: AdyenServer) -> None:
    stats = control(emulator, "stats")
    assert stats["specViolations"] == 0, control(emulator, "violations")


@pytest.mark.parametrize("http", ["urllib", "requests"])
def test_a_test_card_is_authorised_and_its_authorisation_is_notified_signed(emulator, receiver, http) -> None:
    answer = pay(checkout_api(emulator, http=http), "tx_ok")

    assert answer["resultCode"] == "Authorised"
    assert answer["merchantReference"] == "tx_ok"
    (item,) = receiver.wait_for("AUTHORISATION", answer["pspReference"])
    assert_genuine(item)
    assert (item["success"], item["merchantReference"], item["amount"]) == (
        "true",
        "tx_ok",
        {"currency": "EUR", "value": 1250},
    )
    assert_no_violations(emulator)


@pytest.mark.parametrize(
    ("holder", "result_code", "reason", "code"),
    [
        ("DECLINED", "Refused", "Refused", "2"),
        ("NOT_ENOUGH_BALANCE", "Refused", "Not enough balance", "12"),
        ("CARD_EXPIRED", "Refused", "Expired Card", "6"),
        ("CVC_DECLINED", "Refused", "CVC Declined", "24"),
        ("ERROR", "Error", "Acquirer Error", "4"),
    ],
)
def test_the_holder_name_asks_for_a_refusal_as_on_adyens_test_platform(
    emulator, receiver, holder, result_code, reason, code
) -> None:
    answer = pay(checkout_api(emulator), f"tx_{holder}", holderName=holder)

    assert (answer["resultCode"], answer["refusalReason"], answer["refusalReasonCode"]) == (
        result_code,
        reason,
        code,
    )
    (item,) = receiver.wait_for("AUTHORISATION", answer["pspReference"])
    assert_genuine(item)
    assert (item["success"], item["reason"]) == ("false", reason)
    assert_no_violations(emulator)


def test_a_payment_repeated_with_its_idempotency_key_is_made_once(emulator, receiver) -> None:
    checkout = checkout_api(emulator)

    first, again = pay(checkout, "tx_once"), pay(checkout, "tx_once")

    assert again == first
    assert control(emulator, "stats")["payments"] == 1
    receiver.wait_for("AUTHORISATION", "tx_once")
    assert_no_violations(emulator)


def test_pending_is_received_and_authorised_later_by_notification(emulator, receiver) -> None:
    answer = pay(checkout_api(emulator), "tx_pending", holderName="PENDING")

    assert answer["resultCode"] == "Received"
    (item,) = receiver.wait_for("AUTHORISATION", answer["pspReference"])
    assert item["success"] == "true"
    assert_no_violations(emulator)


def test_a_three_ds_card_redirects_the_shopper_and_details_complete_the_payment(emulator, receiver) -> None:
    checkout = checkout_api(emulator)
    answer = pay(checkout, "tx_3ds", number="4212345678910006")

    assert answer["resultCode"] == "RedirectShopper"
    assert answer["action"]["type"] == "redirect"
    with urllib.request.urlopen(answer["action"]["url"], timeout=10) as page:  # noqa: S310
        assert "Authenticate" in page.read().decode()
    authenticate = urllib.request.Request(  # noqa: S310 - the emulator's issuer page
        answer["action"]["url"], data=b"outcome=authenticated", method="POST"
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    with pytest.raises(urllib.error.HTTPError) as back:
        urllib.request.build_opener(NoRedirect).open(authenticate, timeout=10)
    assert back.value.code == 303
    location = back.value.headers["Location"]
    assert location.startswith("https://pay.example.test/pay/tok/return?redirectResult=")
    redirect_result = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["redirectResult"][0]

    details = checkout.payments_api.payments_details({"details": {"redirectResult": redirect_result}}).message

    assert (details["resultCode"], details["pspReference"]) == ("Authorised", answer["pspReference"])
    (item,) = receiver.wait_for("AUTHORISATION", answer["pspReference"])
    assert item["success"] == "true"
    assert_no_violations(emulator)


def test_a_cancel_is_received_and_its_outcome_arrives_in_a_signed_cancellation(emulator, receiver) -> None:
    checkout = checkout_api(emulator)
    psp = pay(checkout, "tx_cancel")["pspReference"]

    answer = checkout.modifications_api.cancel_authorised_payment_by_psp_reference(
        {"merchantAccount": MERCHANT, "reference": "cancel-tx_cancel"},
        psp,
        idempotency_key="cancel-tx_cancel",
    )

    assert answer.status_code == 201
    assert (answer.message["status"], answer.message["paymentPspReference"]) == ("received", psp)
    (item,) = receiver.wait_for("CANCELLATION", psp)
    assert_genuine(item)
    assert (item["success"], item["merchantReference"], item["pspReference"]) == (
        "true",
        "tx_cancel",
        answer.message["pspReference"],
    )
    assert_no_violations(emulator)


def test_a_payment_whose_answer_was_lost_is_cancelled_by_our_reference(emulator, receiver) -> None:
    checkout = checkout_api(emulator)
    control(emulator, "hold-payments", {"count": 1, "seconds": 30})
    slow = checkout_api(emulator, timeout=0.5)
    with pytest.raises(Exception, match=r"(?i)timed out"):
        pay(slow, "tx_lost")
    control(emulator, "release", {})
    retried = pay(checkout, "tx_lost")  # the same idempotency key: the first call's answer, no second payment
    assert (retried["resultCode"], control(emulator, "stats")["payments"]) == ("Authorised", 1)

    answer = checkout.modifications_api.cancel_authorised_payment(
        {"merchantAccount": MERCHANT, "paymentReference": "tx_lost", "reference": "cancel-tx_lost"}
    )

    assert (answer.status_code, answer.message["status"], answer.message["paymentReference"]) == (
        201,
        "received",
        "tx_lost",
    )
    (authorisation,) = receiver.wait_for("AUTHORISATION", "tx_lost")
    (item,) = receiver.wait_for("TECHNICAL_CANCEL", answer.message["pspReference"])
    assert_genuine(item)
    assert (item["success"], item["merchantReference"]) == ("true", "tx_lost")
    assert item["originalReference"] == authorisation["pspReference"] == retried["pspReference"]
    assert_no_violations(emulator)


def test_a_failed_cancel_is_notified_unsuccessful_and_the_payment_can_still_be_captured(
    emulator, receiver
) -> None:
    checkout = checkout_api(emulator)
    psp = pay(checkout, "tx_fail")["pspReference"]
    control(emulator, "fail-cancels", {"count": 1})

    checkout.modifications_api.cancel_authorised_payment_by_psp_reference({"merchantAccount": MERCHANT}, psp)
    (failed,) = receiver.wait_for("CANCELLATION", psp)
    assert failed["success"] == "false"

    sent = control(emulator, "notify", {"eventCode": "CAPTURE", "pspReference": psp})
    assert sent == {"status": 200, "body": "[accepted]"}
    (capture,) = receiver.wait_for("CAPTURE", psp)
    assert_genuine(capture)
    reversal = checkout.modifications_api.refund_or_cancel_payment({"merchantAccount": MERCHANT}, psp)
    (reversed_,) = receiver.wait_for("CANCEL_OR_REFUND", psp)
    assert reversal.message["status"] == "received"
    assert (reversed_["success"], reversed_["additionalData"]["modification.action"]) == ("true", "refund")
    assert_no_violations(emulator)


def test_several_notifications_go_in_one_request_and_one_can_be_forged(emulator, receiver) -> None:
    psp = pay(checkout_api(emulator), "tx_batch")["pspReference"]
    receiver.wait_for("AUTHORISATION", psp)
    requests_before = receiver.requests

    sent = control(
        emulator,
        "notify",
        {
            "items": [
                {"eventCode": "CAPTURE", "pspReference": psp},
                {"eventCode": "CANCELLATION", "pspReference": psp, "success": False, "badSignature": True},
            ]
        },
    )

    assert sent == {"status": 200, "body": "[accepted]"}
    assert receiver.requests == requests_before + 1
    (capture,) = receiver.wait_for("CAPTURE", psp)
    (cancellation,) = receiver.wait_for("CANCELLATION", psp)
    assert_genuine(capture)
    assert not is_valid_hmac_notification(cancellation, HMAC_KEY)
    assert_no_violations(emulator)


def test_dropped_notifications_are_never_sent(emulator, receiver) -> None:
    control(emulator, "notifications", {"drop": True})
    psp = pay(checkout_api(emulator), "tx_dropped")["pspReference"]

    stats = control(emulator, "stats")

    assert (stats["notificationsDropped"], stats["notificationsPending"]) == (1, 0)
    control(emulator, "notifications", {"drop": False})
    later = pay(checkout_api(emulator), "tx_later")["pspReference"]
    receiver.wait_for("AUTHORISATION", later)
    assert [i for i in receiver.items if i["pspReference"] == psp] == []


def test_a_notification_is_retried_until_the_answer_is_accepted(emulator, receiver) -> None:
    receiver.answer = lambda attempt: (200, b"ok") if attempt == 1 else (200, b"[accepted]")

    psp = pay(checkout_api(emulator), "tx_retry")["pspReference"]

    receiver.wait_for("AUTHORISATION", psp)
    assert receiver.requests == 2
    (sent,) = settled_notifications(emulator)
    assert (sent["state"], sent["attempts"]) == ("sent", 2)


def test_the_api_key_and_the_merchant_account_are_checked(emulator) -> None:
    with pytest.raises(AdyenAPIAuthenticationError):
        pay(checkout_api(emulator, api_key="wrong"), "tx_key")
    checkout = checkout_api(emulator)
    with pytest.raises(AdyenAPIInvalidPermission) as refused:
        checkout.modifications_api.cancel_authorised_payment_by_psp_reference(
            {"merchantAccount": "SomeoneElse"}, "ABCDEFGHJKLMNPQR"
        )
    assert refused.value.error_code == "901"
    assert_no_violations(emulator)


def test_a_request_adyens_document_refuses_is_answered_422_and_counted(emulator) -> None:
    body = {
        "amount": {"currency": "EUR", "value": "1250"},  # Adyen's document: an integer
        "merchantAccount": MERCHANT,
        "reference": "tx_bad",
        "paymentMethod": CARD,
        "returnUrl": "https://pay.example.test/return",
    }
    request = urllib.request.Request(  # noqa: S310 - plain HTTP, as no SDK would send it
        f"{emulator.url}/v71/payments",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310

    error = json.loads(refused.value.read())
    assert refused.value.code == 422
    assert (error["status"], error["errorType"]) == (422, "validation")
    assert "amount.value" in error["message"]
    stats = control(emulator, "stats")
    assert (stats["specViolations"], stats["requestViolations"], stats["payments"]) == (1, 1, 0)


def test_the_sdk_is_refused_too_when_a_field_is_unknown_to_the_document(emulator) -> None:
    with pytest.raises(AdyenAPIUnprocessableEntity):
        checkout_api(emulator).modifications_api.cancel_authorised_payment_by_psp_reference(
            {"merchantAccount": MERCHANT, "cancellationReason": "abandoned"}, "ABCDEFGHJKLMNPQR"
        )
    assert control(emulator, "stats")["requestViolations"] == 1


def test_the_check_refuses_answers_and_notifications_adyens_documents_refuse() -> None:
    check = OpenApiCheck()
    payments = check.operation("/v71/payments")
    assert payments is not None
    good = {"pspReference": "ABCDEFGHJKLMNPQR", "resultCode": "Authorised"}
    item = {
        "amount": {"currency": "EUR", "value": 1250},
        "eventCode": "CANCELLATION",
        "eventDate": "2026-07-01T10:00:00+00:00",
        "merchantAccountCode": MERCHANT,
        "merchantReference": "tx_1",
        "pspReference": "ABCDEFGHJKLMNPQR",
        "success": "true",
        "additionalData": {"hmacSignature": "c2lnbmF0dXJl"},
    }

    assert check.answer_errors(payments, 200, good) == []
    assert check.answer_errors(payments, 200, {**good, "resultCode": "Authorized"}) != []
    assert check.answer_errors(payments, 201, good) != []  # /payments answers 200, never 201
    assert (
        check.notification_errors(
            "CANCELLATION", {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
        )
        == []
    )
    assert (
        check.notification_errors(
            "CANCELLATION",
            {"live": "false", "notificationItems": [{"NotificationRequestItem": {**item, "success": True}}]},
        )
        != []
    )
