"""The `adyen` provider through the real handlers on moto: the official SDK talks to the local Adyen
(local/adyen_emulator.py, in process, every request and answer checked against Adyen's OpenAPI document),
whose notifications the test hands to the provider-events handler itself, when it chooses: so each step of
a cancel that Adyen answers later is seen between its request and its answer. Nothing mocks the SDK."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from checkout_core import context, providers
from checkout_core.context import Context
from checkout_core.customer_actions import cancel_waiting_payments
from checkout_core.expiry import sweep
from checkout_core.settings import get_settings
from local.adyen.platform import Settings as EmulatorSettings
from local.adyen.server import AdyenServer
from tests.integration.flows import cancel, create_session, event_types, events, get, move_expiry_to_the_past
from tests.support import Answer, api_event, call, wait_until

API_KEY = "adyen_it_key"
MERCHANT = "CheckoutSessionsIt"
HMAC_KEY = secrets.token_hex(32)
CARD = {
    "type": "scheme",
    "number": "4111111111111111",
    "expiryMonth": "03",
    "expiryYear": "2030",
    "cvc": "737",
    "holderName": "J. Smith",
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[AdyenServer]:
    """The local Adyen on a free port; its notifications are kept, not sent: the test delivers them."""
    server = AdyenServer(("127.0.0.1", 0), EmulatorSettings(API_KEY, MERCHANT, HMAC_KEY, None))
    server.serve_in_thread()
    yield server
    server.stop()
    stats = server.adyen.stats()
    assert stats["specViolations"] == 0, server.adyen.violations


@pytest.fixture
def adyen(aws: Any, emulator: AdyenServer, monkeypatch: pytest.MonkeyPatch) -> AdyenServer:
    monkeypatch.setenv("ADYEN_API_KEY", API_KEY)
    monkeypatch.setenv("ADYEN_MERCHANT_ACCOUNT", MERCHANT)
    monkeypatch.setenv("ADYEN_HMAC_KEY", HMAC_KEY)
    monkeypatch.setenv("ADYEN_API_BASE", emulator.url)
    get_settings.cache_clear()
    providers.get_providers.cache_clear()
    context.get_context.cache_clear()
    emulator.adyen.reset()
    yield emulator
    get_settings.cache_clear()
    providers.get_providers.cache_clear()
    context.get_context.cache_clear()


def pay(session_id: str, method: dict[str, str] | None = None, capture: str = "AUTOMATIC") -> Answer:
    return call(
        "create_transaction",
        api_event(
            "create_transaction",
            f"/v1/sessions/{session_id}/transactions",
            body={"provider": "adyen", "paymentMethod": method or CARD, "captureMethod": capture},
            path_parameters={"sessionId": session_id},
        ),
    )


def control(emulator: AdyenServer, path: str, body: dict[str, Any] | None = None) -> Any:
    """The local Adyen's test controls (its /_emulator routes, outside Adyen's API)."""
    request = urllib.request.Request(  # noqa: S310 - the local Adyen on loopback
        f"{emulator.url}/_emulator/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


def notifications(emulator: AdyenServer, event_code: str, reference: str) -> list[dict[str, Any]]:
    """The items the local Adyen has made of `event_code` for our reference (the transaction id)."""
    listed = control(emulator, "notifications")
    return [
        dict(n["item"])
        for n in (listed.get("notifications", listed) if isinstance(listed, dict) else listed)
        if n["eventCode"] == event_code and n["item"]["merchantReference"] == reference
    ]


def deliver(*items: dict[str, Any]) -> Answer:
    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]})
    return call(
        "provider_events",
        api_event(
            "provider_event",
            "/v1/providers/adyen/events",
            raw_body=body,
            path_parameters={"provider": "adyen"},
            headers={"Content-Type": "application/json"},
            tenant=None,
        ),
    )


def moves_to(session_id: str, status: str) -> int:
    return sum(
        1
        for event in events(session_id)
        if event["type"] == "transaction.updated" and event["data"]["to"] == status
    )


def one(emulator: AdyenServer, event_code: str, reference: str) -> dict[str, Any]:
    found = wait_until(lambda: notifications(emulator, event_code, reference), 10, f"{event_code} made")
    return dict(found[-1])


def test_an_automatic_capture_settles_and_completes_and_its_notification_changes_nothing(
    adyen: AdyenServer,
) -> None:
    session_id = create_session()["sessionId"]
    answer = pay(session_id)
    assert answer.status == 201, answer.body
    transaction = answer.json()
    assert transaction["status"] == "SETTLED" and transaction["providerReference"]
    assert get(session_id)["status"] == "COMPLETED"
    timeline = event_types(session_id)
    authorisation = one(adyen, "AUTHORISATION", transaction["transactionId"])
    assert authorisation["pspReference"] == transaction["providerReference"]
    delivered = deliver(authorisation)
    assert (delivered.status, delivered.body) == (200, "[accepted]")
    assert event_types(session_id) == timeline


def test_a_refused_card_is_402_and_kept_failed_with_adyens_refusal_reason(adyen: AdyenServer) -> None:
    session_id = create_session()["sessionId"]
    answer = pay(session_id, {**CARD, "holderName": "DECLINED"})
    assert answer.status == 402, answer.body
    error = answer.error
    assert error["code"] == "payment_declined" and error["failureCode"]
    [transaction] = get(session_id)["transactions"]
    assert (transaction["status"], transaction["failureCode"]) == ("FAILED", error["failureCode"])
    assert get(session_id)["status"] == "OPEN"


def test_a_payment_method_of_the_wrong_shape_is_refused_and_changes_nothing(adyen: AdyenServer) -> None:
    session_id = create_session()["sessionId"]
    as_id = call(
        "create_transaction",
        api_event(
            "create_transaction",
            f"/v1/sessions/{session_id}/transactions",
            body={"provider": "adyen", "paymentMethod": "pm_card_visa"},
            path_parameters={"sessionId": session_id},
        ),
    )
    assert as_id.status == 400 and as_id.error["param"] == "paymentMethod"
    untyped = pay(session_id, {"number": "4111111111111111"})
    assert untyped.status == 400 and untyped.error["param"] == "paymentMethod"
    assert get(session_id)["transactions"] == []


def test_a_cancel_adyen_answers_later_waits_then_cancels_on_its_notification(adyen: AdyenServer) -> None:
    # Given an authorised (manual capture) payment
    session_id = create_session()["sessionId"]
    transaction = pay(session_id, capture="MANUAL").json()
    assert transaction["status"] == "AUTHORIZED"
    tx_id = transaction["transactionId"]
    # When the session is cancelled, even with whenInFlight REJECT (Adyen can cancel it)
    answer = cancel(session_id, {"whenInFlight": "REJECT"})
    # Then it waits for Adyen's answer: the transaction in flight with cancelRequestedAt, pending
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["status"] == "PENDING_CANCELLATION"
    assert body["pendingTransactionIds"] == [tx_id] and body["cancelledTransactionIds"] == []
    assert "reports the outcome later" in body["message"]
    [waiting] = get(session_id)["transactions"]
    assert waiting["status"] == "AUTHORIZED" and waiting["cancelRequestedAt"]
    # When Adyen's CANCELLATION arrives (twice)
    cancellation = one(adyen, "CANCELLATION", tx_id)
    assert cancellation["originalReference"] == transaction["providerReference"]
    for _ in range(2):
        delivered = deliver(cancellation)
        assert (delivered.status, delivered.body) == (200, "[accepted]")
    # Then the transaction is cancelled once, and the finaliser ends the session
    wait_until(lambda: get(session_id)["status"] == "CANCELLED", 30, "the finaliser")
    session = get(session_id)
    assert [tx["status"] for tx in session["transactions"]] == ["CANCELLED"]
    assert session["cancellation"]["pendingTransactionIds"] == []
    assert moves_to(session_id, "CANCELLED") == 1


def test_a_failed_cancel_then_a_settlement_is_reversed_and_the_session_ends_cancelled(
    adyen: AdyenServer,
) -> None:
    # Given a payment Adyen received but has not authorised yet, and Adyen's next cancel fails
    session_id = create_session()["sessionId"]
    transaction = pay(session_id, {**CARD, "holderName": "PENDING"}).json()
    assert transaction["status"] == "PROCESSING"
    tx_id = transaction["transactionId"]
    control(adyen, "fail-cancels", {"count": 1})
    assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    assert get(session_id)["transactions"][0]["cancelRequestedAt"]
    # When Adyen reports the cancel failed
    failed = one(adyen, "CANCELLATION", tx_id)
    assert failed["success"] == "false"
    assert deliver(failed).body == "[accepted]"
    [left] = get(session_id)["transactions"]
    assert left["status"] == "PROCESSING" and left["cancelRequestedAt"] is None
    assert get(session_id)["status"] == "PENDING_CANCELLATION"
    # And then that the payment is authorised (and so captured: the capture is automatic)
    authorised = one(adyen, "AUTHORISATION", tx_id)
    assert authorised["success"] == "true"
    assert deliver(authorised).body == "[accepted]"
    # Then the session ends CANCELLED, and the reversal is asked of Adyen, which answers only `received`:
    # the payment is not recorded refunded on that word
    wait_until(lambda: get(session_id)["status"] == "CANCELLED", 30, "the finaliser")
    reversal = one(adyen, "CANCEL_OR_REFUND", tx_id)
    session = get(session_id)
    [settled] = session["transactions"]
    assert (settled["status"], settled["refundId"]) == ("SETTLED", None)
    assert session["cancellation"]["settledTransactionIds"] == [tx_id]
    assert session["cancellation"]["refundedTransactionIds"] == []
    # When Adyen reports the reversal made
    assert deliver(reversal).body == "[accepted]"
    # Then it is recorded refunded, with the reversal's id, once
    session = get(session_id)
    [refunded] = session["transactions"]
    assert (refunded["status"], refunded["refundId"]) == ("REFUNDED", reversal["pspReference"])
    assert session["cancellation"]["refundedTransactionIds"] == [tx_id]
    assert event_types(session_id).count("transaction.refunded") == 1
    assert deliver(reversal).body == "[accepted]"  # resent: changes nothing
    assert get(session_id) == session


def test_a_reversal_adyen_refuses_or_a_capture_the_scheme_refuses_tells_a_person(adyen: AdyenServer) -> None:
    # Given a payment that settles on a session already cancelled (Adyen refused the cancel), its reversal
    # asked of Adyen
    session_id = create_session()["sessionId"]
    tx_id = pay(session_id, {**CARD, "holderName": "PENDING"}).json()["transactionId"]
    control(adyen, "fail-cancels", {"count": 1})
    assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    assert deliver(one(adyen, "CANCELLATION", tx_id)).body == "[accepted]"
    assert deliver(one(adyen, "AUTHORISATION", tx_id)).body == "[accepted]"
    payment_psp = one(adyen, "CANCEL_OR_REFUND", tx_id)["originalReference"]
    # When Adyen reports that the reversal failed (twice: Adyen resends)
    refused = signed_item("CANCEL_OR_REFUND", tx_id, payment_psp, success=False)
    assert deliver(refused).body == "[accepted]"
    assert deliver(refused).body == "[accepted]"
    # Then the payment stays SETTLED, and a person is told once that the refund was not made
    assert get(session_id)["transactions"][0]["status"] == "SETTLED"
    raised = [e["data"] for e in events(session_id) if e["type"] == "session.attention_required"]
    assert [(r["reason"], r["transactionId"], r["refundRequired"]) for r in raised] == [
        ("REFUND_NOT_MADE", tx_id, True)
    ]
    # And the scheduled job, past the deadline, does not raise that alarm again
    raised_again = reconcile_past_the_deadline(tx_id)
    assert raised_again is False
    # And a capture the card scheme refused (Adyen's CAPTURE_FAILED) is told too
    assert deliver(signed_item("CAPTURE_FAILED", tx_id, payment_psp)).body == "[accepted]"
    reasons = [e["data"]["reason"] for e in events(session_id) if e["type"] == "session.attention_required"]
    assert reasons == ["REFUND_NOT_MADE", "CAPTURE_FAILED"]


def reconcile_past_the_deadline(transaction_id: str) -> bool:
    """The scheduled job's look at one transaction, a day and more after it settled."""
    from checkout_core.reconciliation import reconcile_transaction

    clock = Clock()
    ctx = context_at(clock)
    clock.now += timedelta(seconds=ctx.settings.cancellation_deadline_seconds + 60)
    return reconcile_transaction(ctx, transaction_id)


