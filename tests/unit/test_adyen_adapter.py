"""Adyen's notifications and answers read by the adyen adapter: items signed as Adyen signs them (the SDK's
own `generate_notification_sig`), verified by the SDK's own `is_valid_hmac_notification`, mapped onto the
service's transaction statuses; and the `/payments` resultCode mapping."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from Adyen.util import generate_notification_sig

from checkout_core.errors import InvalidRequest, InvalidSignature
from checkout_core.providers.adyen import ACKNOWLEDGEMENT, AdyenProvider, AdyenSettings, state_of
from checkout_core.transitions import TransactionStatus

HMAC_KEY = secrets.token_hex(32)
MERCHANT = "CheckoutSessionsUnit"
TX = "01a23812-6315-7872-993a-f7667927cb99"
PAYMENT_PSP = "PSP0000000000001"
ADAPTER = AdyenProvider(AdyenSettings("unit_key", MERCHANT, HMAC_KEY, "http://127.0.0.1:9"))


def item(event_code: str, success: bool = True, key: str = HMAC_KEY, **fields: Any) -> dict[str, Any]:
    """One NotificationRequestItem, signed with `key` as Adyen signs it."""
    body: dict[str, Any] = {
        "amount": {"currency": "EUR", "value": 5000},
        "eventCode": event_code,
        "eventDate": "2026-12-03T08:00:00+01:00",
        "merchantAccountCode": MERCHANT,
        "merchantReference": TX,
        "pspReference": PAYMENT_PSP if event_code == "AUTHORISATION" else "PSP0000000000099",
        "success": "true" if success else "false",
        **fields,
    }
    if event_code != "AUTHORISATION":
        body.setdefault("originalReference", PAYMENT_PSP)
    extra = dict(body.pop("additionalData", {}))
    extra["hmacSignature"] = generate_notification_sig(body, key).decode()
    return {**body, "additionalData": extra}


def notification(*items: dict[str, Any]) -> bytes:
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": one} for one in items]}
    ).encode()


def parse(*items: dict[str, Any]) -> Any:
    return ADAPTER.parse_batch({}, notification(*items), 0)


@pytest.mark.parametrize(
    ("event_code", "success", "expected"),
    [
        ("AUTHORISATION", True, TransactionStatus.AUTHORIZED),
        ("AUTHORISATION", False, TransactionStatus.FAILED),
        ("CANCELLATION", True, TransactionStatus.CANCELLED),
        ("TECHNICAL_CANCEL", True, TransactionStatus.CANCELLED),
        ("CAPTURE", True, TransactionStatus.SETTLED),
        ("REFUND", True, TransactionStatus.REFUNDED),
        ("CAPTURE", False, None),
        ("CAPTURE_FAILED", True, None),
        ("REFUND_FAILED", True, None),
        ("REFUND", False, None),
        ("REPORT_AVAILABLE", True, None),
    ],
)
def test_each_item_maps_onto_a_move(
    event_code: str, success: bool, expected: TransactionStatus | None
) -> None:
    batch = parse(item(event_code, success))
    [report] = batch.reports
    assert report.status == expected
    assert report.transaction_id == TX
    assert report.reference == PAYMENT_PSP  # the payment's pspReference, for a modification its original
    assert not report.cancel_refused
    assert batch.acknowledgement == ACKNOWLEDGEMENT == "[accepted]"


def test_a_refusal_carries_adyens_reason_as_the_failure_code() -> None:
    [report] = parse(item("AUTHORISATION", False, reason="Not enough balance")).reports
    assert (report.status, report.failure_code) == (TransactionStatus.FAILED, "Not enough balance")


@pytest.mark.parametrize("event_code", ["CANCELLATION", "TECHNICAL_CANCEL"])
def test_a_cancel_that_failed_is_a_refused_cancel_not_a_move(event_code: str) -> None:
    [report] = parse(item(event_code, False, reason="Transaction already captured")).reports
    assert report.status is None
    assert report.cancel_refused


def test_a_reversal_that_failed_is_a_refund_not_made_for_a_person() -> None:
    # Only refund() asks for a reversal: its refusal is not a cancel that failed
    [report] = parse(item("CANCEL_OR_REFUND", False, reason="Transaction already refunded")).reports
    assert (report.status, report.cancel_refused, report.attention) == (None, False, "REFUND_NOT_MADE")


@pytest.mark.parametrize("action", ["cancel", "refund"])
def test_a_reversal_made_is_a_refund_whichever_it_did(action: str) -> None:
    # Only a refund of a payment recorded SETTLED asks for a reversal: cancelled before its capture or
    # refunded after it, the customer has the money back
    signed = item("CANCEL_OR_REFUND", additionalData={"modification.action": action})
    [report] = parse(signed).reports
    assert (report.status, report.refund_id) == (TransactionStatus.REFUNDED, "PSP0000000000099")


@pytest.mark.parametrize("event_code", ["CAPTURE_FAILED", "REFUND_FAILED"])
def test_a_capture_or_refund_the_scheme_refused_is_for_a_person_to_look_at(event_code: str) -> None:
    [report] = parse(item(event_code)).reports
    assert (report.status, report.attention) == (None, event_code)


@pytest.mark.parametrize(
    ("event_code", "carried"),
    [("AUTHORISATION", True), ("CAPTURE", True), ("REFUND", True), ("CANCELLATION", False)],
)
def test_the_money_a_notification_moved_is_carried_to_be_matched(event_code: str, carried: bool) -> None:
    [report] = parse(item(event_code, amount={"currency": "eur", "value": 1234})).reports
    assert (report.amount, report.currency) == ((1234, "EUR") if carried else (None, None))


def test_reports_are_deduplicated_by_psp_reference_event_code_and_success() -> None:
    first, second, failed = parse(
        item("CANCELLATION"), item("CANCELLATION"), item("CANCELLATION", False)
    ).reports
    assert first.event_id == second.event_id == "PSP0000000000099:CANCELLATION:true"
    assert failed.event_id == "PSP0000000000099:CANCELLATION:false"


def test_one_forged_item_refuses_the_whole_notification() -> None:
    good, forged = item("AUTHORISATION"), item("CANCELLATION", key=secrets.token_hex(32))
    with pytest.raises(InvalidSignature):
        ADAPTER.parse_batch({}, notification(good, forged), 0)
    assert len(parse(good, item("CANCELLATION")).reports) == 2


@pytest.mark.parametrize(
    "tamper",
    [
        lambda one: one.update(success="true" if one["success"] == "false" else "false"),
        lambda one: one.update(amount={"currency": "EUR", "value": 1}),
        lambda one: one.update(merchantReference="01a23812-6315-7872-993a-000000000000"),
        lambda one: one["additionalData"].pop("hmacSignature"),
        lambda one: one.pop("additionalData"),
        lambda one: one.pop("amount"),
    ],
)
def test_a_signed_field_changed_or_the_signature_missing_is_a_bad_signature(tamper: Any) -> None:
    one = item("AUTHORISATION")
    tamper(one)
    with pytest.raises(InvalidSignature):
        ADAPTER.parse_batch({}, notification(one), 0)


def test_an_unusable_hmac_key_refuses_every_notification() -> None:
    adapter = AdyenProvider(AdyenSettings("unit_key", MERCHANT, "not hex", "http://127.0.0.1:9"))
    with pytest.raises(InvalidSignature):
        adapter.parse_batch({}, notification(item("AUTHORISATION")), 0)


def test_an_item_of_another_merchant_account_is_refused_even_well_signed() -> None:
    other = item("AUTHORISATION", merchantAccountCode="SomeoneElse")
    with pytest.raises(InvalidRequest) as refused:
        ADAPTER.parse_batch({}, notification(item("CANCELLATION"), other), 0)
    assert refused.value.param == "notificationItems.1.NotificationRequestItem.merchantAccountCode"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"notificationItems": []}',
        b'{"notificationItems": [{"x": 1}]}',
        b'{"eventId": "e", "transactionId": "01a23812-6315-7872-993a-f7667927cb99", "status": "SETTLED"}',
    ],
)
def test_a_body_of_another_shape_carries_no_signed_item(raw: bytes) -> None:
    with pytest.raises(InvalidSignature):
        ADAPTER.parse_batch({}, raw, 0)


@pytest.mark.parametrize(
    ("answer", "manual", "expected", "failure"),
    [
        ({"resultCode": "Authorised"}, False, TransactionStatus.SETTLED, None),
        ({"resultCode": "Authorised"}, True, TransactionStatus.AUTHORIZED, None),
        (
            {"resultCode": "Refused", "refusalReason": "Not enough balance"},
            False,
            TransactionStatus.FAILED,
            "Not enough balance",
        ),
        (
            {"resultCode": "Error", "refusalReason": "Acquirer Error"},
            False,
            TransactionStatus.FAILED,
            "Acquirer Error",
        ),
        ({"resultCode": "Error"}, False, TransactionStatus.FAILED, "Error"),
        ({"resultCode": "Pending"}, False, TransactionStatus.PROCESSING, None),
        ({"resultCode": "Received"}, False, TransactionStatus.PROCESSING, None),
        (
            {"resultCode": "RedirectShopper", "action": {"type": "redirect"}},
            False,
            TransactionStatus.PROCESSING,
            None,
        ),
        ({"resultCode": "ChallengeShopper"}, True, TransactionStatus.PROCESSING, None),
        ({"resultCode": "IdentifyShopper"}, False, TransactionStatus.PROCESSING, None),
        ({"resultCode": "Cancelled"}, False, TransactionStatus.CANCELLED, None),
    ],
)
def test_payments_result_codes_map_onto_statuses(
    answer: dict[str, Any], manual: bool, expected: TransactionStatus, failure: str | None
) -> None:
    state = state_of({"pspReference": PAYMENT_PSP, **answer}, manual)
    assert (state.reference, state.status, state.failure_code) == (PAYMENT_PSP, expected, failure)


def test_the_adapter_declares_an_asynchronous_cancel_and_no_status_api() -> None:
    assert ADAPTER.cancel_in_flight and ADAPTER.cancel_is_async and ADAPTER.cancel_by_our_reference
    assert ADAPTER.reverses and not ADAPTER.has_status_api
    assert ADAPTER.requires_payment_method and ADAPTER.payment_method_is_object
    assert ADAPTER.status(PAYMENT_PSP, TX) is None
