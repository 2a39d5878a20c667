"""When a delivery is tried again, and when it and its endpoint give up.

Retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 12 h, 12 h, each ±20 %: ten attempts over two to
three days (51.6 h of waiting, more with Retry-After), then EXHAUSTED. A 429 or 503 with Retry-After
waits that long when it is longer. 410 Gone disables the endpoint at once; an endpoint whose every
delivery has failed for five days is disabled."""

from __future__ import annotations

import random
from enum import StrEnum

RETRY_DELAYS_SECONDS = (5, 300, 1800, 7200, 18000, 36000, 36000, 43200, 43200)
MAX_ATTEMPTS = len(RETRY_DELAYS_SECONDS) + 1
JITTER = 0.2
FAILING_DISABLE_SECONDS = 5 * 24 * 3600
MAX_RETRY_AFTER_SECONDS = 12 * 3600  # a message's visibility can be pushed back at most 12 h


class Outcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # tried again on the schedule
    GONE = "GONE"  # 410: the endpoint is disabled at once


def outcome_of(status: int | None) -> Outcome:
    """A 2xx succeeds; anything else, a redirect or no answer (None) included, fails."""
    if status is not None and 200 <= status < 300:
        return Outcome.SUCCEEDED
    if status == 410:
        return Outcome.GONE
    return Outcome.FAILED


def retry_delay(
    attempts_made: int,
    status: int | None = None,
    retry_after: str | None = None,
    rng: random.Random | None = None,
) -> int | None:
    """Seconds before the next attempt after `attempts_made` failed ones; None: no more (EXHAUSTED)."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS_SECONDS[attempts_made - 1]
    jittered = base * (1 + (rng or random.SystemRandom()).uniform(-JITTER, JITTER))
    asked = _seconds(retry_after) if status in (429, 503) else None
    delay = max(jittered, asked) if asked is not None else jittered
    return max(1, round(min(delay, MAX_RETRY_AFTER_SECONDS)))


def _seconds(retry_after: str | None) -> int | None:
    """Retry-After in delta-seconds; an HTTP date or garbage is ignored (the schedule stands)."""
    if retry_after is None or not retry_after.strip().isdigit():
        return None
    return int(retry_after.strip())


def should_disable_failing(first_failure_at: int | None, now: int) -> bool:
    """True when every delivery to the endpoint has failed since `first_failure_at`, five days or more."""
    return first_failure_at is not None and now - first_failure_at >= FAILING_DISABLE_SECONDS
