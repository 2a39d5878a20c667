import pytest

from checkout_core import transitions
from checkout_core.transitions import SessionStatus, TransactionStatus

ALLOWED = {
    ("PROCESSING", "AUTHORIZED"),
    ("PROCESSING", "SETTLED"),
    ("PROCESSING", "FAILED"),
    ("PROCESSING", "CANCELLED"),
    ("AUTHORIZED", "SETTLED"),
    ("AUTHORIZED", "FAILED"),
    ("AUTHORIZED", "CANCELLED"),
    ("SETTLED", "REFUNDED"),
}


@pytest.mark.parametrize("current", [status.value for status in TransactionStatus])
@pytest.mark.parametrize("target", [status.value for status in TransactionStatus])
def test_transaction_moves_follow_the_contract_table(current: str, target: str) -> None:
    assert transitions.can_move_transaction(current, target) is ((current, target) in ALLOWED)


def test_in_flight_is_processing_and_authorized_only() -> None:
    assert {s for s in TransactionStatus if transitions.is_in_flight(s)} == {"PROCESSING", "AUTHORIZED"}


@pytest.mark.parametrize("terminal", ["COMPLETED", "CANCELLED", "EXPIRED"])
def test_terminal_session_statuses_never_move(terminal: str) -> None:
    assert not any(transitions.can_move_session(terminal, target) for target in SessionStatus)


def test_pending_cancellation_only_becomes_cancelled() -> None:
    allowed = {
        target for target in SessionStatus if transitions.can_move_session("PENDING_CANCELLATION", target)
    }
    assert allowed == {SessionStatus.CANCELLED}


class TestEffectiveStatus:
    def test_open_before_expiry_is_open(self) -> None:
        assert transitions.effective_status("OPEN", expires_at=100, in_flight=0, now=99) is SessionStatus.OPEN

    def test_open_at_expiry_with_nothing_in_flight_reads_expired(self) -> None:
        assert (
            transitions.effective_status("OPEN", expires_at=100, in_flight=0, now=100)
            is SessionStatus.EXPIRED
        )

    def test_payment_in_flight_keeps_an_expired_session_open(self) -> None:
        assert (
            transitions.effective_status("OPEN", expires_at=100, in_flight=1, now=500) is SessionStatus.OPEN
        )

    @pytest.mark.parametrize("status", ["COMPLETED", "CANCELLED", "PENDING_CANCELLATION", "EXPIRED"])
    def test_other_statuses_are_reported_as_stored(self, status: str) -> None:
        assert transitions.effective_status(status, expires_at=100, in_flight=0, now=500).value == status


def test_plan_cancellation_splits_in_flight_by_capability_and_skips_terminal() -> None:
    # Given transactions in creation order with their provider's capability
    plan = transitions.plan_cancellation(
        [
            ("a", "PROCESSING", True),
            ("b", "SETTLED", True),
            ("c", "AUTHORIZED", False),
            ("d", "FAILED", False),
            ("e", "AUTHORIZED", True),
        ]
    )
    # Then only in-flight ones are planned, cancellable first
    assert plan.to_cancel_at_provider == ("a", "e")
    assert plan.left_in_flight == ("c",)
    assert plan.in_flight == ("a", "e", "c")


class TestSessionAfterTransactionMove:
    def test_settlement_completes_an_open_session_even_past_expiry(self) -> None:
        after = transitions.session_status_after_transaction_move("OPEN", "SETTLED", 0, past_expiry=True)
        assert after is SessionStatus.COMPLETED

    def test_last_unsettled_end_past_expiry_expires_the_session(self) -> None:
        after = transitions.session_status_after_transaction_move("OPEN", "FAILED", 0, past_expiry=True)
        assert after is SessionStatus.EXPIRED

    def test_failure_before_expiry_leaves_the_session_open(self) -> None:
        after = transitions.session_status_after_transaction_move("OPEN", "FAILED", 0, past_expiry=False)
        assert after is SessionStatus.OPEN

    def test_failure_past_expiry_with_another_in_flight_keeps_it_open(self) -> None:
        after = transitions.session_status_after_transaction_move("OPEN", "CANCELLED", 1, past_expiry=True)
        assert after is SessionStatus.OPEN

    def test_pending_cancellation_waits_for_the_finaliser(self) -> None:
        after = transitions.session_status_after_transaction_move("PENDING_CANCELLATION", "SETTLED", 0, True)
        assert after is SessionStatus.PENDING_CANCELLATION