def signed_item(
    event_code: str, merchant_reference: str, original: str, success: bool = True
) -> dict[str, Any]:
    """A notification item the local Adyen cannot be made to send (a refusal by Adyen or a card scheme),
    signed as Adyen signs."""
    from Adyen.util import generate_notification_sig

    body: dict[str, Any] = {
        "amount": {"currency": "EUR", "value": 5000},
        "eventCode": event_code,
        "eventDate": "2026-12-04T08:00:00+01:00",
        "merchantAccountCode": MERCHANT,
        "merchantReference": merchant_reference,
        "originalReference": original,
        "pspReference": f"PSP{event_code.replace('_', '')[:13]}",
        "success": "true" if success else "false",
    }
    return {**body, "additionalData": {"hmacSignature": generate_notification_sig(body, HMAC_KEY).decode()}}


def test_a_forged_item_refuses_the_whole_batch_and_a_repeat_is_applied_once(adyen: AdyenServer) -> None:
    session_id = create_session()["sessionId"]
    first = pay(session_id, capture="MANUAL").json()
    second = pay(session_id, capture="MANUAL").json()
    assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    good = one(adyen, "CANCELLATION", first["transactionId"])
    forged = dict(one(adyen, "CANCELLATION", second["transactionId"]))
    forged["additionalData"] = {**forged["additionalData"], "hmacSignature": "Zm9yZ2Vk"}
    refused = deliver(good, forged)
    assert refused.status == 401 and refused.error["code"] == "invalid_signature"
    assert [tx["status"] for tx in get(session_id)["transactions"]] == ["AUTHORIZED", "AUTHORIZED"]
    honest = one(adyen, "CANCELLATION", second["transactionId"])
    for _ in range(2):
        assert deliver(good, honest).body == "[accepted]"
    wait_until(lambda: get(session_id)["status"] == "CANCELLED", 30, "the finaliser")
    assert moves_to(session_id, "CANCELLED") == 2


