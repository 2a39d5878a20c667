import hashlib
import re

import pytest

from checkout_core import api_keys, clock


def test_keys_are_hashed_with_sha256_hex() -> None:
    assert api_keys.hash_api_key("sk_test_demo") == hashlib.sha256(b"sk_test_demo").hexdigest()


def test_new_keys_are_long_random_and_prefixed() -> None:
    first, second = api_keys.new_api_key(), api_keys.new_api_key()
    assert first != second
    assert first.startswith("sk_live_") and len(first) >= 8 + 43


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer sk_test_demo", "sk_test_demo"),
        ("bearer sk_test_demo", "sk_test_demo"),
        ("Bearer  sk_test_demo ", "sk_test_demo"),
        (None, None),
        ("", None),
        ("sk_test_demo", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer ", None),
        ("Bearer two words", None),
        ("Bearer caf\u00e9", None),
        ("Bearer " + "x" * 300, None),
    ],
)
def test_bearer_key_parsing(header: str | None, key: str | None) -> None:
    assert api_keys.bearer_key(header) == key


def test_uuid7_is_version_7_lowercase_and_time_ordered() -> None:
    ids = [clock.uuid7() for _ in range(50)]
    assert all(clock.is_uuid7(value) for value in ids)
    assert all(
        re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", v) for v in ids
    )
    assert [value[:13] for value in ids] == sorted(value[:13] for value in ids)


@pytest.mark.parametrize(
    "text",
    [
        "0193F2D4-5B6C-7D8E-9F01-23456789ABCD",
        "0193f2d4-5b6c-4d8e-9f01-23456789abcd",
        "0193f2d45b6c7d8e9f0123456789abcd",
        "not-a-uuid",
        "",
    ],
)
def test_is_uuid7_refuses_other_forms(text: str) -> None:
    assert not clock.is_uuid7(text)


def test_iso_format_has_milliseconds_and_z() -> None:
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 22, 17, 40, 5, 123456, tzinfo=UTC)
    assert clock.to_iso(moment) == "2026-11-22T17:40:05.123Z"
    assert clock.from_iso("2026-11-22T17:40:05.123Z") == moment.replace(microsecond=123000)
