"""The provider protocol: what every adapter answers, and the shapes of its answers.

An adapter is the only code that talks to its provider. It never writes to the table: the capabilities
record the intent first, call the adapter, then record what it answered (see payments.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from checkout_core.transitions import TransactionStatus


class CancelOutcome(StrEnum):
    CANCELLED = "CANCELLED"
    NOT_SUPPORTED = "NOT_SUPPORTED"  # the provider cannot stop it now: it will end on its own
    FAILED = "FAILED"  # the call failed (an outage, a timeout): treated as pending, never as cancelled
    # The provider accepted the cancel and will report its outcome later: the transaction stays in flight
    # with `cancelRequestedAt`, pending exactly as one that cannot be cancelled, until that report.
    REQUESTED = "REQUESTED"


class Refusal(StrEnum):
    """Why a provider refused an attempt at once: only DECLINED is the customer's payment method."""

    DECLINED = "DECLINED"
    INPUT = "INPUT"  # the merchant's input (`field` names it): a 400, not a decline
    CONFIGURATION = "CONFIGURATION"  # this service's credentials or account: a 503, not a decline


@dataclass(frozen=True)
class Attempt:
    """A payment attempt as recorded before the provider is called."""

    transaction_id: str
    session_id: str
    amount: int
    currency: str
    # The customer's payment method as the provider names it: an id (stripe) or the provider's own
    # object (adyen: what its Drop-in produces).
    payment_method: str | Mapping[str, Any] | None = None
    capture_manually: bool = False
    # Where a provider that sends the customer away (3-D Secure, their bank) brings them back: the hosted
    # page's return route, `<PUBLIC_BASE_URL>/pay/<token>/return`.
    return_url: str | None = None
    # Records the provider's id of the payment before it can charge, True once the record holds that id:
    # an adapter whose provider names a payment before confirming it calls it between the two.
    record_reference: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class ProviderState:
    """What the provider says of an attempt: its id there, its status, why it failed, and the amount
    and currency it holds for it where its answer says."""

    reference: str | None
    status: TransactionStatus
    failure_code: str | None = None
    amount: int | None = None
    currency: str | None = None
    refusal: Refusal | None = None  # set with FAILED when the provider refused the attempt at once
    refused_field: str | None = None  # the request's field, for Refusal.INPUT
    refusal_message: str | None = None
    # PROCESSING and waiting for the customer: the page the provider sends them to (a bank's 3-D Secure).
    next_action_url: str | None = None

    def report(self, event_id: str, transaction_id: str) -> ProviderReport:
        """This reading as a report of the attempt, to be applied as the provider's event would be."""
        return ProviderReport(
            event_id,
            transaction_id,
            self.reference,
            self.status,
            failure_code=self.failure_code,
            amount=self.amount,
            currency=self.currency,
        )


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
    # The provider reports that a cancel it had accepted did not happen: the transaction is no longer
    # waiting on a cancel, and finishes on its own (refunded if it settles where it must not).
    cancel_refused: bool = False
    # Reconciliation's finding that the provider never received the attempt (no id of it was recorded):
    # it applies only while none is, so a start that records one meanwhile wins.
    never_reached_provider: bool = False
    # A failure the provider reports that moves nothing but needs a person (CAPTURE_FAILED, REFUND_FAILED,
    # REFUND_NOT_MADE): session.attention_required with this reason, once per report.
    attention: str | None = None


@dataclass(frozen=True)
class ProviderBatch:
    """A provider's notification carrying several reports, every one verified before any is applied,
    and the exact body the provider requires as its acknowledgement."""

    reports: tuple[ProviderReport, ...]
    acknowledgement: str
    content_type: str = "text/plain"


