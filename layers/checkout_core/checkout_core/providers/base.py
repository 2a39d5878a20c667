"""The provider protocol: what every adapter answers, and the shapes of its answers.

An adapter is the only code that talks to its provider. It never writes to the table: the capabilities
record the intent first, call the adapter, then record what it answered (see payments.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from checkout_core.transitions import TransactionStatus


class CancelOutcome(StrEnum):
    CANCELLED = "CANCELLED"
    NOT_SUPPORTED = "NOT_SUPPORTED"  # the provider cannot stop it now: it will end on its own
    FAILED = "FAILED"  # the call failed (an outage, a timeout): treated as pending, never as cancelled


@dataclass(frozen=True)
class Attempt:
    """A payment attempt as recorded before the provider is called."""

    transaction_id: str
    session_id: str
    amount: int
    currency: str
    payment_method: str | None = None
    capture_manually: bool = False


@dataclass(frozen=True)
class ProviderState:
    """What the provider says of an attempt: its id there, its status, why it failed, and the amount
    and currency it holds for it where its answer says."""

    reference: str | None
    status: TransactionStatus
    failure_code: str | None = None
    amount: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class ProviderReport:
    """A provider's webhook, verified and read: which attempt (ours, and the provider's id for it) and
    its new state, with the amount (minor units) and currency (ISO 4217, upper case) the provider holds
    for it where the event says. `status` None: a type this service does not act on. Before it is
    applied, the report is matched against the record (report_matching.py)."""

    event_id: str
    transaction_id: str | None
    reference: str | None
    status: TransactionStatus | None
    failure_code: str | None = None
    refund_id: str | None = None
    amount: int | None = None
    currency: str | None = None


class ProviderAdapter(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def cancel_in_flight(self) -> bool: ...

    @property
    def requires_payment_method(self) -> bool:
        """Whether an attempt names the customer's payment method at the provider (`paymentMethod`)."""
        ...

    @property
    def reconciles(self) -> bool:
        """Whether `status` can be asked: the provider keeps the attempts it was sent."""
        ...

    def reference_before_start(self, transaction_id: str) -> str | None:
        """The provider's id of an attempt when it is known before the call (a sandbox's), else None."""
        ...

    def start(self, attempt: Attempt) -> ProviderState: ...

    def cancellable_now(self, reference: str | None, transaction_id: str) -> bool:
        """Whether a cancel would stop this attempt now (asked before a cancel that must not wait)."""
        ...

    def cancel(
        self, reference: str | None, transaction_id: str, reason_type: str | None
    ) -> CancelOutcome: ...

    def refund(self, reference: str | None, transaction_id: str) -> str:
        """The provider's refund id; where the provider answers that the payment is refunded already,
        the id of that refund (looked up), never a failure. Raises when no refund could be made (retried
        later)."""
        ...

    def status(self, reference: str | None, transaction_id: str) -> ProviderState | None:
        """The attempt as the provider knows it now; None when it never received it."""
        ...

    def parse_event(self, headers: Mapping[str, str], raw: bytes, now: int) -> ProviderReport:
        """Verifies the provider's own signature (errors.InvalidSignature) and reads the event."""
        ...
