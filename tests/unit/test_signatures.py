import pytest

from checkout_core import signatures
from checkout_core.errors import InvalidSignature

SECRET = "whsec_test"
BODY = b'{"eventId":"e1","transactionId":"t","status":"SETTLED"}'


def test_a_fresh_signature_of_the_exact_body_verifies() -> None:
    header = signatures.sign(SECRET, 1_000_000, BODY)
    signatures.verify(SECRET, header, BODY, now=1_000_100)


@pytest.mark.parametrize(
    ("header", "now"),
    [
        (None, 1_000_000),
        ("", 1_000_000),
        ("v1=abc", 1_000_000),
        ("t=1000000", 1_000_000),
        ("t=abc,v1=00", 1_000_000),
    ],
)
def test_missing_or_malformed_headers_are_refused(header: str | None, now: int) -> None:
    with pytest.raises(InvalidSignature):
        signatures.verify(SECRET, header, BODY, now=now)


def test_a_signature_older_than_300_seconds_is_refused() -> None:
    header = signatures.sign(SECRET, 1_000_000, BODY)
    signatures.verify(SECRET, header, BODY, now=1_000_300)
    with pytest.raises(InvalidSignature):
        signatures.verify(SECRET, header, BODY, now=1_000_301)


def test_a_signature_from_the_future_beyond_the_window_is_refused() -> None:
    header = signatures.sign(SECRET, 1_000_400, BODY)
    with pytest.raises(InvalidSignature):
        signatures.verify(SECRET, header, BODY, now=1_000_000)


def test_another_secret_or_a_changed_body_is_refused() -> None:
    header = signatures.sign("whsec_other", 1_000_000, BODY)
    with pytest.raises(InvalidSignature):
        signatures.verify(SECRET, header, BODY, now=1_000_000)
    header = signatures.sign(SECRET, 1_000_000, BODY)
    with pytest.raises(InvalidSignature):
        signatures.verify(SECRET, header, BODY + b" ", now=1_000_000)


def test_signature_matches_the_documented_formula() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1000000." + BODY, hashlib.sha256).hexdigest()
    assert signatures.sign(SECRET, 1_000_000, BODY) == f"t=1000000,v1={expected}"
