"""Amounts in minor units, written as a customer reads them."""

from __future__ import annotations

# ISO 4217 minor-unit exponents that are not 2 (the list maintained by SIX, the ISO 4217 agency).
_EXPONENTS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}

# Symbols only where one reads as a single currency to a customer anywhere: "$" alone is the US
# dollar here because other dollars are written with their code (CA$, A$ are not universal either).
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩", "ILS": "₪", "NGN": "₦"}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


def format_amount(amount: int, currency: str) -> str:
    """5000 USD -> "$50.00"; 5000 JPY -> "¥5,000"; 1234 KWD -> "KWD 1.234"."""
    digits = exponent(currency)
    whole, minor = divmod(amount, 10**digits)
    text = f"{whole:,}" + (f".{minor:0{digits}d}" if digits else "")
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{currency} {text}"
