"""A provider's notification carrying several reports (Adyen's `notificationItems`): every item was verified
before this is called (the adapter's parse_batch); each is then applied on its own through the path of any
provider event (provider_events.py: one conditional write per move, deduplicated by the report's id).

A report of an attempt this service never made is acknowledged and ignored: the provider would otherwise
send it again for days. So is a report whose provider id is not the one recorded for the attempt."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from checkout_core import cancel_requests, transitions
from checkout_core.clock import is_uuid7
from checkout_core.context import Context
from checkout_core.errors import TransactionNotFound
from checkout_core.observability import logger
from checkout_core.provider_events import apply_provider_event, raise_reported_failure
from checkout_core.providers import ProviderReport
from checkout_core.transitions import TransactionStatus


def apply_provider_batch(ctx: Context, provider_name: str, reports: tuple[ProviderReport, ...]) -> int:
    """Applies each report in order; the number that changed something."""
    applied = 0
    for report in reports:
        log_extra = {
            "provider": provider_name,
            "eventId": report.event_id,
            "transactionId": report.transaction_id,
        }
        try:
            applied += _apply_one(ctx, provider_name, report)
        except TransactionNotFound:
            logger.info("provider reports an attempt this service never made; ignored", extra=log_extra)
    return applied


def _apply_one(ctx: Context, provider_name: str, report: ProviderReport) -> bool:
    acted_on = report.status is not None or report.cancel_refused or report.attention
    if not acted_on or report.transaction_id is None:
        return apply_provider_event(ctx, provider_name, report).applied  # logged there as not acted on
    transaction = (
        ctx.repository.get_transaction(report.transaction_id) if is_uuid7(report.transaction_id) else None
    )
    if transaction is None or transaction["provider"] != provider_name:
        raise TransactionNotFound(report.transaction_id)
    recorded = transaction.get("providerReference")
    if report.reference and recorded and report.reference != recorded:
        logger.warning(
            "provider report names another payment than the one recorded for the attempt; ignored",
            extra={"transactionId": report.transaction_id, "provider": provider_name},
        )
        return False
    if report.attention:
        return raise_reported_failure(ctx, provider_name, transaction, report)
    if report.cancel_refused:
        return cancel_requests.record_cancel_refused(ctx, provider_name, transaction, report)
    return apply_provider_event(
        ctx, provider_name, as_recorded(transaction, report), known=transaction
    ).applied


def as_recorded(transaction: dict[str, Any], report: ProviderReport) -> ProviderReport:
    """An authorisation of an attempt in flight that the provider was asked to capture automatically is its
    settlement: the provider captures it without another word (Adyen sends no CAPTURE for it)."""
    automatic = transaction.get("captureMethod") == "AUTOMATIC"
    if (
        report.status is TransactionStatus.AUTHORIZED
        and automatic
        and transitions.is_in_flight(transaction["status"])
    ):
        return replace(report, status=TransactionStatus.SETTLED)
    return report
