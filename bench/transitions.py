"""State transitions of one pending cancellation whose transaction ends after 24 h, at a scaled clock.

The CancellationFinaliser runs in moto's Step Functions engine with CancellationRecheckSeconds = 1, so
one second stands for the one hour of CANCELLATION_RECHECK_SECONDS=3600. The session is seeded through
the real handlers (create, a sandbox_bank_transfer transaction, cancel, which starts the execution); the
transaction stays in flight for 24 rechecks, then the real provider-event handler settles it.
"""

from __future__ import annotations

import os
from typing import Any

from bench import harness
from tests.support import wait_until

RECHECKS = 24
HOURS_PER_DAY = 24
POLLING_PER_MINUTE_PER_DAY = 2 * 60 * HOURS_PER_DAY  # a Wait + a check every minute: 2 transitions
ROLE_ARN = "arn:aws:iam::123456789012:role/cancellation-finaliser"
METHOD = (
    "moto Step Functions engine running the template's CancellationFinaliser with "
    "CancellationRecheckSeconds=1 (1 s stands for 1 h); one PENDING_CANCELLATION session seeded through "
    "the real handlers (create, sandbox_bank_transfer transaction, cancel); the transaction stays in "
    "flight for {rechecks} rechecks, then the real provider-event handler settles it; counted: "
    "*StateEntered history events (Map iterations included), which AWS bills one transition each, plus "
    "retries (TaskScheduled events beyond one per TaskStateEntered)"
)


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _entered(history: list[dict[str, Any]], name: str) -> int:
    return sum(1 for event in history if event.get("stateEnteredEventDetails", {}).get("name") == name)


def count(history: list[dict[str, Any]]) -> dict[str, int]:
    entered = sum(1 for event in history if event["type"].endswith("StateEntered"))
    task_entered = sum(1 for event in history if event["type"] == "TaskStateEntered")
    scheduled = sum(1 for event in history if event["type"] == "TaskScheduled")
    retries = max(0, scheduled - task_entered)
    return {"entered": entered, "retries": retries, "transitions": entered + retries}


def measure(recheck_seconds: int = 1, rechecks: int = RECHECKS) -> dict[str, Any]:
    from moto import mock_aws

    from local import cfn

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        harness.reset_caches()
        harness.create_tables()
        from checkout_core import aws

        sfn = aws.client("stepfunctions")
        definition = cfn.state_machine_definition(
            "CancellationFinaliser",
            cfn.Resolver(refs={"SessionsTable": os.environ["TABLE_NAME"]}),
            parameter_overrides={"CancellationRecheckSeconds": str(recheck_seconds)},
        )
        arn = sfn.create_state_machine(
            name="CancellationFinaliser", definition=definition, roleArn=ROLE_ARN, type="STANDARD"
        )["stateMachineArn"]
        previous = os.environ.get("STATE_MACHINE_ARN")
        os.environ["STATE_MACHINE_ARN"] = arn
        harness.reset_caches()
        try:
            session_id = harness.create_session()
            transaction_id = harness.create_transaction(session_id, "sandbox_bank_transfer")
            cancelled = harness.cancel_session(session_id)
            if cancelled["status"] != "PENDING_CANCELLATION":
                raise AssertionError(f"expected PENDING_CANCELLATION, got {cancelled}")
            execution_arn = arn.replace(":stateMachine:", ":execution:") + f":cancel-{session_id}"
            timeout = rechecks * recheck_seconds * 4 + 30
            wait_until(
                lambda: _entered(_history(sfn, execution_arn), "RecheckTransaction") >= rechecks,
                timeout,
                f"{rechecks} rechecks",
            )
            # The wait after the last recheck has stored its token: the provider event releases it.
            wait_until(
                lambda: _entered(_history(sfn, execution_arn), "StoreTaskTokenAndWait") > rechecks,
                30,
                "the wait after the last recheck",
            )
            harness.send_provider_event("sandbox_bank_transfer", transaction_id, "SETTLED")
            described = wait_until(
                lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
                    sfn.describe_execution(executionArn=execution_arn)
                ),
                60,
                "the execution to end",
            )
            history = _history(sfn, execution_arn)
            session = harness.get_session(session_id)
        finally:
            if previous is None:
                os.environ.pop("STATE_MACHINE_ARN", None)
            else:
                os.environ["STATE_MACHINE_ARN"] = previous
            harness.reset_caches()
    if described["status"] != "SUCCEEDED" or session["status"] != "CANCELLED":
        raise AssertionError(f"execution {described['status']}, session {session['status']}")
    counted = count(history)
    return {
        **counted,
        "method": METHOD.format(rechecks=rechecks),
        "rechecks": _entered(history, "RecheckTransaction"),
        "callback_waits": _entered(history, "StoreTaskTokenAndWait"),
        "history_events": len(history),
        "by_state": _by_state(history),
    }


def _by_state(history: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in history:
        name = event.get("stateEnteredEventDetails", {}).get("name")
        if name:
            counts[name] = counts.get(name, 0) + 1
    return counts
