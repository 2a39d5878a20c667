"""Every write's status condition comes from the transition table: a move the table forbids cannot be written."""

from datetime import UTC, datetime

import pytest

from checkout_core.changes import Guard, transaction_move
from checkout_core.transitions import SESSION_MOVES, SessionStatus, TransactionStatus

NOW = datetime(2026, 11, 22, 17, 40, 5, tzinfo=UTC)


@pytest.mark.parametrize("current", list(SessionStatus))
@pytest.mark.parametrize("target", list(SessionStatus))
def test_a_guard_exists_only_for_the_moves_of_the_table(
    current: SessionStatus, target: SessionStatus
) -> None:
    if target in SESSION_MOVES[current]:
        guard = Guard.move(current, target)
        assert guard.text == "{status} = :status" and guard.values == {":status": current.value}
    else:
        with pytest.raises(ValueError, match="transition table forbids"):
            Guard.move(current, target)


def test_a_guard_adds_the_expiry_and_in_flight_rules() -> None:
    guard = Guard.move(SessionStatus.OPEN, SessionStatus.CANCELLED).before_expiry(NOW).nothing_in_flight()
    assert guard.text == "{status} = :status AND {expiresAt} > :now AND {inFlight} = :zero"
    assert guard.values == {":status": "OPEN", ":now": int(NOW.timestamp()), ":zero": 0}


def test_a_transaction_move_follows_the_table_and_leaves_token_and_reconciliation_when_it_ends() -> None:
    ended = transaction_move("tx", "PROCESSING", TransactionStatus.CANCELLED, NOW)
    assert ended.expected_statuses == ["PROCESSING"]
    assert list(ended.remove) == ["taskToken", "reconcileShard", "reconcileAt"]
    refund_due = transaction_move(
        "tx",
        "PROCESSING",
        TransactionStatus.SETTLED,
        NOW,
        also_set={"reconcileShard": "R#1", "reconcileAt": 1},
    )
    assert list(refund_due.remove) == ["taskToken"]
    authorised = transaction_move("tx", "PROCESSING", TransactionStatus.AUTHORIZED, NOW)
    assert list(authorised.remove) == []
    with pytest.raises(ValueError, match="transition table forbids"):
        transaction_move("tx", "CANCELLED", TransactionStatus.SETTLED, NOW)
