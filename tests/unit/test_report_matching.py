"""The one check every provider's report passes before it moves anything (report_matching.py)."""

from __future__ import annotations

from typing import Any

import pytest

from checkout_core.providers import ProviderReport
from checkout_core.report_matching import Match, match_report
from checkout_core.transitions import TransactionStatus

RECORDED = {"transactionId": "t", "provider": "stripe", "amount": 5000, "providerReference": "pi_ours"}


def report(**fields: Any) -> ProviderReport:
    return ProviderReport("evt", "t", fields.pop("reference", None), TransactionStatus.SETTLED, **fields)


@pytest.mark.parametrize(
    ("recorded", "sent", "expected"),
    [
        (RECORDED, report(reference="pi_ours", amount=5000, currency="USD"), Match.MATCHES),
        (RECORDED, report(), Match.MATCHES),  # a report that says nothing of them is not compared
        (RECORDED, report(reference="pi_theirs", amount=5000, currency="USD"), Match.OTHER_REFERENCE),
        (RECORDED, report(reference="pi_theirs", amount=1), Match.OTHER_REFERENCE),
        (RECORDED, report(reference="pi_ours", amount=4999), Match.AMOUNT_MISMATCH),
        (RECORDED, report(reference="pi_ours", currency="EUR"), Match.CURRENCY_MISMATCH),
        (RECORDED, report(currency="usd"), Match.MATCHES),
        ({**RECORDED, "providerReference": None}, report(reference="pi_new", amount=5000), Match.MATCHES),
        (
            {**RECORDED, "providerReference": None},
            report(reference="pi_new", amount=1),
            Match.AMOUNT_MISMATCH,
        ),
    ],
)
def test_a_report_is_matched_against_the_record(
    recorded: dict[str, Any], sent: ProviderReport, expected: Match
) -> None:
    assert match_report(recorded, "USD", sent) is expected
