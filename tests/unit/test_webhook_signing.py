"""Standard Webhooks signatures, verified by the `standardwebhooks` library (an independent verifier),
and the delivery schedule of contract §7."""

from __future__ import annotations

import json
import random
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from checkout_core.webhooks import schedule, signing
from checkout_core.webhooks.schedule import Outcome

BODY = json.dumps({"eventId": "01a23812-6315-7872-993a-f7667927cb99", "type": "session.cancelled"})


def test_a_signed_attempt_verifies_with_the_standard_library() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, old], "msg_2", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp"])
def test_a_changed_attempt_does_not_verify(tamper: str) -> None:
    secret = signing.new_secret()
    now = int(time.time())
    headers = signing.headers([secret], "msg_3", now, BODY)
    body = BODY.replace("cancelled", "completed") if tamper == "body" else BODY
    if tamper == "id":
        headers["webhook-id"] = "msg_4"
    if tamper == "timestamp":
        headers["webhook-timestamp"] = str(now - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_secrets_are_32_random_bytes_and_refused_without_their_prefix() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(Webhook(secret)._whsecret) == 32
    assert signing.new_secret() != secret
    with pytest.raises(ValueError):
        signing.signature(secret.removeprefix("whsec_"), "msg", 1, BODY)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCEEDED),
        (204, Outcome.SUCCEEDED),
        (301, Outcome.FAILED),
        (410, Outcome.GONE),
        (500, Outcome.FAILED),
        (None, Outcome.FAILED),
    ],
)
def test_only_a_2xx_succeeds_and_410_is_gone(status: int | None, outcome: Outcome) -> None:
    assert schedule.outcome_of(status) is outcome


def test_ten_attempts_over_about_three_days_with_twenty_percent_jitter() -> None:
    rng = random.Random(7)
    delays = [schedule.retry_delay(attempt, rng=rng) for attempt in range(1, schedule.MAX_ATTEMPTS)]
    for delay, base in zip(delays, schedule.RETRY_DELAYS_SECONDS, strict=True):
        assert delay is not None and abs(delay - base) <= base * 0.2 + 1
    assert schedule.retry_delay(schedule.MAX_ATTEMPTS) is None  # the tenth failed: EXHAUSTED
    # The contract's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 12 h, 12 h (51.6 h of waiting)
    assert schedule.RETRY_DELAYS_SECONDS == (5, 300, 1800, 7200, 18000, 36000, 36000, 43200, 43200)


def test_retry_after_is_honoured_when_longer_than_the_schedule_and_only_for_429_and_503() -> None:
    rng = random.Random(1)
    assert schedule.retry_delay(1, 429, "120", rng) == 120  # the schedule says ~5 s
    assert schedule.retry_delay(1, 503, "120", rng) == 120
    assert schedule.retry_delay(1, 500, "120", rng) <= 6  # Retry-After only counts with 429/503
    assert schedule.retry_delay(3, 429, "2", rng) >= 1800 * 0.8  # shorter than the schedule: the schedule
    assert schedule.retry_delay(1, 429, "999999", rng) == schedule.MAX_RETRY_AFTER_SECONDS
    assert schedule.retry_delay(1, 503, "Wed, 21 Oct 2026 07:28:00 GMT", rng) <= 6


def test_an_endpoint_failing_for_five_days_is_disabled() -> None:
    day = 24 * 3600
    assert not schedule.should_disable_failing(None, 10 * day)
    assert not schedule.should_disable_failing(0, 5 * day - 1)
    assert schedule.should_disable_failing(0, 5 * day)
