"""The three sandbox providers: they call nobody and answer at once; for development, tests and demos.
Their webhooks are signed `Provider-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` (signatures.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from checkout_core import signatures
from checkout_core.providers.base import Attempt, CancelOutcome, ProviderReport, ProviderState
from checkout_core.transitions import TransactionStatus


@dataclass(frozen=True)
class Sandbox:
    name: str
    cancel_in_flight: bool
    cancel_outcome: CancelOutcome
    webhook_secret: str
    has_status_api: bool = False  # a sandbox keeps no state: its news arrives only by webhook
    requires_payment_method: bool = False
    payment_method_is_object: bool = False
    cancel_is_async: bool = False
    cancel_by_our_reference: bool = False
    reverses: bool = False
    refund_is_async: bool = False
    customer_page_origins: tuple[str, ...] = ()

    def reference_before_start(self, transaction_id: str) -> str | None:
        return f"sbx_{transaction_id.replace('-', '')}"

    def check_attempt(
        self,
        amount: int,
        currency: str,
        payment_method: str | Mapping[str, Any] | None,
        capture_manually: bool,
    ) -> None:
        return None  # a sandbox takes any amount in any currency

    def start(self, attempt: Attempt) -> ProviderState:
        return ProviderState(
            self.reference_before_start(attempt.transaction_id), TransactionStatus.PROCESSING
        )

    def cancellable_now(self, reference: str | None, transaction_id: str) -> bool:
        return self.cancel_in_flight

    def cancel(self, reference: str | None, transaction_id: str, reason_type: str | None) -> CancelOutcome:
        return self.cancel_outcome

    def refund(self, reference: str | None, transaction_id: str) -> str:
        return f"sbx_re_{transaction_id.replace('-', '')}"

    def status(self, reference: str | None, transaction_id: str) -> ProviderState | None:
        return None  # a sandbox keeps no state: its news arrives only by webhook

    def complete_return(
        self, reference: str | None, transaction_id: str, returned: Mapping[str, str]
    ) -> ProviderState | None:
        return None  # a sandbox never sends the customer away

    def parse_event(self, headers: Mapping[str, str], raw: bytes, now: int) -> ProviderReport:
        """Raises InvalidSignature, or pydantic's ValidationError for a body of the wrong shape."""
        from checkout_core.models import ProviderEventRequest

        signatures.verify(self.webhook_secret, _header(headers, "Provider-Signature"), raw, now)
        event = ProviderEventRequest.model_validate_json(raw)
        return ProviderReport(
            event.eventId,
            event.transactionId,
            event.providerReference,
            event.status,
            amount=event.amount,
            currency=event.currency,
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


def sandboxes(webhook_secret: str) -> list[Sandbox]:
    return [
        Sandbox("sandbox_card", True, CancelOutcome.CANCELLED, webhook_secret),
        Sandbox("sandbox_bank_transfer", False, CancelOutcome.NOT_SUPPORTED, webhook_secret),
        # Claims it can cancel in flight, but its cancel call always fails, as during a provider outage.
        Sandbox("sandbox_flaky_card", True, CancelOutcome.FAILED, webhook_secret),
    ]
