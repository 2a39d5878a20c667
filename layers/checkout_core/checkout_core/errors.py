"""Domain errors. They say what went wrong in the domain's words; http.py maps them to HTTP answers."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the service answers deliberately."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DomainError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class InvalidApiKey(DomainError):
    def __init__(self) -> None:
        super().__init__("Missing, malformed or unknown API key.")


class InvalidSignature(DomainError):
    pass


class PaymentDeclined(DomainError):
    """The provider declined the payment method at once; the transaction is kept, FAILED."""

    def __init__(self, transaction_id: str, failure_code: str | None) -> None:
        super().__init__(f"The payment method was declined ({failure_code or 'declined'}).")
        self.transaction_id = transaction_id
        self.failure_code = failure_code


class SessionNotFound(DomainError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"No session {session_id}.")


class TransactionNotFound(DomainError):
    def __init__(self, transaction_id: str) -> None:
        super().__init__(f"No transaction {transaction_id}.")


class EndpointNotFound(DomainError):
    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"No webhook endpoint {endpoint_id}.")


class DeliveryNotFound(DomainError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"No delivery {delivery_id} of this webhook endpoint.")


class EndpointLimitReached(DomainError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"A tenant has at most {limit} webhook endpoints; delete one first.")


class StateConflict(DomainError):
    """A write refused because of the session's current status."""

    def __init__(self, message: str, current_status: str) -> None:
        super().__init__(message)
        self.current_status = current_status


class SessionNotCancellable(StateConflict):
    def __init__(self, current_status: str) -> None:
        super().__init__(f"Session is {current_status}; only OPEN sessions can be cancelled.", current_status)


class SessionExpired(StateConflict):
    def __init__(self, current_status: str = "EXPIRED") -> None:
        super().__init__("Session is past its expiresAt; it accepts no more changes.", current_status)


class SessionNotOpen(StateConflict):
    def __init__(self, current_status: str) -> None:
        super().__init__(
            f"Session is {current_status}; payment attempts are accepted only while it is OPEN.",
            current_status,
        )


class TransactionsInFlight(StateConflict):
    def __init__(self, pending_transaction_ids: list[str]) -> None:
        count = len(pending_transaction_ids)
        noun = "transaction" if count == 1 else "transactions"
        super().__init__(
            f"{count} {noun} in flight cannot be cancelled by the provider; nothing was changed.", "OPEN"
        )
        self.pending_transaction_ids = pending_transaction_ids


class PaymentInFlight(TransactionsInFlight):
    """A payment attempt that must be the only one in flight (the hosted page's) while another is."""

    def __init__(self, in_flight_transaction_ids: list[str]) -> None:
        StateConflict.__init__(
            self, "A payment is already in flight on this session; nothing was changed.", "OPEN"
        )
        self.pending_transaction_ids = in_flight_transaction_ids


class TransactionLimitReached(StateConflict):
    def __init__(self, limit: int) -> None:
        super().__init__(f"A session accepts at most {limit} transactions.", "OPEN")


class IdempotencyInProgress(DomainError):
    def __init__(self) -> None:
        super().__init__("A request with this Idempotency-Key is still being processed; retry later.")


class IdempotencyKeyReused(DomainError):
    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was used with a different body or route.")


class ConcurrentUpdate(DomainError):
    """Optimistic concurrency kept losing; the caller may retry."""

    def __init__(self) -> None:
        super().__init__("The session is changing too fast; retry shortly.")


class WriteConflict(ConcurrentUpdate):
    """A condition of a write failed. `part` is "session", "transaction:<id>" or "item:<pk>".

    The capabilities catch it to re-read and decide again; one that escapes them is answered as a
    ConcurrentUpdate (503, retry shortly), never as an internal error."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part


class ServiceUnavailable(DomainError):
    def __init__(self, retry_after_seconds: int = 1) -> None:
        super().__init__("A dependency is unavailable; retry shortly.")
        self.retry_after_seconds = retry_after_seconds
