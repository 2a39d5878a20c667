"""The `stripe` provider's cancel: DynamoDB calls and wall time with 1, 5 and 25 authorised Stripe
payments on one session, through the real handlers, against moto and the local Stripe emulator.

The provider calls are made concurrently, so 25 cost about what one does: the goal is a ratio of wall
times (25 / 1) of at most 2, and DynamoDB calls that do not grow with the number of payments."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench import harness
from bench.ddb_calls import K_VALUES, _counted, _expect

RUNS = 5
STRIPE_LATENCY_MS = 150  # a typical round trip to Stripe's API; the emulator adds it to every answer


def _authorised_attempt(session_id: str) -> str:
    event = harness.api_event(
        "POST",
        "/v1/sessions/{sessionId}/transactions",
        f"/v1/sessions/{session_id}/transactions",
        {"sessionId": session_id},
        body={"provider": "stripe", "paymentMethod": "pm_card_visa", "captureMethod": "MANUAL"},
    )
    answer = harness.body_of(harness.invoke("create_transaction", event), 201)
    _expect(answer["status"], "AUTHORIZED", "a manual-capture Stripe payment")
    return str(answer["transactionId"])


def measure(runs: int = RUNS) -> dict[str, Any]:
    with_latency = _measure(runs, STRIPE_LATENCY_MS)
    instant = _measure(runs, 0)
    return {
        "ddb_calls_cancel_k": with_latency["calls"],
        "stripe_latency_ms": STRIPE_LATENCY_MS,
        "cancel_wall_ms_k": with_latency["wall_ms"],
        "provider_wall_ratio_25_vs_1": with_latency["ratio"],
        "instant_emulator": {"cancel_wall_ms_k": instant["wall_ms"], "wall_ratio_25_vs_1": instant["ratio"]},
    }


def _measure(runs: int, latency_ms: int) -> dict[str, Any]:
    from moto import mock_aws

    from local.runtime import DROPPED_WEBHOOKS_URL
    from local.stripe_emulator import LocalStripe

    os.environ["LOCAL_STRIPE_LATENCY_MS"] = str(latency_ms)
    emulator = LocalStripe(DROPPED_WEBHOOKS_URL, "whsec_bench")
    saved = {name: os.environ.get(name) for name in ("STRIPE_API_KEY", "STRIPE_API_BASE")}
    os.environ.update(STRIPE_API_KEY=LocalStripe.API_KEY, STRIPE_API_BASE=emulator.api_base)
    try:
        with mock_aws():
            harness.reset_caches()
            harness.create_tables()
            calls: dict[str, int] = {}
            wall_ms: dict[str, float] = {}
            for k in K_VALUES:
                timings: list[float] = []
                for run in range(runs):
                    session_id = harness.create_session()
                    for _ in range(k):
                        _authorised_attempt(session_id)
                    answers: list[dict[str, Any]] = []
                    started = time.perf_counter()
                    count, _ = _counted(
                        lambda session_id=session_id, answers=answers: answers.append(
                            harness.cancel_session(session_id)
                        )
                    )
                    timings.append((time.perf_counter() - started) * 1000)
                    _expect(answers[-1]["status"], "CANCELLED", f"cancel of {k} Stripe payments")
                    _expect(len(answers[-1]["cancelledTransactionIds"]), k, "payments cancelled at Stripe")
                    if run == 0:
                        calls[str(k)] = count
                wall_ms[str(k)] = statistics.median(timings)
    finally:
        emulator.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        harness.reset_caches()
        os.environ.pop("LOCAL_STRIPE_LATENCY_MS", None)
    return {
        "calls": calls,
        "wall_ms": {k: round(v, 1) for k, v in wall_ms.items()},
        "ratio": round(wall_ms["25"] / wall_ms["1"], 2),
    }
