"""DynamoDB API calls made while handling one request, through the real handlers, against moto.

Counted with a botocore `before-call.dynamodb.*` hook on the cached client the domain code uses
(checkout_core.aws.client("dynamodb")); no Idempotency-Key, the authorizer's answer put in the event.
"""

from __future__ import annotations

from typing import Any

from bench import harness

K_VALUES = (1, 5, 25)


def _counted(action: Any) -> tuple[int, dict[str, int]]:
    with harness.counting(harness.domain_dynamodb()) as counter:
        action()
    if counter.errors:
        raise AssertionError(f"DynamoDB calls failed: {dict(counter.errors)}")
    return counter.total, dict(counter.calls)


def measure() -> dict[str, Any]:
    from moto import mock_aws

    with mock_aws():
        harness.reset_caches()
        harness.create_tables()
        counts: dict[str, Any] = {}
        detail: dict[str, dict[str, int]] = {}
        created: list[str] = []

        counts["create"], detail["create"] = _counted(lambda: created.append(harness.create_session()))
        session_id = created[0]
        counts["get"], detail["get"] = _counted(lambda: harness.get_session(session_id))

        answers: list[dict[str, Any]] = []
        counts["cancel_no_tx"], detail["cancel_no_tx"] = _counted(
            lambda: answers.append(harness.cancel_session(session_id))
        )
        _expect(answers[-1]["status"], "CANCELLED", "cancel with no transaction")

        counts["cancel_k_tx"] = {}
        for k in K_VALUES:
            session_id = harness.create_session()
            for _ in range(k):
                harness.create_transaction(session_id, "sandbox_card")
            key = f"cancel_{k}_tx"
            counts["cancel_k_tx"][str(k)], detail[key] = _counted(
                lambda session_id=session_id: answers.append(harness.cancel_session(session_id))
            )
            _expect(answers[-1]["status"], "CANCELLED", key)
            _expect(len(answers[-1]["cancelledTransactionIds"]), k, f"{key}: transactions cancelled")

        session_id = harness.create_session()
        transaction_id = harness.create_transaction(session_id, "sandbox_card")
        acks: list[dict[str, Any]] = []
        counts["provider_event"], detail["provider_event"] = _counted(
            lambda: acks.append(harness.send_provider_event("sandbox_card", transaction_id, "SETTLED"))
        )
        _expect(acks[-1].get("applied"), True, "provider event applied")
        _expect(harness.get_session(session_id)["status"], "COMPLETED", "session after the settlement")
    return {"counts": counts, "detail": detail}


def _expect(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")
