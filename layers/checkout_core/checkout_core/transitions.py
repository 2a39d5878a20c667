"""Pure rules: which status moves are allowed, and what a session's status is right now. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class SessionStatus(StrEnum):
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    PENDING_CANCELLATION = "PENDING_CANCELLATION"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class TransactionStatus(StrEnum):
    PROCESSING = "PROCESSING"
    AUTHORIZED = "AUTHORIZED"
    SETTLED = "SETTLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


IN_FLIGHT: frozenset[TransactionStatus] = frozenset(
    {TransactionStatus.PROCESSING, TransactionStatus.AUTHORIZED}
)

TRANSACTION_MOVES: dict[TransactionStatus, frozenset[TransactionStatus]] = {
    TransactionStatus.PROCESSING: frozenset(
        {
            TransactionStatus.AUTHORIZED,
            TransactionStatus.SETTLED,
            TransactionStatus.FAILED,
            TransactionStatus.CANCELLED,
        }
    ),
    TransactionStatus.AUTHORIZED: frozenset(
        {TransactionStatus.SETTLED, TransactionStatus.FAILED, TransactionStatus.CANCELLED}
    ),
    TransactionStatus.SETTLED: frozenset({TransactionStatus.REFUNDED}),
    TransactionStatus.FAILED: frozenset(),
    TransactionStatus.CANCELLED: frozenset(),
    TransactionStatus.REFUNDED: frozenset(),
}

SESSION_MOVES: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.OPEN: frozenset(
        {
            SessionStatus.COMPLETED,
            SessionStatus.PENDING_CANCELLATION,
            SessionStatus.CANCELLED,
            SessionStatus.EXPIRED,
        }
    ),
    SessionStatus.PENDING_CANCELLATION: frozenset({SessionStatus.CANCELLED}),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
    SessionStatus.EXPIRED: frozenset(),
}

MAX_TRANSACTIONS_PER_SESSION = 25


def is_in_flight(status: str) -> bool:
    return status in IN_FLIGHT


def can_move_transaction(current: str, target: str) -> bool:
    return TransactionStatus(target) in TRANSACTION_MOVES[TransactionStatus(current)]


def can_move_session(current: str, target: str) -> bool:
    return SessionStatus(target) in SESSION_MOVES[SessionStatus(current)]


def is_past_expiry(expires_at: int, now: int) -> bool:
    """A session expires at the first second at or after `expiresAt`."""
    return now >= expires_at


def effective_status(status: str, expires_at: int, in_flight: int, now: int) -> SessionStatus:
    """What every read reports: an OPEN session past expiresAt with nothing in flight is EXPIRED."""
    current = SessionStatus(status)
    if current is SessionStatus.OPEN and in_flight == 0 and is_past_expiry(expires_at, now):
        return SessionStatus.EXPIRED
    return current


@dataclass(frozen=True)
class CancellationPlan:
    """How a cancel treats the in-flight transactions it found."""

    to_cancel_at_provider: tuple[str, ...]
    left_in_flight: tuple[str, ...]

    @property
    def in_flight(self) -> tuple[str, ...]:
        return self.to_cancel_at_provider + self.left_in_flight


def plan_cancellation(
    transactions: Iterable[tuple[str, str, bool]],
) -> CancellationPlan:
    """`transactions`: (transactionId, status, provider can cancel in flight), in creation order."""
    cancellable: list[str] = []
    uncancellable: list[str] = []
    for transaction_id, status, cancel_in_flight in transactions:
        if not is_in_flight(status):
            continue
        (cancellable if cancel_in_flight else uncancellable).append(transaction_id)
    return CancellationPlan(tuple(cancellable), tuple(uncancellable))


def session_status_after_transaction_move(
    session_status: str,
    target: str,
    in_flight_after: int,
    past_expiry: bool,
) -> SessionStatus:
    """The session's status once one of its transactions has moved to `target`.

    A settlement completes an OPEN session (even past expiresAt: a payment in flight is never cut off).
    The last in-flight transaction of an expired OPEN session ending unsettled expires the session.
    A PENDING_CANCELLATION session waits for the finaliser; CANCELLED and EXPIRED never see moves
    because nothing is in flight on them.
    """
    current = SessionStatus(session_status)
    if current is not SessionStatus.OPEN:
        return current
    if target == TransactionStatus.SETTLED:
        return SessionStatus.COMPLETED
    if past_expiry and in_flight_after == 0:
        return SessionStatus.EXPIRED
    return current
