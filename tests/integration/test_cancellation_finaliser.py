"""The CancellationFinaliser state machine, run for real in moto's Step Functions engine.

The definition is statemachines/cancellation_finaliser.asl.json with the template's substitutions; the
table is built from template.yaml. Nothing is mocked inside the workflow: its DynamoDB calls hit moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.integration.finaliser_support import (
    Finaliser,
    ProviderPath,
    SeededTransaction,
    event_sk,
    new_id,
    now_iso,
    wait_until,
)

# A recheck interval long enough that a test finishing well inside it proves the callback did the work.
NO_RECHECK = "30"
FAST_RECHECK = "1"

RECHECK_CYCLE = ["RecheckTransaction", "IsStillInFlight", "StoreTaskTokenAndWait"]

# The seeded cancellation's reasons: the workflow's session.cancelled repeats them, as the API's does.
SEEDED_REASONS = {
    "reason": {"S": "customer changed their mind"},
    "reasonType": {"S": "CUSTOMER_REQUESTED"},
    "referenceId": {"NULL": True},
}


def _finaliser(recheck_seconds: str) -> Iterator[Finaliser]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        finaliser = Finaliser(
            boto3.client("dynamodb", region_name="us-east-1"),
            boto3.client("stepfunctions", region_name="us-east-1"),
            recheck_seconds=recheck_seconds,
        )
        yield finaliser
        # No execution may outlive the mock: stop whatever a failed test left waiting.
        for execution in finaliser.sfn.list_executions(
            stateMachineArn=finaliser.state_machine_arn, statusFilter="RUNNING"
        )["executions"]:
            finaliser.sfn.stop_execution(executionArn=execution["executionArn"])


@pytest.fixture
def callbacks_only() -> Iterator[Finaliser]:
    yield from _finaliser(NO_RECHECK)


@pytest.fixture
def fast_recheck() -> Iterator[Finaliser]:
    yield from _finaliser(FAST_RECHECK)


def _types(timeline: list[dict[str, Any]]) -> list[str]:
    return [event["type"]["S"] for event in timeline]


def _assert_gapless(finaliser: Finaliser, session_id: str) -> list[dict[str, Any]]:
    timeline = finaliser.timeline(session_id)
    sequences = [int(event["sequence"]["N"]) for event in timeline]
    assert sequences == list(range(1, len(timeline) + 1))
    assert [event["sk"]["S"] for event in timeline] == [event_sk(n) for n in sequences]
    assert int(finaliser.session(session_id)["seq"]["N"]) == len(timeline)
    return timeline


def _assert_cancelled(finaliser: Finaliser, session_id: str, final_event_id: str) -> dict[str, Any]:
    session = finaliser.session(session_id)
    assert session["status"]["S"] == "CANCELLED"
    assert session["inFlight"]["N"] == "0"
    assert "S" in session["cancelledAt"]
    assert session["cancellation"]["M"]["finalizedAt"] == {"S": session["cancelledAt"]["S"]}
    assert session["cancellation"]["M"]["pendingTransactionIds"] == {"L": []}
    assert "pendingShard" not in session
    assert "recheckAt" not in session
    assert "pendingTenant" not in session and "attentionTenant" not in session
    timeline = _assert_gapless(finaliser, session_id)
    last = timeline[-1]
    assert last["type"]["S"] == "session.cancelled"
    assert last["eventId"]["S"] == final_event_id
    assert last["actor"]["S"] == "workflow"
    assert last["entity"]["S"] == "EVENT"
    assert last["sessionId"]["S"] == session_id
    assert last["occurredAt"] == session["cancelledAt"]
    assert _types(timeline).count("session.cancelled") == 1
    return last


def _count(entered: list[str], name: str) -> int:
    return sum(1 for state in entered if state == name)


def test_all_callbacks_arrive_then_the_session_is_cancelled(callbacks_only: Finaliser) -> None:
    # Given a session waiting on two transactions the provider cannot cancel
    tx_a, tx_b, cancelled = new_id(), new_id(), new_id()
    finalize_by = now_iso(3600)
    session_id = callbacks_only.seed_pending_cancellation(
        [
            SeededTransaction(tx_a, "PROCESSING"),
            SeededTransaction(tx_b, "AUTHORIZED"),
            SeededTransaction(cancelled, "CANCELLED", provider="sandbox_card"),
        ],
        finalize_by,
    )
    seq_before = int(callbacks_only.session(session_id)["seq"]["N"])
    version_before = int(callbacks_only.session(session_id)["version"]["N"])
    level = callbacks_only.session(session_id)["pendingLevel"]["S"]
    assert callbacks_only.level(level) == 1
    final_event_id = new_id()
    execution = callbacks_only.start(session_id, [tx_a, tx_b], finalize_by, final_event_id=final_event_id)

    # When both end at the provider and their callbacks arrive
    provider = ProviderPath(callbacks_only)
    callbacks_only.wait_for_token(tx_a)
    callbacks_only.wait_for_token(tx_b)
    provider.move(tx_a, "FAILED")
    assert callbacks_only.status(execution) == "RUNNING"
    provider.move(tx_b, "CANCELLED")

    # Then the workflow finalises at once, without any recheck
    assert callbacks_only.wait_for_end(execution, timeout=10)["status"] == "SUCCEEDED"
    final = _assert_cancelled(callbacks_only, session_id, final_event_id)
    assert final["sequence"]["N"] == str(seq_before + 3)
    assert final["data"]["M"] == {
        **SEEDED_REASONS,
        "refundRequired": {"BOOL": False},
        "settledTransactionIds": {"L": []},
    }
    session = callbacks_only.session(session_id)
    assert int(session["version"]["N"]) == version_before + 3
    assert _types(callbacks_only.timeline(session_id))[-3:] == [
        "transaction.updated",
        "transaction.updated",
        "session.cancelled",
    ]
    assert "taskToken" not in callbacks_only.transaction(tx_a)
    assert "taskToken" not in callbacks_only.transaction(tx_b)
    entered = callbacks_only.entered(execution)
    assert _count(entered, "RecheckTransaction") == 0
    assert entered[-2:] == ["Finalise", "Finalised"]
    # The final write counted the cancel in the session's own counter item, in the hour it happened
    assert _counted_cancels(callbacks_only, session["statsKey"]["S"], session["cancelledAt"]["S"]) == 1
    # and counted the session out of the pending-cancellation level it was counted in
    assert "pendingLevel" not in session
    assert callbacks_only.level(level) == 0


def _counted_cancels(finaliser: Finaliser, counter_key: str, at: str) -> int:
    item = finaliser.dynamodb.get_item(
        TableName=finaliser.table_name, Key={"pk": {"S": counter_key}, "sk": {"S": "HOUR#" + at[:13]}}
    ).get("Item")
    assert item is None or "ttl" in item
    return int(item["cancelled"]["N"]) if item else 0


def _finalise_without(finaliser: Finaliser, attribute: str) -> tuple[str, dict[str, Any], str]:
    """A pending cancellation whose session item lacks `attribute` (written before it existed), finalised
    once its one transaction ends: (session id, the session as seeded, the execution's arn)."""
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = finaliser.seed_pending_cancellation([SeededTransaction(tx, "PROCESSING")], finalize_by)
    seeded = finaliser.session(session_id)
    finaliser.dynamodb.update_item(
        TableName=finaliser.table_name,
        Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}},
        UpdateExpression=f"REMOVE {attribute}",
    )
    final_event_id = new_id()
    execution = finaliser.start(session_id, [tx], finalize_by, final_event_id=final_event_id)
    finaliser.wait_for_token(tx)
    ProviderPath(finaliser).move(tx, "CANCELLED")
    assert finaliser.wait_for_end(execution, timeout=10)["status"] == "SUCCEEDED"
    _assert_cancelled(finaliser, session_id, final_event_id)
    return session_id, seeded, execution


