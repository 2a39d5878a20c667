"""The `stripe` provider end to end: the API over HTTP, the official SDK in the runtime's functions, and
the local Stripe emulator (localstripe, made faithful in local/stripe_emulator.py) sending signed
webhooks back to the runtime. Nothing here mocks the SDK."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, assert_error, wait_for_status
from tests.support import wait_until

WEBHOOK_SECRET = "whsec_e2e_stripe"
SEPA_IBAN = "DE89370400440532013000"  # Stripe's test IBAN: processing, then succeeded


@pytest.fixture(scope="module")
def running() -> Iterator[RunningRuntime]:
    # The SEPA debits process for 8 s: time enough, on a loaded machine, to cancel one while it processes.
    runtime = launch({"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "LOCAL_STRIPE_SEPA_SECONDS": "8"})
    yield runtime
    stop_and_check(runtime)


@pytest.fixture
def api(running: RunningRuntime) -> Api:
    return Api(running.base_url, "sk_test_demo")


@pytest.fixture(scope="module")
def emulator(running: RunningRuntime) -> Any:
    return stripe.StripeClient("sk_test_local", base_addresses={"api": running.stripe_url})


def start(api: Api, session_id: str, payment_method: str, capture: str = "AUTOMATIC") -> Any:
    return api.request(
        "POST",
        f"/v1/sessions/{session_id}/transactions",
        {"provider": "stripe", "paymentMethod": payment_method, "captureMethod": capture},
    )


def sepa_method(emulator: Any) -> str:
    method = emulator.v1.payment_methods.create(
        params={"type": "sepa_debit", "sepa_debit": {"iban": SEPA_IBAN}}
    )
    return str(method.id)


def test_a_manual_capture_is_authorised_then_cancelled_releasing_the_hold(api: Api, emulator: Any) -> None:
    session = api.open_session()
    started = start(api, session["sessionId"], "pm_card_visa", "MANUAL")
    assert started.status == 201 and started.body["status"] == "AUTHORIZED"
    intent_id = started.body["providerReference"]
    assert intent_id.startswith("pi_")
    intent = emulator.v1.payment_intents.retrieve(intent_id)
    assert intent.metadata.to_dict() == {
        "sessionId": session["sessionId"],
        "transactionId": started.body["transactionId"],
    }
    cancelled = api.cancel(session["sessionId"], {"reasonType": "DUPLICATE"})
    assert cancelled.status == 200 and cancelled.body["status"] == "CANCELLED"
    assert cancelled.body["cancelledTransactionIds"] == [started.body["transactionId"]]
    intent = emulator.v1.payment_intents.retrieve(intent_id)
    assert intent.status == "canceled" and intent.cancellation_reason == "duplicate"


def test_an_automatic_card_payment_completes_and_stripes_webhook_of_it_changes_nothing(
    api: Api, emulator: Any
) -> None:
    # Given a card payment Stripe answered `succeeded`: the session is COMPLETED from that answer
    session = api.open_session()
    started = start(api, session["sessionId"], "pm_card_visa")
    assert started.status == 201 and started.body["status"] == "SETTLED"
    assert api.get(session["sessionId"])["status"] == "COMPLETED"
    timeline = api.events(session["sessionId"])
    # When Stripe's payment_intent.succeeded webhook of it arrives, and arrives again
    intent_id = started.body["providerReference"]
    [event] = [
        event
        for event in emulator.v1.events.list(params={"type": "payment_intent.succeeded"}).data
        if event.data.object.id == intent_id
    ]
    answers = [deliver(api, event.to_dict()) for _ in range(2)]
    # Then it is news of what is already recorded: acknowledged, applied to nothing
    assert [answer.body for answer in answers] == [{"received": True, "applied": False}] * 2
    assert api.events(session["sessionId"]) == timeline


def deliver(api: Api, event: dict[str, Any]) -> Any:
    """A Stripe webhook as Stripe signs it (Stripe-Signature: t=...,v1=HMAC-SHA256 of "t.payload")."""
    payload = json.dumps(event)
    now = int(time.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.{payload}".encode(), hashlib.sha256).hexdigest()
    return api.request(
        "POST",
        "/v1/providers/stripe/events",
        raw=payload.encode(),
        headers={"Stripe-Signature": f"t={now},v1={signature}"},
        authorized=False,
    )


def test_a_declined_card_is_402_and_the_attempt_is_kept_failed(api: Api) -> None:
    session = api.open_session()
    declined = start(api, session["sessionId"], "pm_card_chargeCustomerFail")
    error = assert_error(declined, 402, "payment_declined")
    assert error["failureCode"] == "card_declined"
    [transaction] = api.get(session["sessionId"])["transactions"]
    assert transaction["transactionId"] == error["transactionId"]
    assert (transaction["status"], transaction["failureCode"]) == ("FAILED", "card_declined")
    assert transaction["providerReference"].startswith("pi_")  # Stripe's error names the PaymentIntent
    assert api.get(session["sessionId"])["status"] == "OPEN"


def test_a_sepa_debit_completes_through_the_webhook(api: Api, emulator: Any) -> None:
    session = api.open_session(currency="EUR")
    started = start(api, session["sessionId"], sepa_method(emulator))
    assert started.body["status"] == "PROCESSING"
    completed = wait_for_status(api, session["sessionId"], "COMPLETED", timeout=30)
    assert completed["transactions"][0]["status"] == "SETTLED"
    actors = [
        event["actor"] for event in api.events(session["sessionId"]) if event["type"] == "session.completed"
    ]
    assert actors == ["provider:stripe"]


def test_a_processing_debit_waits_then_is_refunded_when_it_succeeds(api: Api, emulator: Any) -> None:
    # Given a SEPA debit Stripe reports processing
    session = api.open_session(currency="EUR")
    started = start(api, session["sessionId"], sepa_method(emulator))
    assert started.body["status"] == "PROCESSING"
    transaction_id = started.body["transactionId"]
    # When the merchant cancels: Stripe refuses to cancel a processing intent
    cancelled = api.cancel(session["sessionId"])
    assert cancelled.body["status"] == "PENDING_CANCELLATION"
    assert cancelled.body["pendingTransactionIds"] == [transaction_id]
    # Then, once the debit succeeds, it is refunded at Stripe and the session finalised
    final = wait_for_status(api, session["sessionId"], "CANCELLED", timeout=60)

    def refunded() -> Any:
        read = api.get(session["sessionId"])
        return read if read["transactions"][0]["status"] == "REFUNDED" else None

    final = wait_until(refunded, 30, "the refund to be recorded")
    [transaction] = final["transactions"]
    assert transaction["refundId"].startswith("re_")
    assert final["cancellation"]["refundedTransactionIds"] == [transaction_id]
    assert final["cancellation"]["settledTransactionIds"] == [transaction_id]
    refunds = emulator.v1.refunds.list(params={"payment_intent": transaction["providerReference"]})
    assert [refund.id for refund in refunds.data] == [transaction["refundId"]]
    types = [event["type"] for event in api.events(session["sessionId"])]
    assert "transaction.refunded" in types and types.count("transaction.refunded") == 1


def test_a_cancel_that_must_not_wait_is_refused_while_stripe_processes_a_debit(
    api: Api, emulator: Any
) -> None:
    session = api.open_session(currency="EUR")
    started = start(api, session["sessionId"], sepa_method(emulator))
    assert started.body["status"] == "PROCESSING"
    before = api.get(session["sessionId"])
    refused = api.cancel(session["sessionId"], {"whenInFlight": "REJECT"})
    error = assert_error(refused, 409, "transactions_in_flight")
    assert error["pendingTransactionIds"] == [started.body["transactionId"]]
    assert api.get(session["sessionId"]) == before  # nothing changed
    intent = emulator.v1.payment_intents.retrieve(started.body["providerReference"])
    assert intent.status in ("processing", "succeeded")  # never cancelled


def test_a_forged_stripe_signature_is_401_and_an_unknown_type_is_acknowledged(api: Api) -> None:
    body = json.dumps(
        {"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {}}}
    ).encode()
    now = int(time.time())
    forged = api.request(
        "POST",
        "/v1/providers/stripe/events",
        raw=body,
        headers={"Stripe-Signature": f"t={now},v1={'0' * 64}"},
        authorized=False,
    )
    assert_error(forged, 401, "invalid_signature")
    unknown = json.dumps(
        {
            "id": "evt_unknown",
            "object": "event",
            "type": "customer.created",
            "data": {"object": {"id": "cus_1"}},
        }
    ).encode()
    answer = deliver(api, json.loads(unknown))
    assert answer.status == 200 and answer.body == {"received": True, "applied": False}


def test_an_intent_made_elsewhere_naming_our_transaction_moves_nothing(api: Api, emulator: Any) -> None:
    # Given a card payment authorised at Stripe (manual capture), its PaymentIntent recorded
    session = api.open_session()
    started = start(api, session["sessionId"], "pm_card_visa", "MANUAL")
    assert started.status == 201 and started.body["status"] == "AUTHORIZED"
    timeline = api.events(session["sessionId"])
    # When another PaymentIntent in the same Stripe account, carrying our transaction id, succeeds
    foreign = emulator.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"sessionId": session["sessionId"], "transactionId": started.body["transactionId"]},
        }
    )
    assert foreign.status == "succeeded"
    [event] = [
        event
        for event in emulator.v1.events.list(params={"type": "payment_intent.succeeded"}).data
        if event.data.object.id == foreign.id
    ]
    answer = deliver(api, event.to_dict())
    # Then Stripe's event of it is acknowledged and applied to nothing
    assert answer.status == 200 and answer.body == {"received": True, "applied": False}
    read = api.get(session["sessionId"])
    [transaction] = read["transactions"]
    assert read["status"] == "OPEN"
    assert (transaction["status"], transaction["providerReference"]) == (
        "AUTHORIZED",
        started.body["providerReference"],
    )
    assert api.events(session["sessionId"]) == timeline


@pytest.mark.parametrize(
    ("currency", "amount", "sent"),
    [
        ("USD", 5000, 5000),  # two-decimal: as it is
        ("JPY", 5000, 5000),  # zero-decimal in both
        ("ISK", 5000, 500000),  # zero-decimal in ISO 4217, two-decimal at Stripe: 5,000 kr
        ("KWD", 12340, 12340),  # three-decimal, last digit 0
        ("MGA", 150000, 1500),  # two-decimal in ISO 4217, zero-decimal at Stripe: 1,500 Ar
    ],
)
def test_amounts_reach_stripe_in_its_units_and_come_back_in_ours(
    api: Api, emulator: Any, currency: str, amount: int, sent: int
) -> None:
    session = api.open_session(amount=amount, currency=currency)
    started = start(api, session["sessionId"], "pm_card_visa")
    assert started.status == 201, started
    intent = emulator.v1.payment_intents.retrieve(started.body["providerReference"])
    assert (intent.amount, intent.currency) == (sent, currency.lower())
    # Stripe's webhook of it (in Stripe's units) matches the record: the session completes, nobody is alerted
    completed = wait_for_status(api, session["sessionId"], "COMPLETED", timeout=30)
    assert completed["transactions"][0]["amount"] == amount
    assert "session.attention_required" not in [e["type"] for e in api.events(session["sessionId"])]


@pytest.mark.parametrize(
    ("currency", "amount", "why"),
    [("KWD", 12345, "last digit is 0"), ("MGA", 150050, "multiple of 100")],
)
def test_an_amount_stripe_cannot_take_is_400_before_anything_is_recorded(
    api: Api, currency: str, amount: int, why: str
) -> None:
    session = api.open_session(amount=amount, currency=currency)
    error = assert_error(start(api, session["sessionId"], "pm_card_visa"), 400, "invalid_request")
    assert error["param"] == "amount" and why in error["message"]
    assert api.get(session["sessionId"])["transactions"] == []


def test_a_sepa_debit_outside_eur_is_400_naming_the_payment_method_before_any_attempt(
    api: Api, emulator: Any
) -> None:
    session = api.open_session(currency="USD")
    error = assert_error(start(api, session["sessionId"], sepa_method(emulator)), 400, "invalid_request")
    assert error["param"] == "paymentMethod" and "EUR" in error["message"]
    unknown = assert_error(start(api, session["sessionId"], "pm_no_such_method"), 400, "invalid_request")
    assert unknown["param"] == "paymentMethod"
    assert api.get(session["sessionId"])["transactions"] == []
    in_eur = api.open_session(currency="EUR")
    held = assert_error(
        start(api, in_eur["sessionId"], sepa_method(emulator), "MANUAL"), 400, "invalid_request"
    )
    assert held["param"] == "captureMethod"  # Stripe places holds on cards only
    assert api.get(in_eur["sessionId"])["transactions"] == []


def test_a_refusal_that_is_not_a_decline_is_400_naming_the_field_and_the_attempt_failed(api: Api) -> None:
    # Given an amount below Stripe's minimum charge (USD 0.50), which only Stripe knows to refuse
    session = api.open_session(amount=10, currency="USD")
    refused = start(api, session["sessionId"], "pm_card_visa")
    error = assert_error(refused, 400, "invalid_request")
    assert error["param"] == "amount"
    [transaction] = api.get(session["sessionId"])["transactions"]
    assert (transaction["status"], transaction["failureCode"]) == ("FAILED", "amount_too_small")
    assert api.get(session["sessionId"])["status"] == "OPEN"


def test_the_local_stripe_refuses_what_stripe_refuses(emulator: Any) -> None:
    sepa = sepa_method(emulator)
    refusals = [
        ({"amount": 5000, "currency": "usd", "payment_method_types": ["sepa_debit"]}, "payment_method_types"),
        ({"amount": 5000, "currency": "usd", "payment_method": sepa}, "payment_method"),  # a card intent
        ({"amount": 150, "currency": "isk"}, "amount"),
        ({"amount": 1235, "currency": "kwd"}, "amount"),
        ({"amount": 49, "currency": "usd"}, "amount"),
        ({"amount": 100_000_000, "currency": "usd"}, "amount"),
    ]
    for params, param in refusals:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            emulator.v1.payment_intents.create(params=params)
        assert refused.value.param == param, params
    debit = emulator.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "eur",
            "payment_method": sepa,
            "payment_method_types": ["sepa_debit"],
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as no_mandate:
        emulator.v1.payment_intents.confirm(debit.id)
    assert no_mandate.value.param == "mandate_data"
    confirmed = emulator.v1.payment_intents.confirm(
        debit.id, params={"mandate_data": {"customer_acceptance": {"type": "offline"}}}
    )
    assert confirmed.status == "processing"


@pytest.mark.parametrize(
    ("payment_method", "status", "failure_code"),
    [
        ("pm_card_visa", "SETTLED", None),
        ("pm_card_mastercard", "SETTLED", None),
        ("pm_card_visa_chargeDeclined", "FAILED", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "FAILED", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "FAILED", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "FAILED", "incorrect_cvc"),
        ("pm_card_chargeDeclinedProcessingError", "FAILED", "processing_error"),
        ("pm_card_authenticationRequired", "PROCESSING", None),  # waits for the customer
        ("pm_card_threeDSecure2Required", "PROCESSING", None),
    ],
)
def test_stripes_documented_test_methods_answer_as_stripe_documents(
    api: Api, payment_method: str, status: str, failure_code: str | None
) -> None:
    session = api.open_session()
    answer = start(api, session["sessionId"], payment_method)
    if status == "FAILED":
        assert assert_error(answer, 402, "payment_declined")["failureCode"] == failure_code
    else:
        assert answer.status == 201, answer
    [transaction] = api.get(session["sessionId"])["transactions"]
    assert (transaction["status"], transaction["failureCode"]) == (status, failure_code)
