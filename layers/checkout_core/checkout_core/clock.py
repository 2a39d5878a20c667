"""Time in the API's format: ISO 8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def uuid7() -> str:
    """A UUID version 7 (RFC 9562): 48-bit Unix time in ms, then random bits; sorts by creation time."""
    return uuid7_from(time.time_ns() // 1_000_000, secrets.token_bytes(10))


def uuid7_from(unix_ms: int, entropy: bytes) -> str:
    """The UUIDv7 of a moment and 10 bytes standing for its random bits: the same inputs give the same id."""
    random_bits = int.from_bytes(entropy[:10], "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((random_bits >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= random_bits & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def is_uuid7(text: str) -> bool:
    try:
        parsed = uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return False
    return parsed.version == 7 and str(parsed) == text


__all__ = ["from_epoch", "from_iso", "is_uuid7", "to_iso", "utc_now", "uuid7", "uuid7_from"]
