"""Makes moto's DynamoDB apply each request atomically, as DynamoDB does.

moto's backend checks a condition and then writes without a lock, so two concurrent conditional
writes could both pass their checks; and a TransactWriteItems that fails a condition rolls back by
putting back a copy of the whole table taken before it started, undoing writes made meanwhile and
replacing the stream's shard. DynamoDB never allows any of that, and the service's correctness rests
on it; the emulator must not invent races the real service cannot have. Serialising moto's DynamoDB
and DynamoDB Streams request handling restores per-request atomicity. It applies in-process (mock_aws)
and to moto's server alike, which dispatches to the same handlers. Other services are not serialised:
a Step Functions task may call DynamoDB while its own request is open.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()


def install() -> None:
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    handler: Any
    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        if getattr(handler, "_checkout_atomic", False):
            continue
        handler.call_action = _serialised(handler.call_action)
        handler._checkout_atomic = True


def _serialised(call_action: Any) -> Any:
    def serialised_call_action(self: Any) -> Any:
        with _lock:
            return call_action(self)

    return serialised_call_action