def test_a_notification_of_a_payment_never_made_is_accepted_and_another_merchant_refused(
    adyen: AdyenServer,
) -> None:
    session_id = create_session()["sessionId"]
    transaction = pay(session_id, capture="MANUAL").json()
    authorisation = one(adyen, "AUTHORISATION", transaction["transactionId"])
    # Adyen's own notification, re-signed for a reference this service never used
    from Adyen.util import generate_notification_sig

    stranger = {key: value for key, value in authorisation.items() if key != "additionalData"}
    stranger["merchantReference"] = "order-from-another-system"
    stranger["additionalData"] = {"hmacSignature": generate_notification_sig(stranger, HMAC_KEY).decode()}
    assert deliver(stranger).body == "[accepted]"
    elsewhere = {**stranger, "merchantAccountCode": "SomeoneElse"}
    elsewhere["additionalData"] = {
        "hmacSignature": generate_notification_sig(
            {k: v for k, v in elsewhere.items() if k != "additionalData"}, HMAC_KEY
        ).decode()
    }
    refused = deliver(elsewhere)
    assert refused.status == 400 and refused.error["param"].endswith("merchantAccountCode")
    assert get(session_id)["transactions"][0]["status"] == "AUTHORIZED"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def context_at(clock: Clock) -> Context:
    settings = replace(get_settings(), provider_reconcile_seconds=60, cancellation_deadline_seconds=3600)
    return Context(settings=settings, clock=clock)


