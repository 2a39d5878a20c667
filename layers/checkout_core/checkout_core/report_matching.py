"""Whether a provider's report is about the payment this service recorded, whatever the provider.

A report names our transaction (Stripe: the PaymentIntent's `metadata.transactionId`), but anything
in the same provider account can carry that name: an intent made in the provider's dashboard, by another
integration, or by a second deployment sharing the account. So a report is believed only where what it
says of the payment agrees with what was recorded: the provider's id for it, once we hold one, and the
amount and currency the session asked for. A field the report does not carry is not compared.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from checkout_core.providers.base import ProviderReport


class Match(StrEnum):
    MATCHES = "MATCHES"
    OTHER_REFERENCE = "OTHER_REFERENCE"  # about another payment at the provider: ignored
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # our payment, of another amount: a person must look
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"


def match_report(transaction: dict[str, Any], currency: str, report: ProviderReport) -> Match:
    """`transaction` as recorded (its item), `currency` its session's."""
    recorded = transaction.get("providerReference")
    if recorded and report.reference and report.reference != recorded:
        return Match.OTHER_REFERENCE
    if report.currency is not None and report.currency.upper() != currency:
        return Match.CURRENCY_MISMATCH
    if report.amount is not None and report.amount != int(transaction["amount"]):
        return Match.AMOUNT_MISMATCH
    return Match.MATCHES


def mismatch_data(transaction: dict[str, Any], currency: str, report: ProviderReport) -> dict[str, Any]:
    """What `session.attention_required` says of a report that disagrees with the record."""
    return {
        "transactionId": transaction["transactionId"],
        "provider": transaction["provider"],
        "providerReference": report.reference or transaction.get("providerReference"),
        "expected": {"amount": int(transaction["amount"]), "currency": currency},
        "reported": {"amount": report.amount, "currency": report.currency},
    }
