"""The `adyen` provider, which answers a cancel later: DynamoDB calls of a cancel with 1, 5 and 25 authorised
Adyen payments on one session, and of one Adyen notification item applied, through the real handlers,
against moto and the local Adyen (in process, its notifications kept for the bench to deliver); and the
requests, answers and notifications the local Adyen's OpenAPI check refused meanwhile.

`python -m bench.adyen` runs this section alone and prints its measures."""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from typing import Any

from bench import harness
from bench.ddb_calls import K_VALUES, _counted, _expect

MERCHANT = "CheckoutSessionsBench"
API_KEY = "adyen_bench_key"
CARD = {
    "type": "scheme",
    "number": "4111111111111111",
    "expiryMonth": "03",
    "expiryYear": "2030",
    "cvc": "737",
    "holderName": "J. Smith",
}


def _authorised_attempt(session_id: str) -> dict[str, Any]:
    event = harness.api_event(
        "POST",
        "/v1/sessions/{sessionId}/transactions",
        f"/v1/sessions/{session_id}/transactions",
        {"sessionId": session_id},
        body={"provider": "adyen", "paymentMethod": CARD, "captureMethod": "MANUAL"},
    )
    answer = harness.body_of(harness.invoke("create_transaction", event), 201)
    _expect(answer["status"], "AUTHORIZED", "a manual-capture Adyen payment")
    return answer


def _notification_event(item: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
    return harness.api_event(
        "POST",
        "/v1/providers/{provider}/events",
        "/v1/providers/adyen/events",
        {"provider": "adyen"},
        body=body,
        authorizer=None,
    )


def measure() -> dict[str, Any]:
    from moto import mock_aws

    from local.adyen.platform import Settings
    from local.adyen.server import AdyenServer

    hmac_key = secrets.token_hex(32)
    server = AdyenServer(("127.0.0.1", 0), Settings(API_KEY, MERCHANT, hmac_key, None))
    server.serve_in_thread()
    environment = {
        "ADYEN_API_KEY": API_KEY,
        "ADYEN_MERCHANT_ACCOUNT": MERCHANT,
        "ADYEN_HMAC_KEY": hmac_key,
        "ADYEN_API_BASE": server.url,
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        with mock_aws():
            harness.reset_caches()
            harness.create_tables()
            cancel_calls: dict[str, int] = {}
            last: dict[str, Any] = {}
            last_session = ""
            for k in K_VALUES:
                session_id = harness.create_session()
                attempts = [_authorised_attempt(session_id) for _ in range(k)]
                answers: list[dict[str, Any]] = []
                cancel_calls[str(k)], _ = _counted(
                    lambda answers=answers, session_id=session_id: answers.append(
                        harness.cancel_session(session_id)
                    )
                )
                _expect(answers[-1]["status"], "PENDING_CANCELLATION", f"cancel of {k} Adyen payments")
                _expect(len(answers[-1]["pendingTransactionIds"]), k, "payments awaiting Adyen's answer")
                last, last_session = attempts[0], session_id
            item = _made(server, "CANCELLATION", last["transactionId"])
            responses: list[dict[str, Any]] = []
            notification_calls, detail = _counted(
                lambda: responses.append(harness.invoke("provider_events", _notification_event(item)))
            )
            _expect(
                (responses[-1]["statusCode"], responses[-1]["body"]), (200, "[accepted]"), "Adyen's answer"
            )
            session = harness.get_session(last_session)
            moved = [
                tx["status"] for tx in session["transactions"] if tx["transactionId"] == last["transactionId"]
            ]
            _expect(moved, ["CANCELLED"], "the notification's move")
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        harness.reset_caches()
    stats = server.adyen.stats()
    return {
        "ddb_calls_cancel_k": cancel_calls,
        "ddb_calls_notification": notification_calls,
        "notification_calls": detail,
        "emulator_spec_violations": int(stats["specViolations"]),
        "emulator_requests": int(stats["requests"]),
    }


def _made(server: Any, event_code: str, reference: str) -> dict[str, Any]:
    """The latest notification item of `event_code` the local Adyen made for our reference (its control
    route; not sent: the bench delivers it)."""
    with urllib.request.urlopen(f"{server.url}/_emulator/notifications", timeout=10) as answer:  # noqa: S310
        listed = json.loads(answer.read())
    entries = listed["notifications"] if isinstance(listed, dict) else listed
    items = [
        dict(entry["item"])
        for entry in entries
        if entry["eventCode"] == event_code and entry["item"]["merchantReference"] == reference
    ]
    if not items:
        raise AssertionError(f"the local Adyen made no {event_code} for {reference}")
    return items[-1]


if __name__ == "__main__":
    harness.prepare_environment()
    harness.silence_stdout()
    harness.say(json.dumps(measure(), indent=2))
    sys.exit(0)
