"""Makes moto's DynamoDB apply each request atomically, as DynamoDB does.

moto's backend checks a condition and then writes without a lock, so two concurrent conditional
writes could both pass their checks. DynamoDB never allows that, and the service's correctness rests
on it; the emulator must not invent races the real service cannot have. Serialising moto's DynamoDB
request handling restores per-request atomicity (and atomicity of TransactWriteItems as a whole).
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()


def install() -> None:
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler, "_checkout_atomic", False):
        return
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoHandler._checkout_atomic = True  # type: ignore[attr-defined]
