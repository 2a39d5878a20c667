"""Amounts between ISO 4217 minor units (what this service stores) and Stripe's units, by Stripe's
documented currency rules (https://docs.stripe.com/currencies):
- zero-decimal currencies are sent in whole units (MGA, two-decimal in ISO 4217, included);
- ISK and UGX, zero-decimal in ISO 4217, stay two-decimal in Stripe's API for backward compatibility:
  ISK 5000 is sent as 500000, and an amount must be a multiple of 100;
- three-decimal currencies (BHD, JOD, KWD, OMR, TND) are sent in thousandths whose last digit is 0;
- every other currency is two-decimal.
"""

from __future__ import annotations

from checkout_core.money import exponent

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
# A Stripe amount that no ISO amount equals (a fraction of a minor unit): it matches no record.
NOT_AN_ISO_AMOUNT = -1


class AmountNotAccepted(ValueError):
    """An amount Stripe cannot take in its currency; the message says why, in the merchant's terms."""


def stripe_exponent(currency: str) -> int:
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def to_stripe(amount: int, currency: str) -> int:
    """The amount as Stripe takes it; AmountNotAccepted when Stripe's rules refuse it."""
    shift = stripe_exponent(currency) - exponent(currency)
    if shift >= 0:
        value = amount * 10**shift
    elif amount % 10**-shift:
        raise AmountNotAccepted(
            f"Stripe takes {currency} in whole units only: the amount must be a multiple of {10**-shift}."
        )
    else:
        value = amount // 10**-shift
    if currency in THREE_DECIMAL and value % 10:
        raise AmountNotAccepted(f"Stripe takes {currency} amounts whose last digit is 0 (a multiple of 10).")
    return value


def from_stripe(amount: int, currency: str) -> int:
    """A Stripe amount in ISO minor units; NOT_AN_ISO_AMOUNT when it is a fraction of one."""
    shift = stripe_exponent(currency) - exponent(currency)
    if shift <= 0:
        return amount * 10**-shift
    whole, fraction = divmod(amount, 10**shift)
    return NOT_AN_ISO_AMOUNT if fraction else whole