def test_a_session_written_before_counter_keys_is_counted_in_shard_0(callbacks_only: Finaliser) -> None:
    # Given a pending cancellation whose session item predates its counter key, when its transaction ends
    session_id, _, execution = _finalise_without(callbacks_only, "statsKey")
    # Then it is finalised, and counted in shard 0 of its tenant
    session = callbacks_only.session(session_id)
    assert _counted_cancels(callbacks_only, "STATS#demo#0", session["cancelledAt"]["S"]) == 1
    assert "DefaultStatsKey" in callbacks_only.entered(execution)


def test_a_session_locked_before_the_level_counters_moves_none(callbacks_only: Finaliser) -> None:
    # Given a pending cancellation whose lock counted it in no pending-cancellation counter, when its
    # transaction ends
    _, seeded, execution = _finalise_without(callbacks_only, "pendingLevel")
    # Then it is finalised, and the counters the gauge reads are as they were
    assert callbacks_only.level(seeded["pendingLevel"]["S"]) == 1  # the seed's own count, left alone
    assert callbacks_only.level("LEVEL#UNCOUNTED") == -1
    assert "DefaultPendingLevel" in callbacks_only.entered(execution)


def test_transaction_that_ended_before_its_token_was_stored_needs_no_wait(callbacks_only: Finaliser) -> None:
    # Given a pending transaction that fails before the workflow gets to it
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = callbacks_only.seed_pending_cancellation([SeededTransaction(tx, "PROCESSING")], finalize_by)
    assert ProviderPath(callbacks_only).move(tx, "FAILED") is None  # nobody was waiting yet

    # When the workflow starts
    final_event_id = new_id()
    execution = callbacks_only.start(session_id, [tx], finalize_by, final_event_id=final_event_id)

    # Then the token store is refused, that transaction is done, and the session is cancelled
    assert callbacks_only.wait_for_end(execution, timeout=10)["status"] == "SUCCEEDED"
    _assert_cancelled(callbacks_only, session_id, final_event_id)
    assert "taskToken" not in callbacks_only.transaction(tx)
    entered = callbacks_only.entered(execution)
    assert "TransactionAlreadyFinished" in entered
    assert _count(entered, "RecheckTransaction") == 0
    failures = [
        event["taskFailedEventDetails"]["error"]
        for event in callbacks_only.history(execution)
        if event["type"] == "TaskFailed"
    ]
    assert failures == ["DynamoDb.ConditionalCheckFailedException"]