class ProviderAdapter(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def cancel_in_flight(self) -> bool:
        """Whether an attempt in flight can be cancelled at the provider."""
        ...

    @property
    def cancel_is_async(self) -> bool:
        """Whether the provider answers a cancel later: `cancel` then says REQUESTED, and a report
        (CANCELLED, or `cancel_refused`) follows."""
        ...

    @property
    def cancel_by_our_reference(self) -> bool:
        """Whether `cancel(None, transaction_id, ...)` cancels by our own transaction id, an attempt whose
        provider id was never learnt (the call that creates it timed out, or the process died)."""
        ...

    @property
    def reverses(self) -> bool:
        """Whether `refund` undoes a payment whatever its state there (cancelled if not captured yet,
        refunded if captured): a payment reported settled can be undone before its capture is made."""
        ...

    @property
    def refund_is_async(self) -> bool:
        """Whether `refund` only asks (the provider answers `received`): the id it returns is the request's,
        and the refund is recorded when the provider reports it made (REFUNDED), or a person is told when it
        reports it refused."""
        ...

    @property
    def requires_payment_method(self) -> bool:
        """Whether an attempt names the customer's payment method at the provider (`paymentMethod`)."""
        ...

    @property
    def payment_method_is_object(self) -> bool:
        """Whether `paymentMethod` is the provider's own object (else an id, a string)."""
        ...

    @property
    def has_status_api(self) -> bool:
        """Whether `status` can be asked: the provider keeps the attempts it was sent and says their state.
        Without it, reconciliation acts instead of asking (see reconciliation.py)."""
        ...

    @property
    def customer_page_origins(self) -> tuple[str, ...]:
        """The origins of the pages the provider sends a customer to (`ProviderState.next_action_url`):
        the hosted page's forms may lead there (its Content-Security-Policy's form-action)."""
        ...

    def reference_before_start(self, transaction_id: str) -> str | None:
        """The provider's id of an attempt when it is known before the call (a sandbox's), else None."""
        ...

    def check_attempt(
        self,
        amount: int,
        currency: str,
        payment_method: str | Mapping[str, Any] | None,
        capture_manually: bool,
    ) -> None:
        """Refuses (errors.InvalidRequest naming the field) what the provider is known to refuse of the
        merchant's input, before anything is recorded or charged; errors.ServiceUnavailable when it
        cannot tell now."""
        ...

    def start(self, attempt: Attempt) -> ProviderState: ...

    def cancellable_now(self, reference: str | None, transaction_id: str) -> bool:
        """Whether a cancel would stop this attempt now (asked before a cancel that must not wait)."""
        ...

    def cancel(self, reference: str | None, transaction_id: str, reason_type: str | None) -> CancelOutcome:
        """CANCELLED, REQUESTED (answer later), NOT_SUPPORTED or FAILED. `reference` None: by our own
        transaction id where the provider can (`cancel_by_our_reference`), else FAILED."""
        ...

    def refund(self, reference: str | None, transaction_id: str) -> str:
        """The provider's refund id; where the provider answers that the payment is refunded already,
        the id of that refund (looked up), never a failure. Raises when no refund could be made (retried
        later)."""
        ...

    def status(self, reference: str | None, transaction_id: str) -> ProviderState | None:
        """The attempt as the provider knows it now; None when it never received it."""
        ...

    def complete_return(
        self, reference: str | None, transaction_id: str, returned: Mapping[str, str]
    ) -> ProviderState | None:
        """The attempt's state once the customer is back from the provider's page, `returned` being the
        query the provider brought them back with; None when there is nothing to complete here."""
        ...

    def parse_event(self, headers: Mapping[str, str], raw: bytes, now: int) -> ProviderReport:
        """Verifies the provider's own signature (errors.InvalidSignature) and reads the event."""
        ...


@runtime_checkable
class BatchedEvents(Protocol):
    """An adapter whose provider sends several reports per notification and requires its own answer."""

    def parse_batch(self, headers: Mapping[str, str], raw: bytes, now: int) -> ProviderBatch:
        """Verifies every item's signature first (errors.InvalidSignature for any bad one) and reads them."""
        ...


def method_not_available(provider: str, reference: str | None, code: str, said: str) -> ProviderState:
    """A refusal because the provider account does not take the payment method (not activated, no
    acquirer): the same request never succeeds and another method may, so it is the merchant's to change
    (400 naming paymentMethod); logged for the operator, who may enable the method."""
    from checkout_core.observability import logger

    logger.warning(
        "the provider account does not take this payment method",
        extra={"provider": provider, "failureCode": code, "providerMessage": said},
    )
    return ProviderState(
        reference,
        TransactionStatus.FAILED,
        code,
        refusal=Refusal.INPUT,
        refused_field="paymentMethod",
        refusal_message=f"this payment method is not available: {said}",
    )


def page_origins_of(api_base: str | None, default: str) -> tuple[str, ...]:
    """Where a provider sends a customer: a local emulator's own origin (`api_base`), else `default`."""
    if api_base:
        parts = urlsplit(api_base)
        return (f"{parts.scheme}://{parts.netloc}",)
    return (default,)


def reconciliation_can_act(provider: ProviderAdapter) -> bool:
    """Whether reconciliation has anything to do for the provider's attempts in flight: ask their status,
    or, where it cannot ask, cancel one by our reference once its session no longer takes payments."""
    return provider.has_status_api or provider.cancel_by_our_reference
