"""Expiry against the running runtime: its scheduled sweep (every half second here) races cancels and
payment attempts fired over HTTP around each session's expiresAt. Every session ends in one state with
one terminal event, and the answer each request got agrees with it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import launch, stop_and_check
from tests.e2e.helpers import Answer, Api
from tests.support import wait_until

SESSIONS = 8
TERMINAL_EVENTS = ("session.cancelled", "session.expired", "session.completed")


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    running = launch({"SESSION_TTL_MIN_SECONDS": "2", "SWEEP_INTERVAL_SECONDS": "0.5"})
    yield Api(running.base_url, "sk_test_demo")
    stop_and_check(running)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def fire_around_expiry(sessions: list[dict[str, Any]], shot: Callable[[str], Answer]) -> list[Answer]:
    """One request per session, at moments spread from 0.6 s before to 0.6 s after its expiresAt."""
    answers: list[Answer | None] = [None] * len(sessions)

    def run(index: int, session: dict[str, Any]) -> None:
        offset = -0.6 + 1.2 * index / max(1, len(sessions) - 1)
        delay = epoch(session["expiresAt"]) + offset - time.time()
        if delay > 0:
            time.sleep(delay)  # aims the request at the expiry moment; the outcome is read, not waited for
        answers[index] = shot(session["sessionId"])

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def terminal_events(api: Api, session_id: str) -> list[dict[str, Any]]:
    timeline = api.events(session_id)
    assert [event["sequence"] for event in timeline] == list(range(1, len(timeline) + 1))
    return [event for event in timeline if event["type"] in TERMINAL_EVENTS]


def persisted(api: Api, session_id: str) -> list[dict[str, Any]]:
    return wait_until(lambda: terminal_events(api, session_id), what=f"a terminal event for {session_id}")


def test_cancels_racing_the_sweep(api: Api) -> None:
    sessions = [api.open_session(expiresInSeconds=2) for _ in range(SESSIONS)]
    answers = fire_around_expiry(sessions, lambda session_id: api.cancel(session_id))
    outcomes = set()
    for session, answer in zip(sessions, answers, strict=True):
        session_id = session["sessionId"]
        events = persisted(api, session_id)
        assert len(events) == 1, events
        if answer.status == 200:
            assert events[0]["type"] == "session.cancelled"
            assert epoch(answer.body["cancellation"]["requestedAt"]) < epoch(session["expiresAt"])
            assert api.get(session_id)["status"] == "CANCELLED"
        else:
            assert (answer.status, answer.error["code"]) == (409, "session_expired"), answer
            assert events[0]["type"] == "session.expired" and events[0]["actor"] == "scheduler"
            assert api.get(session_id)["status"] == "EXPIRED"
        outcomes.add(answer.status)
    assert outcomes <= {200, 409}


def test_payment_attempts_racing_the_sweep(api: Api) -> None:
    sessions = [api.open_session(expiresInSeconds=2) for _ in range(SESSIONS)]
    answers = fire_around_expiry(
        sessions, lambda session_id: api.create_transaction(session_id, "sandbox_bank_transfer")
    )
    for session, answer in zip(sessions, answers, strict=True):
        session_id = session["sessionId"]
        if answer.status == 201:
            # The payment landed before expiry: it is never cut off; the session waits for it.
            assert epoch(answer.body["createdAt"]) < epoch(session["expiresAt"])
            wait_until(
                lambda sid=session_id: time.time() > epoch(api.get(sid)["expiresAt"]) + 1, what="expiry"
            )
            assert api.get(session_id)["status"] == "OPEN"
            assert (
                api.provider_event("sandbox_bank_transfer", answer.body["transactionId"], "FAILED").status
                == 200
            )
            events = persisted(api, session_id)
            assert [(e["type"], e["actor"]) for e in events] == [
                ("session.expired", "provider:sandbox_bank_transfer")
            ]
        else:
            assert (answer.status, answer.error["code"]) == (409, "session_expired"), answer
            events = persisted(api, session_id)
            assert [(e["type"], e["actor"]) for e in events] == [("session.expired", "scheduler")]
            assert api.get(session_id)["transactions"] == []