def test_lost_callback_is_recovered_by_the_timed_reread(fast_recheck: Finaliser) -> None:
    # Given a workflow waiting on a transaction
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = fast_recheck.seed_pending_cancellation([SeededTransaction(tx, "PROCESSING")], finalize_by)
    final_event_id = new_id()
    execution = fast_recheck.start(session_id, [tx], finalize_by, final_event_id=final_event_id)
    fast_recheck.wait_for_token(tx)

    # When the transaction settles but SendTaskSuccess never happens
    ProviderPath(fast_recheck).move(tx, "SETTLED", send_callback=False)

    # Then the re-read after the recheck interval finds it terminal and the session is cancelled
    assert fast_recheck.wait_for_end(execution, timeout=15)["status"] == "SUCCEEDED"
    final = _assert_cancelled(fast_recheck, session_id, final_event_id)
    assert final["data"]["M"]["refundRequired"] == {"BOOL": True}
    history = fast_recheck.history(execution)
    assert any(event["type"] == "TaskTimedOut" for event in history)
    entered = fast_recheck.entered(execution)
    assert entered.index("RecheckTransaction") < entered.index("TransactionFinished")


def test_deadline_passed_raises_attention_once_and_never_finalises_silently(fast_recheck: Finaliser) -> None:
    # Given two transactions still in flight and a finalizeBy already in the past
    tx_a, tx_b = new_id(), new_id()
    finalize_by = now_iso(-60)
    session_id = fast_recheck.seed_pending_cancellation(
        [SeededTransaction(tx_a, "PROCESSING"), SeededTransaction(tx_b, "AUTHORIZED")], finalize_by
    )
    attention_event_id, final_event_id = new_id(), new_id()
    execution = fast_recheck.start(
        session_id,
        [tx_a, tx_b],
        finalize_by,
        final_event_id=final_event_id,
        attention_event_id=attention_event_id,
    )

    # When the rechecks find them still in flight, several times over
    wait_until(
        lambda: fast_recheck.session(session_id)["cancellation"]["M"]["attentionRequired"]["BOOL"],
        timeout=15,
        what="attentionRequired",
    )
    wait_until(
        lambda: _count(fast_recheck.entered(execution), "RecheckTransaction") >= 8,
        timeout=20,
        what="several rechecks past the deadline",
    )

    # Then attention is raised exactly once, and the session stays PENDING_CANCELLATION
    session = fast_recheck.session(session_id)
    assert session["status"]["S"] == "PENDING_CANCELLATION"
    assert fast_recheck.status(execution) == "RUNNING"
    timeline = _assert_gapless(fast_recheck, session_id)
    attention = [event for event in timeline if event["type"]["S"] == "session.attention_required"]
    assert len(attention) == 1
    (raised,) = attention
    assert raised["eventId"]["S"] == attention_event_id
    assert raised["actor"]["S"] == "workflow"
    data = raised["data"]["M"]
    assert data["finalizeBy"] == {"S": finalize_by}
    assert data["transactionId"]["S"] in (tx_a, tx_b)
    assert data["pendingTransactionIds"] == {"L": [{"S": tx_a}, {"S": tx_b}]}
    # the session is on its tenant's attention list (the seeded session has no lock time: it sorts first)
    assert session["attentionTenant"] == {"S": "demo"} and session["attentionSince"] == {"N": "0"}
    # the session is read for the deadline a bounded number of times, not once per recheck
    assert _count(fast_recheck.entered(execution), "ReadSessionForAttention") <= 4

    # When the transactions finally end
    provider = ProviderPath(fast_recheck)
    provider.move(tx_a, "SETTLED")
    provider.move(tx_b, "FAILED")

    # Then the session is cancelled, after the attention event
    assert fast_recheck.wait_for_end(execution, timeout=15)["status"] == "SUCCEEDED"
    final = _assert_cancelled(fast_recheck, session_id, final_event_id)
    assert final["data"]["M"] == {
        **SEEDED_REASONS,
        "refundRequired": {"BOOL": True},
        "settledTransactionIds": {"L": [{"S": tx_a}]},
    }
    assert _types(fast_recheck.timeline(session_id))[-4:] == [
        "session.attention_required",
        "transaction.updated",
        "transaction.updated",
        "session.cancelled",
    ]
    assert fast_recheck.session(session_id)["cancellation"]["M"]["attentionRequired"] == {"BOOL": True}


