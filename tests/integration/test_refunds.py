"""Automatic refunds whose provider call fails: the settlement is recorded, the refund is asked for again by
the scheduled job, attention is raised once past the deadline, and the refund is recorded when it works.
A provider whose refunds fail until told otherwise is passed in (a fake provider, not a patch)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from checkout_core.context import Context
from checkout_core.expiry import sweep
from checkout_core.provider_events import apply_provider_event
from checkout_core.providers import ProviderRegistry, ProviderReport
from checkout_core.providers.sandbox import Sandbox, sandboxes
from checkout_core.settings import get_settings
from checkout_core.transitions import TransactionStatus
from tests.integration.flows import cancel, create_session, get, transaction


@dataclass
class Refusing:
    """The sandbox bank transfer, whose refunds fail while `down` (a provider outage)."""

    down: bool = True
    calls: int = 0

    def refund(self, reference: str | None, transaction_id: str) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("provider unreachable")
        return f"re_{transaction_id[:8]}"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class RefusingBank(Sandbox):
    refusing: Refusing = field(default_factory=Refusing)

    def refund(self, reference: str | None, transaction_id: str) -> str:
        return self.refusing.refund(reference, transaction_id)


def context_with(refusing: Refusing, clock: Clock) -> Context:
    bank = next(s for s in sandboxes("whsec_sandbox") if s.name == "sandbox_bank_transfer")
    adapter = RefusingBank(
        bank.name, bank.cancel_in_flight, bank.cancel_outcome, bank.webhook_secret, refusing=refusing
    )
    settings = replace(get_settings(), provider_reconcile_seconds=60, cancellation_deadline_seconds=3600)
    return Context(providers=ProviderRegistry([adapter]), settings=settings, clock=clock)


def test_a_refund_that_fails_is_asked_again_raises_attention_past_the_deadline_then_is_made(aws: Any) -> None:
    # Given a cancelled session whose bank transfer then settles, while the provider's refunds fail
    session_id = create_session()["sessionId"]
    bank = transaction(session_id, "sandbox_bank_transfer")
    assert cancel(session_id).json()["status"] == "PENDING_CANCELLATION"
    refusing, clock = Refusing(), Clock()
    ctx = context_with(refusing, clock)
    report = ProviderReport("evt-settled", bank, None, TransactionStatus.SETTLED)
    assert apply_provider_event(ctx, "sandbox_bank_transfer", report).applied
    assert refusing.calls == 1
    assert [tx["status"] for tx in get(session_id)["transactions"]] == ["SETTLED"]

    # When the scheduled job runs a minute later, and again past the deadline
    clock.now += timedelta(seconds=61)
    sweep(ctx, lambda: 60_000)
    assert refusing.calls == 2
    assert not attention(session_id)
    clock.now += timedelta(hours=1)
    sweep(ctx, lambda: 60_000)
    sweep(ctx, lambda: 60_000)
    # Then attention is raised once, and the job keeps asking
    assert [event["data"]["reason"] for event in attention(session_id)] == ["REFUND_NOT_MADE"]
    assert refusing.calls == 4

    # When the provider is back
    refusing.down = False
    sweep(ctx, lambda: 60_000)
    # Then the refund is recorded, and the job stops asking
    read = get(session_id)
    assert [tx["status"] for tx in read["transactions"]] == ["REFUNDED"]
    assert read["cancellation"]["refundedTransactionIds"] == [bank]
    sweep(ctx, lambda: 60_000)
    assert refusing.calls == 5


def attention(session_id: str) -> list[dict[str, Any]]:
    from tests.integration.flows import events

    return [event for event in events(session_id) if event["type"] == "session.attention_required"]
