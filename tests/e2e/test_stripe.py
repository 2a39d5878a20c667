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
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import stripe

from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, assert_error, wait_for_status
from tests.support import wait_until

WEBHOOK_SECRET = "whsec_e2e_stripe"
SEPA_IBAN = "DE89370400440532013000"  # Stripe's test IBAN: processing, then succeeded


@pytest.fixture(scope="module")
def running() -> Iterator[RunningRuntime]:
    # The SEPA debits process for 8 s: time enough, on a loaded machine, to cancel one while it processes.
    # Sessions may expire after 2 s, and the sweep runs every second: a payment left waiting for the
    # customer is cancelled at expiry.
    runtime = launch(
        {
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LOCAL_STRIPE_SEPA_SECONDS": "8",
            "SESSION_TTL_MIN_SECONDS": "2",
            "SWEEP_INTERVAL_SECONDS": "1",
        }
    )
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
    # Only the cards that need the customer send them away (to authenticate, §6.3)
    waits = payment_method in ("pm_card_authenticationRequired", "pm_card_threeDSecure2Required")
    assert (transaction["nextAction"] is not None) == waits, transaction


# -- payments that need the customer (3-D Secure) -------------------------------------------------------

THREE_D_SECURE = "pm_card_threeDSecure2Required"
RETURN_URL = "https://example.com/return"


def authenticate(next_action_url: str, outcome: str) -> str:
    """The customer on the local Stripe's authentication page: Complete or Fail; where it sends them."""
    page = requests.get(next_action_url, timeout=30)
    assert page.status_code == 200 and "Complete authentication" in page.text, page.text
    secret = parse_qs(urlsplit(next_action_url).query)["client_secret"][0]
    answer = requests.post(
        next_action_url, data={"client_secret": secret, "outcome": outcome}, allow_redirects=False, timeout=30
    )
    assert answer.status_code == 303, answer.text
    return str(answer.headers["Location"])


def come_back(url: str) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=30)