def test_transaction_settling_during_the_wait_makes_a_refund_due(callbacks_only: Finaliser) -> None:
    # Given a workflow waiting on one transaction
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = callbacks_only.seed_pending_cancellation([SeededTransaction(tx, "AUTHORIZED")], finalize_by)
    final_event_id = new_id()
    execution = callbacks_only.start(session_id, [tx], finalize_by, final_event_id=final_event_id)
    callbacks_only.wait_for_token(tx)

    # When it settles
    ProviderPath(callbacks_only).move(tx, "SETTLED")

    # Then the final event says a refund is due for it
    assert callbacks_only.wait_for_end(execution, timeout=10)["status"] == "SUCCEEDED"
    final = _assert_cancelled(callbacks_only, session_id, final_event_id)
    assert final["data"]["M"] == {
        **SEEDED_REASONS,
        "refundRequired": {"BOOL": True},
        "settledTransactionIds": {"L": [{"S": tx}]},
    }
    session = callbacks_only.session(session_id)
    assert session["refundRequired"] == {"BOOL": True}
    assert session["cancellation"]["M"]["settledTransactionIds"] == {"L": [{"S": tx}]}
    assert session["transactions"]["M"][tx]["M"]["status"] == {"S": "SETTLED"}


def test_started_twice_for_one_session_finalises_once(fast_recheck: Finaliser) -> None:
    # Given the finaliser started for a session
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = fast_recheck.seed_pending_cancellation([SeededTransaction(tx, "PROCESSING")], finalize_by)
    execution_input = json.dumps(
        {
            "sessionId": session_id,
            "pendingTransactionIds": [tx],
            "finalizeBy": finalize_by,
            "finalEventId": new_id(),
            "attentionEventId": new_id(),
        }
    )
    first = fast_recheck.start_raw(f"cancel-{session_id}", execution_input)
    first_token = fast_recheck.wait_for_token(tx)

    # When it is started again: same name and input, same name and other input, and another name
    assert fast_recheck.start_raw(f"cancel-{session_id}", execution_input) == first
    with pytest.raises(ClientError) as refused:
        fast_recheck.start(session_id, [tx], finalize_by)
    assert refused.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    second = fast_recheck.start(session_id, [tx], finalize_by, name=f"cancel-{session_id}-again")
    fast_recheck.wait_for_token(tx, other_than=first_token)

    # ...and the transaction ends
    ProviderPath(fast_recheck).move(tx, "FAILED")

    # Then both executions end well, and the session is cancelled exactly once
    assert fast_recheck.wait_for_end(first, timeout=15)["status"] == "SUCCEEDED"
    assert fast_recheck.wait_for_end(second, timeout=15)["status"] == "SUCCEEDED"
    session = fast_recheck.session(session_id)
    assert session["status"]["S"] == "CANCELLED"
    timeline = _assert_gapless(fast_recheck, session_id)
    assert _types(timeline).count("session.cancelled") == 1
    endings = sorted(fast_recheck.entered(execution)[-1] for execution in (first, second))
    assert endings == ["AlreadyFinalised", "Finalised"]


