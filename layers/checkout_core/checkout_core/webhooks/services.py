"""What the webhook capabilities work with: the store, the queue, the sender, the clock and the settings.
Each is made on first use; tests pass their own (a clock to move, a receiver on loopback)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from checkout_core.clock import utc_now
from checkout_core.settings import Settings, get_settings
from checkout_core.webhooks.queue import DeliveryQueue
from checkout_core.webhooks.sender import Answer, post
from checkout_core.webhooks.store import WebhookStore

Sender = Callable[[str, dict[str, str], str, bool], Answer]


@dataclass
class WebhookServices:
    settings: Settings = field(default_factory=get_settings)
    clock: Callable[[], datetime] = utc_now
    send: Sender = post
    rng: random.Random = field(default_factory=random.SystemRandom)
    store: WebhookStore | None = None
    queue: DeliveryQueue | None = None

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = WebhookStore(self.settings.table_name)
        if self.queue is None:
            self.queue = DeliveryQueue(self.settings.webhook_queue_url)

    @property
    def now(self) -> int:
        return int(self.clock().timestamp())

    @property
    def db(self) -> WebhookStore:
        assert self.store is not None
        return self.store

    @property
    def messages(self) -> DeliveryQueue:
        assert self.queue is not None
        return self.queue


@cache
def get_services() -> WebhookServices:
    return WebhookServices()