def waiting_payment(api: Api, **session: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    opened = api.open_session(returnUrl=RETURN_URL, **session)
    started = start(api, opened["sessionId"], THREE_D_SECURE)
    assert started.status == 201, started
    return opened, started.body


def settled_events(api: Api, session_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in api.events(session_id)
        if e["type"] == "transaction.updated" and e["data"]["to"] == "SETTLED"
    ]


def test_a_card_that_needs_3ds_waits_for_the_customer_and_completes_when_they_come_back(
    api: Api, emulator: Any, running: RunningRuntime
) -> None:
    # Given a card that needs 3-D Secure: PROCESSING, with the page to send the customer to
    session, transaction = waiting_payment(api)
    assert transaction["status"] == "PROCESSING"
    assert transaction["nextAction"]["type"] == "redirect"
    assert transaction["nextAction"]["url"].startswith(f"{running.stripe_url}/redirect/authenticate/")
    intent = emulator.v1.payment_intents.retrieve(transaction["providerReference"])
    assert intent.status == "requires_action" and intent.next_action.type == "redirect_to_url"
    assert api.get(session["sessionId"])["transactions"][0]["nextAction"] == transaction["nextAction"]
    # When they authenticate, Stripe sends them back to the hosted page's return route
    back = authenticate(transaction["nextAction"]["url"], "authenticate")
    assert back.startswith(f"{running.base_url}/pay/") and "/return?" in back
    landed = come_back(back)
    # Then they are sent on to the merchant, paid, whichever of the return and the webhook came first
    assert landed.status_code == 303
    assert landed.headers["Location"] == f"{RETURN_URL}?sessionId={session['sessionId']}&status=COMPLETED"
    done = api.get(session["sessionId"])
    assert done["status"] == "COMPLETED"
    assert (done["transactions"][0]["status"], done["transactions"][0]["nextAction"]) == ("SETTLED", None)
    # And Stripe's own webhook of it, arriving after, records nothing twice
    timeline = api.events(session["sessionId"])
    assert len(settled_events(api, session["sessionId"])) == 1

    def stripes_event() -> Any:
        listed = emulator.v1.events.list(params={"type": "payment_intent.succeeded", "limit": 100}).data
        return next((event for event in listed if event.data.object.id == intent.id), None)

    succeeded = wait_until(stripes_event, timeout=30)
    assert deliver(api, succeeded.to_dict()).body == {"received": True, "applied": False}
    assert api.events(session["sessionId"]) == timeline
    assert come_back(back).status_code == 303  # coming back again: the same answer


def test_the_return_alone_records_the_outcome_when_no_webhook_arrives(
    api: Api, emulator: Any, running: RunningRuntime
) -> None:
    # Given Stripe's webhooks do not reach the service for a while
    register = f"{running.stripe_url}/_config/webhooks/checkout-sessions"
    webhook_url = f"{running.base_url}/v1/providers/stripe/events"
    requests.post(register, data={"url": "http://127.0.0.1:9/nowhere", "secret": WEBHOOK_SECRET}, timeout=30)
    try:
        session, transaction = waiting_payment(api)
        back = authenticate(transaction["nextAction"]["url"], "authenticate")
        # When the customer comes back
        landed = come_back(back)
    finally:
        requests.post(register, data={"url": webhook_url, "secret": WEBHOOK_SECRET}, timeout=30)
    # Then their return alone completes the session
    assert landed.status_code == 303 and landed.headers["Location"].endswith("status=COMPLETED")
    done = api.get(session["sessionId"])
    assert done["status"] == "COMPLETED" and done["transactions"][0]["status"] == "SETTLED"
    [settled] = settled_events(api, session["sessionId"])
    assert settled["actor"] == "customer"


def test_when_the_webhook_comes_first_the_return_changes_nothing(api: Api) -> None:
    session, transaction = waiting_payment(api)
    back = authenticate(transaction["nextAction"]["url"], "authenticate")
    wait_for_status(api, session["sessionId"], "COMPLETED")
    timeline = api.events(session["sessionId"])
    assert [e["actor"] for e in settled_events(api, session["sessionId"])] == ["provider:stripe"]
    landed = come_back(back)
    assert landed.status_code == 303 and landed.headers["Location"].endswith("status=COMPLETED")
    assert api.events(session["sessionId"]) == timeline


def test_a_failed_authentication_fails_the_attempt_and_the_customer_can_try_again(
    api: Api, emulator: Any
) -> None:
    session, transaction = waiting_payment(api)
    back = authenticate(transaction["nextAction"]["url"], "fail")
    landed = come_back(back)
    # An attempt made through the API: back to the merchant's page, which offers another try
    assert landed.status_code == 303
    assert landed.headers["Location"] == f"{RETURN_URL}?sessionId={session['sessionId']}&status=OPEN"
    [failed] = api.get(session["sessionId"])["transactions"]
    assert (failed["status"], failed["failureCode"], failed["nextAction"]) == (
        "FAILED",
        "payment_intent_authentication_failure",
        None,
    )
    # The intent, whose client secret the way back carried, is closed at Stripe
    assert emulator.v1.payment_intents.retrieve(failed["providerReference"]).status == "canceled"
    again = start(api, session["sessionId"], "pm_card_visa")
    assert again.status == 201 and again.body["status"] == "SETTLED"
    assert api.get(session["sessionId"])["status"] == "COMPLETED"


def test_a_cancel_while_the_customer_authenticates_cancels_at_stripe_and_they_come_back_to_a_closed_page(
    api: Api, emulator: Any
) -> None:
    session, transaction = waiting_payment(api)
    # A cancel that must not wait: nothing is authorised yet, so Stripe can cancel it
    cancelled = api.cancel(session["sessionId"], {"whenInFlight": "REJECT"})
    assert cancelled.status == 200 and cancelled.body["status"] == "CANCELLED", cancelled
    intent = emulator.v1.payment_intents.retrieve(transaction["providerReference"])
    assert intent.status == "canceled"
    # The customer, still on the bank's page, authenticates and comes back: the checkout is closed
    back = authenticate_after_cancel(transaction["nextAction"]["url"])
    landed = come_back(back)
    assert landed.status_code == 410 and "cancelled" in landed.text
    assert api.get(session["sessionId"])["transactions"][0]["status"] == "CANCELLED"


def authenticate_after_cancel(next_action_url: str) -> str:
    secret = parse_qs(urlsplit(next_action_url).query)["client_secret"][0]
    answer = requests.post(
        next_action_url,
        data={"client_secret": secret, "outcome": "authenticate"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303, answer.text
    return str(answer.headers["Location"])


def test_expiry_cancels_a_payment_left_waiting_for_the_customer(api: Api, emulator: Any) -> None:
    session, transaction = waiting_payment(api, expiresInSeconds=2)
    expired = wait_for_status(api, session["sessionId"], "EXPIRED", timeout=60)
    assert expired["transactions"][0]["status"] == "CANCELLED"
    assert emulator.v1.payment_intents.retrieve(transaction["providerReference"]).status == "canceled"
    assert [e["actor"] for e in api.events(session["sessionId"]) if e["type"] == "session.expired"] == [
        "scheduler"
    ]


def test_the_bank_page_is_reached_only_through_next_action(api: Api) -> None:
    _, transaction = waiting_payment(api)
    url = transaction["nextAction"]["url"]
    assert requests.get(url.split("?")[0], timeout=30).status_code == 404
    assert requests.get(url.split("?")[0] + "?client_secret=pi_x_secret_guess", timeout=30).status_code == 404


def test_a_return_link_serves_its_attempts_return_and_never_the_page(
    api: Api, running: RunningRuntime
) -> None:
    _, transaction = waiting_payment(api)
    back = authenticate(transaction["nextAction"]["url"], "fail")
    link = back.split("?")[0].removesuffix("/return")
    assert requests.get(link, timeout=30).status_code == 404
    assert requests.post(f"{link}/cancel", data={}, allow_redirects=False, timeout=30).status_code == 404
    assert requests.get(f"{running.base_url}/pay/{'x' * 32}/return", timeout=30).status_code == 404
