"""The `adyen` provider end to end: the API over HTTP, the official SDK in the runtime's functions, and the
local Adyen the runtime starts (every request and answer checked against Adyen's OpenAPI document) sending
its signed notifications back to the runtime. Nothing here mocks the SDK."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, assert_error, wait_for_status
from tests.support import wait_until

CARD = {
    "type": "scheme",
    "number": "4111111111111111",
    "expiryMonth": "03",
    "expiryYear": "2030",
    "cvc": "737",
    "holderName": "J. Smith",
}
QUICK = {"ADYEN_NOTIFICATION_DELAY_SECONDS": "0.2", "CANCELLATION_RECHECK_SECONDS": "5"}


@pytest.fixture(scope="module")
def running() -> Iterator[RunningRuntime]:
    runtime = launch(QUICK)
    yield runtime
    stop_and_check(runtime)


@pytest.fixture
def api(running: RunningRuntime) -> Api:
    return Api(running.base_url, "sk_test_demo")


def pay(api: Api, session_id: str, method: dict[str, str] | None = None, capture: str = "AUTOMATIC") -> Any:
    return api.request(
        "POST",
        f"/v1/sessions/{session_id}/transactions",
        {"provider": "adyen", "paymentMethod": method or CARD, "captureMethod": capture},
    )


def control(runtime: RunningRuntime, path: str, body: dict[str, Any] | None = None) -> Any:
    """The local Adyen's test controls (its /_emulator routes, outside Adyen's API)."""
    request = urllib.request.Request(  # noqa: S310 - the local Adyen on loopback
        f"{runtime.adyen_url}/_emulator/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def sent(runtime: RunningRuntime, event_code: str, transaction_id: str) -> list[dict[str, Any]]:
    """The notifications of `event_code` the local Adyen made for our transaction, with their state."""
    listed = control(runtime, "notifications")
    entries = listed["notifications"] if isinstance(listed, dict) else listed
    return [
        entry
        for entry in entries
        if entry["eventCode"] == event_code and entry["item"]["merchantReference"] == transaction_id
    ]


def transaction_of(api: Api, session_id: str) -> dict[str, Any]:
    [transaction] = api.get(session_id)["transactions"]
    return dict(transaction)


def updates_to(api: Api, session_id: str, status: str) -> int:
    return sum(
        1
        for event in api.events(session_id)
        if event["type"] == "transaction.updated" and event["data"]["to"] == status
    )


def test_a_card_with_automatic_capture_settles_and_completes(api: Api, running: RunningRuntime) -> None:
    session = api.open_session(currency="EUR")
    started = pay(api, session["sessionId"])
    assert started.status == 201, started
    assert started.body["status"] == "SETTLED" and started.body["providerReference"]
    assert api.get(session["sessionId"])["status"] == "COMPLETED"
    # Adyen's AUTHORISATION notification reaches the runtime, is accepted, and changes nothing
    tx_id = started.body["transactionId"]
    wait_until(lambda: [n for n in sent(running, "AUTHORISATION", tx_id) if n["state"] == "sent"], 30, "sent")
    assert updates_to(api, session["sessionId"], "SETTLED") == 1


def test_a_card_with_manual_capture_is_authorised(api: Api) -> None:
    session = api.open_session(currency="EUR")
    started = pay(api, session["sessionId"], capture="MANUAL")
    assert started.status == 201 and started.body["status"] == "AUTHORIZED"
    assert api.get(session["sessionId"])["status"] == "OPEN"


def test_a_refused_card_is_402_and_kept_failed_with_adyens_reason(api: Api) -> None:
    session = api.open_session(currency="EUR")
    declined = pay(api, session["sessionId"], {**CARD, "holderName": "NOT_ENOUGH_BALANCE"})
    error = assert_error(declined, 402, "payment_declined")
    transaction = transaction_of(api, session["sessionId"])
    assert transaction["transactionId"] == error["transactionId"]
    assert (transaction["status"], transaction["failureCode"]) == ("FAILED", error["failureCode"])
    assert error["failureCode"] == "Not enough balance"


def test_a_cancel_adyen_answers_later_waits_for_its_notification_then_the_workflow_ends_it(
    api: Api, running: RunningRuntime
) -> None:
    # Given an authorised payment
    session = api.open_session(currency="EUR")
    started = pay(api, session["sessionId"], capture="MANUAL").body
    # When the merchant cancels, refusing to wait for uncancellable payments (Adyen can cancel this one),
    # and Adyen takes its time to answer
    control(running, "notifications", {"delaySeconds": 5})
    try:
        answer = api.cancel(session["sessionId"], {"whenInFlight": "REJECT"})
        waiting = transaction_of(api, session["sessionId"])
    finally:
        control(running, "notifications", {"delaySeconds": float(QUICK["ADYEN_NOTIFICATION_DELAY_SECONDS"])})
    # Then the session waits for Adyen's answer, the payment in flight with cancelRequestedAt
    assert answer.status == 200, answer
    assert answer.body["status"] == "PENDING_CANCELLATION"
    assert answer.body["pendingTransactionIds"] == [started["transactionId"]]
    assert "reports the outcome later" in answer.body["message"]
    assert waiting["status"] == "AUTHORIZED" and waiting["cancelRequestedAt"]
    # And Adyen's CANCELLATION notification ends it; the finaliser closes the session
    cancelled = wait_for_status(api, session["sessionId"], "CANCELLED", timeout=60)
    assert [tx["status"] for tx in cancelled["transactions"]] == ["CANCELLED"]
    assert cancelled["cancellation"]["pendingTransactionIds"] == []
    assert cancelled["cancellation"]["finalizedAt"]


def test_a_failed_cancel_then_a_capture_is_reversed_and_the_session_ends_cancelled(
    api: Api, running: RunningRuntime
) -> None:
    # Given an authorised payment whose cancel Adyen will refuse
    session = api.open_session(currency="EUR")
    started = pay(api, session["sessionId"], capture="MANUAL").body
    control(running, "fail-cancels", {"count": 1})
    assert api.cancel(session["sessionId"]).body["status"] == "PENDING_CANCELLATION"
    # When Adyen reports the cancel failed, the payment is left to finish on its own
    wait_until(
        lambda: transaction_of(api, session["sessionId"])["cancelRequestedAt"] is None, 30, "the refusal"
    )
    assert api.get(session["sessionId"])["status"] == "PENDING_CANCELLATION"
    # And then the payment is captured (from Adyen's Customer Area, say)
    captured = control(
        running,
        "notify",
        {"eventCode": "CAPTURE", "pspReference": started["providerReference"], "success": True},
    )
    assert (captured["status"], captured["body"]) == (200, "[accepted]")
    # Then it is reversed at Adyen and the session ends CANCELLED with it refunded
    wait_for_status(api, session["sessionId"], "CANCELLED", timeout=60)
    # (recorded refunded when Adyen's CANCEL_OR_REFUND says the reversal was made, not on its `received`)
    wait_until(lambda: sent(running, "CANCEL_OR_REFUND", started["transactionId"]), 30, "the reversal")
    wait_until(
        lambda: transaction_of(api, session["sessionId"])["status"] == "REFUNDED", 30, "the reversal's report"
    )
    ended = api.get(session["sessionId"])
    [refunded] = ended["transactions"]
    assert refunded["refundId"]
    assert ended["cancellation"]["refundedTransactionIds"] == [started["transactionId"]]
    assert ended["cancellation"]["settledTransactionIds"] == [started["transactionId"]]


def test_an_attempt_whose_payments_call_never_answered_is_technically_cancelled(
    api: Api, running: RunningRuntime
) -> None:
    # Given Adyen makes the payment but neither its answer nor its notification comes back
    session = api.open_session(currency="EUR")
    control(running, "hold-payments", {"count": 1, "seconds": 20})
    control(running, "notifications", {"drop": True})
    try:
        started = pay(api, session["sessionId"], capture="MANUAL")
        assert started.status == 201 and started.body["providerReference"] is None
        control(running, "release", {})
        tx_id = started.body["transactionId"]
        wait_until(lambda: sent(running, "AUTHORISATION", tx_id), 30, "the payment's notification, lost")
    finally:
        control(running, "notifications", {"drop": False})
    # When the session is cancelled
    assert api.cancel(session["sessionId"]).body["status"] == "PENDING_CANCELLATION"
    # Then the attempt was cancelled by our reference (Adyen's technical cancel), and the session ends
    [technical] = wait_until(lambda: sent(running, "TECHNICAL_CANCEL", tx_id), 30, "the technical cancel")
    assert technical["item"]["success"] == "true"
    assert transaction_of(api, session["sessionId"])["cancelRequestedAt"]
    ended = wait_for_status(api, session["sessionId"], "CANCELLED", timeout=60)
    [cancelled] = ended["transactions"]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["providerReference"] == technical["item"]["originalReference"]


def test_a_batch_with_one_forged_item_is_refused_whole_and_a_repeat_is_applied_once(
    api: Api, running: RunningRuntime
) -> None:
    # Given two authorised payments on a session being cancelled, Adyen's notifications held back
    session = api.open_session(currency="EUR")
    first = pay(api, session["sessionId"], capture="MANUAL").body
    second = pay(api, session["sessionId"], capture="MANUAL").body
    control(running, "notifications", {"drop": True})
    try:
        assert api.cancel(session["sessionId"]).body["status"] == "PENDING_CANCELLATION"
        items = [
            wait_until(lambda tx=tx: sent(running, "CANCELLATION", tx["transactionId"]), 30, "made")[0][
                "item"
            ]
            for tx in (first, second)
        ]
    finally:
        control(running, "notifications", {"drop": False})
    forged = json.loads(json.dumps(items[1]))
    forged["additionalData"]["hmacSignature"] = "Zm9yZ2VkIHNpZ25hdHVyZSBvZiBubyBrZXkgYXQgYWxs"

    def deliver(*batch: dict[str, Any]) -> Any:
        body = {"live": "false", "notificationItems": [{"NotificationRequestItem": item} for item in batch]}
        return api.request("POST", "/v1/providers/adyen/events", body, authorized=False)

    # When one batch carries a forged item: 401 and nothing applied
    refused = deliver(items[0], forged)
    assert_error(refused, 401, "invalid_signature")
    assert [tx["status"] for tx in api.get(session["sessionId"])["transactions"]] == ["AUTHORIZED"] * 2
    # When the honest batch arrives twice: answered [accepted] each time, applied once
    for _ in range(2):
        accepted = deliver(*items)
        assert (accepted.status, accepted.text) == (200, "[accepted]")
    ended = wait_for_status(api, session["sessionId"], "CANCELLED", timeout=60)
    assert [tx["status"] for tx in ended["transactions"]] == ["CANCELLED"] * 2
    assert updates_to(api, session["sessionId"], "CANCELLED") == 2


# -- a card that needs the shopper (3-D Secure): RedirectShopper, then /payments/details --------------

THREE_DS_CARD = {**CARD, "number": "4212345678910006"}


def shopper_answers(next_action_url: str, outcome: str) -> str:
    """The shopper on the local Adyen's issuer page: where it sends them back."""
    page = requests.get(next_action_url, timeout=30)
    assert page.status_code == 200, page.text
    answer = requests.post(next_action_url, data={"outcome": outcome}, allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["Location"])


