"""moto's SQS, quicker where it walks every message of a queue for nothing (installed by the runtime and the
bench; the answers are moto's own)."""

from __future__ import annotations

from typing import Any


def install() -> None:
    """moto's SQS reads a queue's whole attribute map (whose message counts walk every message) to check one
    setting of it, up to four times per message sent and once per message received: a queue holding many
    messages (webhook retries waiting) made every call cost more. While a message is sent, the map holds
    the one setting sending reads; a received message's retention is read directly. Same answers, no walk."""
    import threading

    from moto.core.utils import unix_time
    from moto.sqs.models import Queue, SQSBackend

    backend: Any = SQSBackend
    queue_class: Any = Queue
    if getattr(backend, "_checkout_quickened", False):
        return
    all_attributes = queue_class.attributes.fget
    sending = threading.local()

    def attributes(self: Any) -> dict[str, Any]:
        if not getattr(sending, "active", False):
            return all_attributes(self)
        if not self.fifo_queue:
            return {}
        value = self.content_based_deduplication
        return {"ContentBasedDeduplication": str(value).lower() if isinstance(value, bool) else value}

    def while_sending(send: Any) -> Any:
        def sends(self: Any, *args: Any, **kwargs: Any) -> Any:
            before = getattr(sending, "active", False)
            sending.active = True
            try:
                return send(self, *args, **kwargs)
            finally:
                sending.active = before

        return sends

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = self.get_queue(queue_name).message_retention_period
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    queue_class.attributes = property(attributes)
    backend.send_message = while_sending(backend.send_message)
    backend.send_message_batch = while_sending(backend.send_message_batch)
    backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    backend._checkout_quickened = True
