"""A provider event applies only where it agrees with the record: the provider's id for the payment (once we
hold one), its amount and its currency. Driven through the provider events handler with sandbox events that
say what the provider holds (`providerReference`, `amount`, `currency`)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from checkout_core.context import Context
from checkout_core.errors import WriteConflict
from checkout_core.observability import logger
from checkout_core.providers import ProviderRegistry, ProviderState
from checkout_core.providers.sandbox import Sandbox, sandboxes
from checkout_core.reconciliation import reconcile_transaction
from checkout_core.repository import SessionRepository, TransactionChange
from checkout_core.settings import get_settings
from checkout_core.transitions import TransactionStatus
from tests.integration.flows import cancel, create_session, events, get, provider_event, transaction


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]


def reference_of(tx: str) -> str:
    return "sbx_" + tx.replace("-", "")


def attention(session_id: str) -> list[dict[str, Any]]:
    return [event for event in events(session_id) if event["type"] == "session.attention_required"]


def forget_reference(aws: Any, session_id: str, tx: str) -> None:
    """The state a crash leaves between recording an attempt and recording the provider's answer to it."""
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}},
        UpdateExpression="REMOVE transactions.#tx.providerReference",
        ExpressionAttributeNames={"#tx": tx},
    )
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": f"TRANSACTION#{tx}"}, "sk": {"S": "TRANSACTION"}},
        UpdateExpression="REMOVE providerReference",
    )


def test_an_event_that_agrees_with_the_record_applies(aws: Any) -> None:
    session_id = create_session(amount=5000, currency="USD")["sessionId"]
    tx = transaction(session_id)
    answer = provider_event(
        "sandbox_card", tx, "SETTLED", providerReference=reference_of(tx), amount=5000, currency="USD"
    )
    assert answer.json() == {"received": True, "applied": True}
    assert get(session_id)["status"] == "COMPLETED"


def test_an_event_about_another_payment_at_the_provider_is_ignored_and_logged(
    aws: Any, log_output: io.StringIO
) -> None:
    # Given an attempt the provider knows as sbx_<transactionId>
    session_id = create_session()["sessionId"]
    tx = transaction(session_id)
    before = aws.session_item(session_id)
    # When an event names our transaction but another payment at the provider
    answer = provider_event("sandbox_card", tx, "SETTLED", providerReference="sbx_someone_else")
    # Then it is acknowledged, applied to nothing, and logged
    assert answer.status == 200 and answer.json() == {"received": True, "applied": False}
    assert aws.session_item(session_id) == before
    logged = [json.loads(line) for line in log_output.getvalue().splitlines() if line.startswith("{")]
    [record] = [r for r in logged if r.get("message", "").startswith("provider event about another payment")]
    assert (record["transactionId"], record["reportedReference"]) == (tx, "sbx_someone_else")
    # And the genuine event still applies
    assert provider_event("sandbox_card", tx, "SETTLED", providerReference=reference_of(tx)).json()["applied"]


@pytest.mark.parametrize(
    ("reported", "reason"),
    [({"amount": 4999, "currency": "USD"}, "AMOUNT_MISMATCH"), ({"currency": "EUR"}, "CURRENCY_MISMATCH")],
)
def test_an_event_for_another_amount_or_currency_moves_nothing_and_raises_attention_once(
    aws: Any, reported: dict[str, Any], reason: str
) -> None:
    # Given a USD 50.00 attempt in flight
    session_id = create_session(amount=5000, currency="USD")["sessionId"]
    tx = transaction(session_id)
    # When the provider reports it settled for another amount or currency, twice (a resend)
    answers = [
        provider_event("sandbox_card", tx, "SETTLED", event_id="evt-odd", **reported) for _ in range(2)
    ]
    # Then nothing moves, and a person is told once, with what was expected and what was reported
    assert [answer.json()["applied"] for answer in answers] == [False, False]
    read = get(session_id)
    assert read["status"] == "OPEN" and read["transactions"][0]["status"] == "PROCESSING"
    assert aws.session_item(session_id)["inFlight"] == 1
    [raised] = attention(session_id)
    assert raised["actor"] == "provider:sandbox_card"
    assert raised["data"] == {
        "reason": reason,
        "transactionId": tx,
        "provider": "sandbox_card",
        "providerReference": reference_of(tx),
        "expected": {"amount": 5000, "currency": "USD"},
        "reported": {"amount": reported.get("amount"), "currency": reported.get("currency")},
    }


