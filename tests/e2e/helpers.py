"""HTTP helpers for the race and fault tests: a small client for the API, a way to release several
requests at the same instant, and polling with a deadline for outcomes that arrive asynchronously."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from checkout_core.signatures import sign
from tests.support import wait_until

SANDBOX_SECRET = "whsec_sandbox"
IN_FLIGHT = {"PROCESSING", "AUTHORIZED"}
TERMINAL_TRANSACTION = {"SETTLED", "FAILED", "CANCELLED", "REFUNDED"}
REQUEST_TIMEOUT_SECONDS = 60


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str
    body: Any = field(default=None)

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and "error" in self.body, f"not an error body: {self.text!r}"
        return dict(self.body["error"])

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.text[:300]!r})"


class Api:
    """The API over real HTTP. Every call opens its own connection, so threads can share one instance."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    # -- transport ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        authorized: bool = True,
    ) -> Answer:
        sent = dict(headers or {})
        if authorized:
            sent.setdefault("Authorization", f"Bearer {self.api_key}")
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        response = requests.request(
            method, f"{self.base_url}{path}", data=data, headers=sent, timeout=REQUEST_TIMEOUT_SECONDS
        )
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        return Answer(response.status_code, dict(response.headers), response.text, parsed)

    # -- routes ------------------------------------------------------------------------------------

    def create_session(self, idempotency_key: str | None = None, **overrides: Any) -> Answer:
        body: dict[str, Any] = {
            "amount": 5000,
            "currency": "USD",
            "referenceId": f"order-{uuid.uuid4().hex[:12]}",
            "returnUrl": "https://example.com/return",
            **overrides,
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("POST", "/v1/sessions", body, headers)

    def open_session(self, **overrides: Any) -> dict[str, Any]:
        answer = self.create_session(**overrides)
        assert answer.status == 201, answer
        return dict(answer.body)

    def create_transaction(self, session_id: str, provider: str = "sandbox_card") -> Answer:
        return self.request("POST", f"/v1/sessions/{session_id}/transactions", {"provider": provider})

    def start_transaction(self, session_id: str, provider: str = "sandbox_card") -> dict[str, Any]:
        answer = self.create_transaction(session_id, provider)
        assert answer.status == 201, answer
        return dict(answer.body)

    def cancel(self, session_id: str, body: dict[str, Any] | None = None) -> Answer:
        return self.request("POST", f"/v1/sessions/{session_id}/cancel", body or {})

    def get(self, session_id: str) -> dict[str, Any]:
        answer = self.request("GET", f"/v1/sessions/{session_id}")
        assert answer.status == 200, answer
        return dict(answer.body)

    def events(self, session_id: str) -> list[dict[str, Any]]:
        answer = self.request("GET", f"/v1/sessions/{session_id}/events")
        assert answer.status == 200, answer
        return list(answer.body["data"])

    def provider_event(
        self,
        provider: str,
        transaction_id: str,
        status: str,
        event_id: str | None = None,
        secret: str = SANDBOX_SECRET,
    ) -> Answer:
        """A provider's webhook, signed as the provider signs it."""
        raw = json.dumps(
            {
                "eventId": event_id or f"evt_{uuid.uuid4().hex}",
                "transactionId": transaction_id,
                "status": status,
            }
        ).encode()
        signature = sign(secret, int(time.time()), raw)
        return self.request(
            "POST",
            f"/v1/providers/{provider}/events",
            raw=raw,
            headers={"Provider-Signature": signature},
            authorized=False,
        )


# -- concurrency ---------------------------------------------------------------------------------------


def run_together(calls: Sequence[Callable[[], Any]], timeout: float = 90.0) -> list[Any]:
    """Runs every call on its own thread, all released by one barrier; returns the results in order.

    An exception raised by a call is re-raised here (the first one, in call order)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    failures: list[BaseException | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            results[index] = call()
        except BaseException as exc:
            failures[index] = exc

    threads = [
        threading.Thread(target=run, args=(index, call), name=f"race-{index}", daemon=True)
        for index, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), f"{thread.name} did not finish within {timeout}s"
    for failure in failures:
        if failure is not None:
            raise failure
    return results


def wait_for_status(api: Api, session_id: str, wanted: str, timeout: float = 30.0) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        seen.update(api.get(session_id))
        return dict(seen) if seen["status"] == wanted else None

    try:
        return dict(wait_until(reached, timeout, f"session {session_id} to be {wanted}"))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {json.dumps(seen, indent=1)}") from None


# -- invariants ----------------------------------------------------------------------------------------


def assert_error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer
    error = answer.error
    assert error["code"] == code, answer
    assert set(error) >= {"code", "message", "param", "requestId"}, answer
    return error


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == event_type]


def assert_timeline(events: list[dict[str, Any]], session_id: str) -> None:
    """Sequences 1..n without gaps, one session, unique event ids, created first."""
    assert [event["sequence"] for event in events] == list(range(1, len(events) + 1)), [
        (event["sequence"], event["type"]) for event in events
    ]
    assert {event["sessionId"] for event in events} == {session_id}
    assert len({event["eventId"] for event in events}) == len(events)
    assert events and events[0]["type"] == "session.created"


def assert_consistent_with_timeline(session: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """The session's transactions and terminal status agree with what its timeline recorded."""
    created = {event["data"]["transactionId"] for event in of_type(events, "transaction.created")}
    assert created == {tx["transactionId"] for tx in session["transactions"]}
    for tx in session["transactions"]:
        moves = [
            event["data"] if event["type"] == "transaction.updated" else {"from": "SETTLED", "to": "REFUNDED"}
            for event in events
            if event["type"] in ("transaction.updated", "transaction.refunded")
            and event["data"]["transactionId"] == tx["transactionId"]
        ]
        # Every move starts where the previous one ended, and the last one is where the transaction is.
        state = "PROCESSING"
        for move in moves:
            assert move["from"] == state, (tx, moves)
            state = move["to"]
        assert state == tx["status"], (tx, moves)
    final_types = {
        "COMPLETED": "session.completed",
        "CANCELLED": "session.cancelled",
        "EXPIRED": "session.expired",
    }
    for status, event_type in final_types.items():
        expected = 1 if session["status"] == status else 0
        assert len(of_type(events, event_type)) == expected, (session["status"], [e["type"] for e in events])
    if session["status"] in ("CANCELLED", "EXPIRED"):
        assert not [tx for tx in session["transactions"] if tx["status"] in IN_FLIGHT], session


def retry_while_unavailable(answer: Answer, again: Callable[[], Answer], attempts: int = 5) -> Answer:
    """What a client does with 503 service_unavailable: waits Retry-After seconds, then asks again."""
    for _ in range(attempts):
        if answer.status != 503:
            return answer
        assert_error(answer, 503, "service_unavailable")
        time.sleep(float(answer.header("Retry-After") or 1))
        answer = again()
    return answer
