"""Adyen's documented test data: test cards, the holder names that ask for a refusal, currencies."""

from __future__ import annotations

import secrets

# Adyen's test cards (docs.adyen.com/development-resources/testing/test-card-numbers): expiry 03/2030, CVC 737
# (Amex 7373). Other Luhn-valid numbers are authorised too, as on Adyen's test platform.
TEST_CARDS = {
    "4111111111111111": "visa",
    "4111111145551142": "visa",
    "4988438843884305": "visa",
    "4166676667666746": "visa",
    "4646464646464644": "visa",
    "4444333322221111": "visa",
    "4400000000000008": "visa",
    "5555341244441115": "mc",
    "5555555555554444": "mc",
    "5555444433331111": "mc",
    "5100290029002909": "mc",
    "5500000000000004": "mc",
    "2222400070000005": "mc",
    "370000000000002": "amex",
    "371449635398431": "amex",
}
THREE_DS_CARDS = {  # 3-D Secure 2 test cards: the issuer asks the shopper to authenticate
    "4212345678910006": "visa",
    "4917610000000000": "visa",
    "5454545454545454": "mc",
    "5201281505129736": "mc",
}
# holderName → (resultCode, refusalReason, refusalReasonCode), Adyen's "Values for testing refusal reasons".
REFUSALS = {
    "UNKNOWN": ("Error", "Unknown", "0"),
    "DECLINED": ("Refused", "Refused", "2"),
    "REFERRAL": ("Refused", "Referral", "3"),
    "ERROR": ("Error", "Acquirer Error", "4"),
    "BLOCK_CARD": ("Refused", "Blocked Card", "5"),
    "CARD_EXPIRED": ("Refused", "Expired Card", "6"),
    "INVALID_AMOUNT": ("Refused", "Invalid Amount", "7"),
    "INVALID_CARD_NUMBER": ("Refused", "Invalid Card Number", "8"),
    "ISSUER_UNAVAILABLE": ("Refused", "Issuer Unavailable", "9"),
    "NOT_SUPPORTED": ("Refused", "Not supported", "10"),
    "NOT_3D_AUTHENTICATED": ("Refused", "3D Not Authenticated", "11"),
    "NOT_ENOUGH_BALANCE": ("Refused", "Not enough balance", "12"),
    "ACQUIRER_FRAUD": ("Refused", "Acquirer Fraud", "14"),
    "CANCELLED": ("Refused", "Cancelled", "15"),
    "SHOPPER_CANCELLED": ("Refused", "Shopper Cancelled", "16"),
    "FRAUD": ("Refused", "FRAUD", "20"),
    "TRANSACTION_NOT_PERMITTED": ("Refused", "Transaction Not Permitted", "23"),
    "CVC_DECLINED": ("Refused", "CVC Declined", "24"),
    "RESTRICTED_CARD": ("Refused", "Restricted Card", "25"),
}
PENDING_HOLDER = (
    "PENDING"  # Adyen's trigger for resultCode Received (code 13): the outcome comes by notification
)
CURRENCIES = set(
    "AED AUD BGN BHD BRL CAD CHF CLP CNY COP CZK DKK EGP EUR GBP HKD HUF IDR ILS INR ISK JOD JPY KRW KWD MAD "
    "MXN MYR NOK NZD OMR PEN PHP PKR PLN QAR RON RSD SAR SEK SGD THB TND TRY TWD UAH USD VND ZAR".split()
)
PSP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_psp_reference() -> str:
    return "".join(secrets.choice(PSP_ALPHABET) for _ in range(16))


def brand_of(number: str) -> str:
    return "visa" if number.startswith("4") else "amex" if number[:2] in ("34", "37") else "mc"


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char) * (2 if index % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0