def test_a_mismatch_on_a_cancelling_session_marks_its_cancellation_for_attention(aws: Any) -> None:
    session_id = create_session(amount=5000)["sessionId"]
    tx = transaction(session_id, "sandbox_bank_transfer")
    assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    answer = provider_event("sandbox_bank_transfer", tx, "SETTLED", amount=50)
    assert answer.json()["applied"] is False
    read = get(session_id)
    assert read["cancellation"]["attentionRequired"] is True
    assert read["status"] == "PENDING_CANCELLATION" and read["transactions"][0]["status"] == "PROCESSING"


def test_where_no_reference_is_recorded_yet_the_events_reference_is_recorded_with_the_move_once(
    aws: Any,
) -> None:
    # Given an attempt whose provider reference was never recorded (a crash before the answer was)
    session_id = create_session()["sessionId"]
    tx = transaction(session_id, "sandbox_bank_transfer")
    forget_reference(aws, session_id, tx)
    assert get(session_id)["transactions"][0]["providerReference"] is None
    # When the provider reports it authorised, naming its own id for it
    first = provider_event("sandbox_bank_transfer", tx, "AUTHORIZED", providerReference="sbx_found")
    # Then the move is made and the reference recorded with it, on the session and the transaction item
    assert first.json()["applied"] is True
    [summary] = get(session_id)["transactions"]
    assert (summary["status"], summary["providerReference"]) == ("AUTHORIZED", "sbx_found")
    assert SessionRepository(aws.table_name).get_transaction(tx)["providerReference"] == "sbx_found"
    # And an event naming another reference is now about another payment: ignored
    other = provider_event("sandbox_bank_transfer", tx, "SETTLED", providerReference="sbx_other")
    assert other.json()["applied"] is False
    assert get(session_id)["transactions"][0]["status"] == "AUTHORIZED"


def test_the_reference_is_written_only_while_the_transaction_has_none(aws: Any) -> None:
    # Given a transaction with its reference recorded
    session_id = create_session()["sessionId"]
    tx = transaction(session_id, "sandbox_bank_transfer")
    repository = SessionRepository(aws.table_name)
    item = repository.get_session(session_id)
    assert item is not None
    # When a write that records a reference is made on it (a racing writer that read it without one)
    from checkout_core.changes import session_change

    change = session_change(
        item,
        "reference-race",
        set={f"transactions.{tx}.providerReference": "sbx_late"},
        transactions=[
            TransactionChange(
                transaction_id=tx,
                expected_statuses=[TransactionStatus.PROCESSING.value],
                set={"providerReference": "sbx_late"},
                reference_unset=True,
            )
        ],
    )
    # Then the write is refused, and the first reference stays
    with pytest.raises(WriteConflict):
        repository.apply(change)
    assert repository.get_transaction(tx)["providerReference"] == reference_of(tx)


@dataclass(frozen=True)
class Answering(Sandbox):
    """The sandbox card, made one that can be asked (`status`) and answers `found` (a fake passed in)."""

    has_status_api: bool = True
    found: ProviderState | None = None

    def status(self, reference: str | None, transaction_id: str) -> ProviderState | None:
        return self.found


def asking(found: ProviderState | None) -> Context:
    card = next(s for s in sandboxes("whsec_sandbox") if s.name == "sandbox_card")
    adapter = Answering(
        card.name, card.cancel_in_flight, card.cancel_outcome, card.webhook_secret, found=found
    )
    settings = replace(get_settings(), provider_reconcile_seconds=60)
    return Context(providers=ProviderRegistry([adapter]), settings=settings)


