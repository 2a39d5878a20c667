"""`make run` starts a local Adyen beside the runtime, sends its notifications to the runtime's own Adyen route,
and stops it with the runtime; every e2e runtime's stop fails the test if the local Adyen met a request, answer
or notification Adyen's OpenAPI documents refuse."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from Adyen import AdyenClient
from Adyen.services.checkout import AdyenCheckoutApi

from local.adyen.process import LocalAdyen
from tests.e2e.conftest import assert_local_adyen_saw_no_spec_violation

pytestmark = pytest.mark.e2e
DEADLINE_SECONDS = 20.0


def emulator_get(adyen_url: str, route: str) -> Any:
    with urllib.request.urlopen(f"{adyen_url}/_emulator/{route}", timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


def test_the_runtime_starts_a_local_adyen_notifying_it_and_stops_it(start_runtime) -> None:
    runtime = start_runtime(ADYEN_NOTIFICATION_DELAY_SECONDS="0.1")
    adyen_url = runtime.adyen_url
    checkout = AdyenCheckoutApi(
        client=AdyenClient(xapikey=LocalAdyen.API_KEY, platform="test", http_force="urllib", http_timeout=10)
    )
    checkout.payments_api.baseUrl = f"{adyen_url}/v71"

    payment = checkout.payments_api.payments(
        {
            "amount": {"currency": "EUR", "value": 990},
            "merchantAccount": LocalAdyen.MERCHANT_ACCOUNT,
            "reference": "tx_not_ours",  # a payment the service never made: accepted and ignored
            "paymentMethod": {
                "type": "scheme",
                "number": "4111111111111111",
                "expiryMonth": "03",
                "expiryYear": "2030",
                "cvc": "737",
                "holderName": "J. Smith",
            },
            "returnUrl": f"{runtime.base_url}/pay/unknown/return",
        }
    ).message

    assert payment["resultCode"] == "Authorised"
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        (notification,) = emulator_get(adyen_url, "notifications")["notifications"]
        if notification["state"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (notification["eventCode"], notification["state"]) == ("AUTHORISATION", "sent"), notification
    assert emulator_get(adyen_url, "stats")["specViolations"] == 0
    assert_local_adyen_saw_no_spec_violation(runtime)

    refused = urllib.request.Request(  # noqa: S310 - what no SDK would send: a body Adyen's document refuses
        f"{adyen_url}/v71/payments/{payment['pspReference']}/cancels",
        data=json.dumps({"merchantAccount": LocalAdyen.MERCHANT_ACCOUNT, "cancellationReason": "x"}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": LocalAdyen.API_KEY},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(refused, timeout=10)  # noqa: S310
    assert answer.value.code == 422
    with pytest.raises(AssertionError, match="cancellationReason"):
        assert_local_adyen_saw_no_spec_violation(runtime)  # what every e2e runtime's stop checks

    assert runtime.stop() == 0
    with pytest.raises(urllib.error.URLError):
        emulator_get(adyen_url, "stats")