@pytest.mark.parametrize(("capture", "outcome_status"), [("AUTOMATIC", "SETTLED"), ("MANUAL", "AUTHORIZED")])
def test_a_redirected_shopper_comes_back_and_the_payment_is_completed_with_adyen(
    api: Api, running: RunningRuntime, capture: str, outcome_status: str
) -> None:
    session = api.open_session(currency="EUR", returnUrl="https://example.com/return")
    started = pay(api, session["sessionId"], THREE_DS_CARD, capture)
    assert started.status == 201, started
    assert started.body["status"] == "PROCESSING"
    assert started.body["nextAction"]["url"].startswith(f"{running.adyen_url}/_emulator/3ds/")
    back = shopper_answers(started.body["nextAction"]["url"], "authenticated")
    assert back.startswith(f"{running.base_url}/pay/") and "/return?redirectResult=" in back
    landed = requests.get(back, allow_redirects=False, timeout=30)
    assert landed.status_code == 303
    transaction = transaction_of(api, session["sessionId"])
    assert (transaction["status"], transaction["nextAction"]) == (outcome_status, None)
    if capture == "AUTOMATIC":
        assert landed.headers["Location"].endswith(f"sessionId={session['sessionId']}&status=COMPLETED")
    # Adyen's AUTHORISATION notification, which /payments/details set off, changes nothing more
    tx_id = started.body["transactionId"]
    wait_until(lambda: [n for n in sent(running, "AUTHORISATION", tx_id) if n["state"] == "sent"], 30, "sent")
    assert updates_to(api, session["sessionId"], outcome_status) == 1


def test_a_shopper_who_fails_authentication_comes_back_to_a_failed_attempt(
    api: Api, running: RunningRuntime
) -> None:
    session = api.open_session(currency="EUR")
    started = pay(api, session["sessionId"], THREE_DS_CARD)
    back = shopper_answers(started.body["nextAction"]["url"], "failed")
    assert requests.get(back, allow_redirects=False, timeout=30).status_code == 303
    transaction = transaction_of(api, session["sessionId"])
    assert (transaction["status"], transaction["failureCode"]) == ("FAILED", "3D Not Authenticated")
    assert api.get(session["sessionId"])["status"] == "OPEN"