def test_cost_per_recheck_is_a_small_constant(fast_recheck: Finaliser) -> None:
    # Given a provider that takes a long time (here: several recheck intervals) and loses its callback
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = fast_recheck.seed_pending_cancellation([SeededTransaction(tx, "PROCESSING")], finalize_by)
    final_event_id = new_id()
    execution = fast_recheck.start(session_id, [tx], finalize_by, final_event_id=final_event_id)
    rechecks = 4
    wait_until(
        lambda: _count(fast_recheck.entered(execution), "RecheckTransaction") >= rechecks,
        timeout=20,
        what=f"{rechecks} rechecks",
    )

    # When it finally ends
    ProviderPath(fast_recheck).move(tx, "CANCELLED")
    assert fast_recheck.wait_for_end(execution, timeout=15)["status"] == "SUCCEEDED"
    _assert_cancelled(fast_recheck, session_id, final_event_id)

    # Then every recheck cycle enters the same three states, and nothing else grows with the wait
    entered = fast_recheck.entered(execution)
    observed = _count(entered, "RecheckTransaction")
    assert observed >= rechecks
    head = ["Prepare", "WaitForPendingTransactions", "StoreTaskTokenAndWait"]
    tail = ["ReadSession", "CheckSession", "DefaultRefundRequired", "CheckSession", "Finalise", "Finalised"]
    assert entered[: len(head)] == head
    assert entered[-len(tail) :] == tail
    cycles = entered[len(head) : -len(tail)]
    if cycles[-2:] == ["StoreTaskTokenAndWait", "TransactionAlreadyFinished"]:
        # The transaction ended between the last recheck and the token's store, whose condition then
        # failed (a loaded machine makes this window real): the cycle ends one state later.
        cycles = cycles[:-1]
    assert len(cycles) == len(RECHECK_CYCLE) * observed, entered
    for start in range(0, len(cycles) - len(RECHECK_CYCLE), len(RECHECK_CYCLE)):
        assert cycles[start : start + len(RECHECK_CYCLE)] == RECHECK_CYCLE
    # the last cycle either stored a token the callback then released, or found the transaction ended
    assert cycles[-1] in ("StoreTaskTokenAndWait", "TransactionFinished")
    per_day_at_default_recheck = len(RECHECK_CYCLE) * 86_400 // 3_600
    assert per_day_at_default_recheck == 72
    assert per_day_at_default_recheck < 2_880 // 10  # one-minute polling: 2 transitions x 1,440 minutes


