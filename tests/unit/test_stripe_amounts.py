"""ISO 4217 minor units to Stripe's units and back, for every special case Stripe's currency page
documents (https://docs.stripe.com/currencies): zero-decimal currencies, ISK and UGX kept two-decimal,
three-decimal currencies whose last digit must be 0, and the rest two-decimal."""

from __future__ import annotations

import pytest

from checkout_core.providers.stripe_amounts import (
    NOT_AN_ISO_AMOUNT,
    AmountNotAccepted,
    from_stripe,
    stripe_exponent,
    to_stripe,
)

ZERO_DECIMAL_IN_BOTH = "BIF CLP DJF GNF JPY KMF KRW PYG RWF VND VUV XAF XOF XPF".split()


@pytest.mark.parametrize(
    ("currency", "iso_amount", "stripe_amount"),
    [
        *[(code, 5000, 5000) for code in ZERO_DECIMAL_IN_BOTH],
        ("MGA", 150000, 1500),  # ISO: two decimals; Stripe: zero-decimal
        ("ISK", 5000, 500000),  # ISO: zero decimals; Stripe: two, in multiples of 100
        ("UGX", 5000, 500000),
        *[(code, 12340, 12340) for code in "BHD JOD KWD OMR TND".split()],
        ("USD", 1999, 1999),
        ("EUR", 1, 1),
        ("HUF", 1050, 1050),  # zero-decimal only for payouts: charged in two decimals
        ("TWD", 1050, 1050),
    ],
)
def test_amounts_convert_both_ways(currency: str, iso_amount: int, stripe_amount: int) -> None:
    assert to_stripe(iso_amount, currency) == stripe_amount
    assert from_stripe(stripe_amount, currency) == iso_amount


@pytest.mark.parametrize(
    ("currency", "iso_amount", "why"),
    [
        ("KWD", 12345, "last digit is 0"),
        ("BHD", 1, "last digit is 0"),
        ("MGA", 150050, "multiple of 100"),
    ],
)
def test_an_amount_stripe_cannot_take_is_refused(currency: str, iso_amount: int, why: str) -> None:
    with pytest.raises(AmountNotAccepted, match=why):
        to_stripe(iso_amount, currency)


def test_a_stripe_amount_that_is_a_fraction_of_an_iso_unit_matches_no_record() -> None:
    assert from_stripe(150, "ISK") == NOT_AN_ISO_AMOUNT  # 1.50 kr
    assert from_stripe(500, "ISK") == 5


def test_exponents_follow_stripe_not_iso() -> None:
    assert [stripe_exponent(code) for code in ("JPY", "MGA", "ISK", "UGX", "KWD", "USD")] == [
        0,
        0,
        2,
        2,
        3,
        2,
    ]