def lose_the_answer(session_id: str, monkeypatch: pytest.MonkeyPatch, point: str) -> str:
    """An attempt whose process died at `point` (either side of the /payments call): no pspReference."""
    monkeypatch.setenv("FAULTS", f"{point}=crash")
    with pytest.raises(BaseException, match=point):
        pay(session_id, capture="MANUAL")
    monkeypatch.delenv("FAULTS")
    [lost] = get(session_id)["transactions"]
    assert lost["status"] == "PROCESSING" and lost["providerReference"] is None
    return str(lost["transactionId"])


def test_a_cancel_of_an_attempt_whose_answer_was_lost_is_a_technical_cancel(
    adyen: AdyenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = create_session()["sessionId"]
    tx_id = lose_the_answer(session_id, monkeypatch, "transaction.after_provider_start")
    assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    technical = one(adyen, "TECHNICAL_CANCEL", tx_id)
    assert technical["success"] == "true"
    assert deliver(technical).body == "[accepted]"
    wait_until(lambda: get(session_id)["status"] == "CANCELLED", 30, "the finaliser")
    [cancelled] = get(session_id)["transactions"]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["providerReference"] == technical["originalReference"]  # learnt from Adyen's report


def test_reconciliation_waits_while_the_session_takes_payments_then_cancels_a_silent_attempt(
    aws: Any, adyen: AdyenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an attempt Adyen made whose answer was lost, and whose notifications never arrive
    session_id = create_session()["sessionId"]
    tx_id = lose_the_answer(session_id, monkeypatch, "transaction.after_provider_start")
    clock = Clock()
    # When the scheduled job runs while the session takes payments: it waits, asking nothing
    clock.now += timedelta(seconds=901)  # past PROVIDER_RECONCILE_SECONDS (900) of silence
    sweep(context_at(clock), lambda: 60_000)
    assert notifications(adyen, "TECHNICAL_CANCEL", tx_id) == []
    # When the session has passed its expiry, and the job runs again
    move_expiry_to_the_past(aws, session_id)
    clock.now += timedelta(seconds=901)  # past PROVIDER_RECONCILE_SECONDS (900) of silence
    sweep(context_at(clock), lambda: 60_000)
    # Then the silent attempt is cancelled by our reference; Adyen's answer ends it, and the session expires
    assert get(session_id)["transactions"][0]["cancelRequestedAt"]
    technical = one(adyen, "TECHNICAL_CANCEL", tx_id)
    assert deliver(technical).body == "[accepted]"
    session = get(session_id)
    assert session["transactions"][0]["status"] == "CANCELLED"
    assert session["status"] == "EXPIRED"


def test_an_attempt_adyen_never_received_raises_attention_past_the_deadline_once(
    aws: Any, adyen: AdyenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an attempt recorded but never sent (the process died before the call), on an expired session
    session_id = create_session()["sessionId"]
    tx_id = lose_the_answer(session_id, monkeypatch, "transaction.before_provider_start")
    move_expiry_to_the_past(aws, session_id)
    clock = Clock()
    clock.now += timedelta(seconds=901)  # past PROVIDER_RECONCILE_SECONDS (900) of silence
    sweep(context_at(clock), lambda: 60_000)
    # When Adyen answers that it knows no such payment
    technical = one(adyen, "TECHNICAL_CANCEL", tx_id)
    assert technical["success"] == "false"
    assert deliver(technical).body == "[accepted]"
    [left] = get(session_id)["transactions"]
    assert left["status"] == "PROCESSING" and left["cancelRequestedAt"] is None
    # Then past the deadline the job raises attention, once, and does not ask Adyen again
    for _ in range(3):
        clock.now += timedelta(seconds=3601)
        sweep(context_at(clock), lambda: 60_000)
    assert event_types(session_id).count("session.attention_required") == 1
    assert len(notifications(adyen, "TECHNICAL_CANCEL", tx_id)) == 1


def test_a_request_adyen_refuses_is_400_naming_the_payment_method_not_a_decline(adyen: AdyenServer) -> None:
    # Given a card number that fails Adyen's own check (Adyen answers 422, error 101: not the shopper's bank)
    session_id = create_session()["sessionId"]
    answer = pay(session_id, {**CARD, "number": "4111111111111112"})
    # Then it is 400 naming paymentMethod, and the attempt is kept FAILED with Adyen's code
    assert answer.status == 400, answer.body
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "paymentMethod")
    [failed] = get(session_id)["transactions"]
    assert (failed["status"], failed["failureCode"]) == ("FAILED", "adyen_101")


def test_a_method_this_account_cannot_take_is_400_naming_the_payment_method(adyen: AdyenServer) -> None:
    # Adyen answers 500 with errorType "configuration", 905_1: no acquirer account for the method on this
    # account. The same request never succeeds (no 5xx, no Retry-After); another method may.
    session_id = create_session()["sessionId"]
    answer = pay(session_id, {**CARD, "type": "bcmc"})
    assert answer.status == 400, answer.body
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "paymentMethod")
    assert "not available" in error["message"]
    [failed] = get(session_id)["transactions"]
    assert (failed["status"], failed["failureCode"]) == ("FAILED", "adyen_905_1")


@pytest.mark.parametrize("setting", ["ADYEN_MERCHANT_ACCOUNT", "ADYEN_API_KEY"])
def test_adyen_refusing_this_services_set_up_is_503_and_the_attempt_failed(
    adyen: AdyenServer, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    # Given a merchant account Adyen does not know (403, 901) or an API key it refuses (401)
    session_id = create_session()["sessionId"]
    monkeypatch.setenv(setting, "not-ours")
    get_settings.cache_clear()
    providers.get_providers.cache_clear()
    context.get_context.cache_clear()
    answer = pay(session_id)
    # Then it is this service's set-up, not the merchant's: 503, and no payment is left in flight
    assert answer.status == 503, answer.body
    [failed] = get(session_id)["transactions"]
    assert (failed["status"], failed["failureCode"]) == ("FAILED", "provider_configuration")


# -- a shopper sent to authenticate (3-D Secure: RedirectShopper, then /payments/details) --------------

THREE_DS_CARD = {**CARD, "number": "4212345678910006"}


def shopper_answers(next_action_url: str, outcome: str) -> str:
    """The shopper on the local Adyen's issuer page; the redirectResult it sends them back with."""
    request = urllib.request.Request(  # noqa: S310 - the local Adyen on loopback
        next_action_url, data=f"outcome={outcome}".encode(), method="POST"
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(request, timeout=10)
    except urllib.error.HTTPError as answer:
        assert answer.code == 303
        location = answer.headers["Location"]
    return str(urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["redirectResult"][0])


def test_a_redirect_result_of_another_payment_does_not_complete_this_one(adyen: AdyenServer) -> None:
    first = pay(create_session(currency="EUR")["sessionId"], THREE_DS_CARD).json()
    second = pay(create_session(currency="EUR")["sessionId"], THREE_DS_CARD).json()
    assert first["nextAction"] and second["nextAction"]
    second_result = shopper_answers(second["nextAction"]["url"], "authenticated")
    provider = context.get_context().providers.get("adyen")
    assert provider is not None
    # The second payment's result, brought back on the first's return, is not taken for the first's
    taken = provider.complete_return(
        first["providerReference"], first["transactionId"], {"redirectResult": second_result}
    )
    assert taken is None
    # On its own attempt it completes
    own = provider.complete_return(
        second["providerReference"], second["transactionId"], {"redirectResult": second_result}
    )
    assert own is not None and own.status.value == "AUTHORIZED"


def test_expiry_asks_adyen_once_to_cancel_a_payment_waiting_for_the_shopper(
    aws: Any, adyen: AdyenServer
) -> None:
    session_id = create_session(currency="EUR")["sessionId"]
    waiting = pay(session_id, THREE_DS_CARD).json()
    assert waiting["status"] == "PROCESSING" and waiting["nextAction"]
    move_expiry_to_the_past(aws, session_id)
    # The sweep asks Adyen to cancel it (Adyen answers later): requested, and not asked again
    sweep(context.get_context(), lambda: 60_000)
    [requested] = get(session_id)["transactions"]
    assert requested["cancelRequestedAt"] and requested["status"] == "PROCESSING"
    sweep(context.get_context(), lambda: 60_000)
    cancellation = one(adyen, "CANCELLATION", waiting["transactionId"])
    assert len(notifications(adyen, "CANCELLATION", waiting["transactionId"])) == 1
    # Adyen's CANCELLATION ends the payment, and with it the session: EXPIRED
    assert deliver(cancellation).status == 200
    read = get(session_id)
    assert read["status"] == "EXPIRED" and read["transactions"][0]["status"] == "CANCELLED"


def test_expiry_does_not_ask_again_when_adyen_refused_to_cancel_a_payment_waiting_for_the_shopper(
    aws: Any, adyen: AdyenServer
) -> None:
    session_id = create_session(currency="EUR")["sessionId"]
    waiting = pay(session_id, THREE_DS_CARD).json()
    control(adyen, "fail-cancels", {"count": 1})
    # Its cancel asked before expiry (the shopper chose another way to pay, say)
    ctx = context.get_context()
    cancel_waiting_payments(ctx, ctx.repository.get_session(session_id) or {}, "customer")
    # Adyen reports the cancel failed: the payment is left to end on its own
    assert deliver(one(adyen, "CANCELLATION", waiting["transactionId"])).status == 200
    [refused] = get(session_id)["transactions"]
    assert refused["cancelRequestedAt"] is None and refused["status"] == "PROCESSING"
    # Expiry does not ask Adyen again, and the session leaves the expiry index (no run re-reads it)
    move_expiry_to_the_past(aws, session_id)
    sweep(context.get_context(), lambda: 60_000)
    sweep(context.get_context(), lambda: 60_000)
    assert len(notifications(adyen, "CANCELLATION", waiting["transactionId"])) == 1
    session_item = aws.dynamodb.get_item(
        TableName=aws.table_name, Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}}
    )["Item"]
    assert "openShard" not in session_item