def test_session_already_cancelled_ends_without_a_second_finalisation(callbacks_only: Finaliser) -> None:
    # Given a session another execution has already cancelled
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = callbacks_only.seed_pending_cancellation([SeededTransaction(tx, "PROCESSING")], finalize_by)
    ProviderPath(callbacks_only).move(tx, "CANCELLED")
    first = callbacks_only.start(session_id, [tx], finalize_by)
    assert callbacks_only.wait_for_end(first, timeout=10)["status"] == "SUCCEEDED"
    timeline_before = callbacks_only.timeline(session_id)

    # When a late execution runs for it
    late = callbacks_only.start(session_id, [tx], finalize_by, name=f"cancel-{session_id}-late")

    # Then it ends as AlreadyFinalised and writes nothing
    assert callbacks_only.wait_for_end(late, timeout=10)["status"] == "SUCCEEDED"
    assert callbacks_only.entered(late)[-1] == "AlreadyFinalised"
    assert "Finalise" not in callbacks_only.entered(late)
    assert callbacks_only.timeline(session_id) == timeline_before


def test_in_flight_count_without_a_pending_transaction_fails_clearly(callbacks_only: Finaliser) -> None:
    # Given a session that counts a transaction in flight although every pending one is terminal
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = callbacks_only.seed_pending_cancellation([SeededTransaction(tx, "PROCESSING")], finalize_by)
    callbacks_only.dynamodb.update_item(
        TableName=callbacks_only.table_name,
        Key={"pk": {"S": f"TRANSACTION#{tx}"}, "sk": {"S": "TRANSACTION"}},
        UpdateExpression="SET #status = :failed",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":failed": {"S": "FAILED"}},
    )
    timeline_before = callbacks_only.timeline(session_id)

    # When the workflow runs
    execution = callbacks_only.start(session_id, [tx], finalize_by)

    # Then it waits again a bounded number of times, then fails with a clear error, finalising nothing
    ended = callbacks_only.wait_for_end(execution, timeout=10)
    assert ended["status"] == "FAILED"
    assert ended["error"] == "InFlightWithoutPendingTransaction"
    assert "in flight" in ended["cause"]
    assert _count(callbacks_only.entered(execution), "WaitForPendingTransactions") == 3
    assert callbacks_only.session(session_id)["status"]["S"] == "PENDING_CANCELLATION"
    assert callbacks_only.timeline(session_id) == timeline_before


def test_finalisation_refused_every_time_gives_up_after_bounded_retries(callbacks_only: Finaliser) -> None:
    # Given a session ready to finalise whose next event slot is already taken
    tx = new_id()
    finalize_by = now_iso(3600)
    session_id = callbacks_only.seed_pending_cancellation([SeededTransaction(tx, "PROCESSING")], finalize_by)
    ProviderPath(callbacks_only).move(tx, "FAILED")
    seq = int(callbacks_only.session(session_id)["seq"]["N"])
    callbacks_only.dynamodb.put_item(
        TableName=callbacks_only.table_name,
        Item={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": event_sk(seq + 1)}, "type": {"S": "stray"}},
    )

    # When the workflow runs
    execution = callbacks_only.start(session_id, [tx], finalize_by)

    # Then each refused transaction is caught, the session re-read, and after five tries it fails clearly
    ended = callbacks_only.wait_for_end(execution, timeout=10)
    assert ended["status"] == "FAILED"
    assert ended["error"] == "FinaliseKeptConflicting"
    entered = callbacks_only.entered(execution)
    assert _count(entered, "Finalise") == 5
    assert _count(entered, "ReadSession") == 5
    failures = [
        event["taskFailedEventDetails"]["error"]
        for event in callbacks_only.history(execution)
        if event["type"] == "TaskFailed"
        and event["taskFailedEventDetails"]["resource"] == "transactWriteItems"
    ]
    assert failures == ["DynamoDb.TransactionCanceledException"] * 5
    assert callbacks_only.session(session_id)["status"]["S"] == "PENDING_CANCELLATION"