def test_reconciliation_matches_what_it_finds_before_it_records_anything(aws: Any) -> None:
    # Given an attempt in flight, and a provider that, asked, reports it settled for another amount
    session_id = create_session(amount=5000, currency="USD")["sessionId"]
    tx = transaction(session_id)
    found = ProviderState(reference_of(tx), TransactionStatus.SETTLED, amount=1, currency="USD")
    ctx = asking(found)
    # When reconciliation asks, twice
    before = int(time.time())
    assert reconcile_transaction(ctx, tx) is False
    assert reconcile_transaction(ctx, tx) is False
    # Then nothing moves, attention is raised once, and the attempt is asked again later, not every run
    assert get(session_id)["transactions"][0]["status"] == "PROCESSING"
    assert [event["data"]["reason"] for event in attention(session_id)] == ["AMOUNT_MISMATCH"]
    due = SessionRepository(aws.table_name).get_transaction(tx)["reconcileAt"]
    assert before + 60 <= due <= int(time.time()) + 60


def test_reconciliation_does_not_take_a_reference_for_another_amount(aws: Any) -> None:
    # Given an attempt whose reference was never recorded, and a provider holding a payment of another
    # amount under our transaction id, still processing
    session_id = create_session(amount=5000, currency="USD")["sessionId"]
    tx = transaction(session_id)
    forget_reference(aws, session_id, tx)
    ctx = asking(ProviderState("sbx_theirs", TransactionStatus.PROCESSING, amount=1, currency="USD"))
    # When reconciliation finds it
    reconcile_transaction(ctx, tx)
    # Then its reference is not taken for ours
    assert get(session_id)["transactions"][0]["providerReference"] is None
    # And a payment that matches is
    reconcile_transaction(asking(ProviderState("sbx_ours", TransactionStatus.PROCESSING, amount=5000)), tx)
    assert get(session_id)["transactions"][0]["providerReference"] == "sbx_ours"


def test_an_attempt_reconciliation_found_never_reached_its_provider_is_not_given_a_reference_later(
    aws: Any,
) -> None:
    # Given an attempt with no reference that reconciliation, finding nothing at the provider, marked FAILED
    from checkout_core.provider_events import record_provider_reference

    session_id = create_session(amount=5000, currency="USD")["sessionId"]
    tx = transaction(session_id)
    forget_reference(aws, session_id, tx)
    ctx = asking(None)
    assert reconcile_transaction(ctx, tx) is True
    assert get(session_id)["transactions"][0]["failureCode"] == "not_created_at_provider"
    # When the start that was still running records the provider's id (before it would confirm the payment)
    recorded = record_provider_reference(ctx, session_id, tx, "sbx_late", 5000, "USD")
    # Then it is told no, so it never confirms, and the record is unchanged
    assert recorded is False
    assert get(session_id)["transactions"][0]["providerReference"] is None


def test_a_reference_recorded_meanwhile_wins_over_reconciliations_never_reached_finding(aws: Any) -> None:
    # Given an attempt with no reference, read so by reconciliation
    from checkout_core.provider_events import apply_provider_event, record_provider_reference
    from checkout_core.providers import ProviderReport

    session_id = create_session(amount=5000, currency="USD")["sessionId"]
    tx = transaction(session_id)
    forget_reference(aws, session_id, tx)
    repository = SessionRepository(aws.table_name)
    read_before = repository.get_transaction(tx)
    ctx = asking(None)
    # When the start records the provider's id, and then reconciliation writes what it read
    assert record_provider_reference(ctx, session_id, tx, "sbx_ours", 5000, "USD") is True
    finding = ProviderReport(
        f"reconcile:{tx}:never-created",
        tx,
        None,
        TransactionStatus.FAILED,
        failure_code="not_created_at_provider",
        never_reached_provider=True,
    )
    result = apply_provider_event(ctx, "sandbox_card", finding, actor="scheduler", known=read_before)
    # Then its write is refused by the record's condition, and the attempt stays in flight with its id
    assert result.applied is False
    [kept] = get(session_id)["transactions"]
    assert (kept["status"], kept["providerReference"]) == ("PROCESSING", "sbx_ours")
