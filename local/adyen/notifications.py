"""Adyen's standard notifications: one item per request, signed with the SDK's own HMAC utility, checked
against Adyen's webhooks document, sent from a thread after a delay and retried until the receiver answers
`[accepted]`."""

from __future__ import annotations

import datetime
import heapq
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Adyen.util import generate_notification_sig

from local.adyen.openapi_check import OpenApiCheck

log = logging.getLogger("local.adyen")
ANSWER_TIMEOUT_SECONDS = 10  # Adyen waits 10 s for the receiver's answer


@dataclass(order=True)
class Notification:
    """One request to the receiver: usually one item, several where a test asks for a batch."""

    due: float
    seq: int
    items: list[dict[str, Any]] = field(compare=False)
    state: str = field(default="pending", compare=False)  # pending | sent | dropped | failed
    attempts: int = field(default=0, compare=False)
    last_answer: str = field(default="", compare=False)

    @property
    def event_code(self) -> str:
        return ",".join(dict.fromkeys(item["eventCode"] for item in self.items))

    @property
    def item(self) -> dict[str, Any]:
        return self.items[0]


class Notifier:
    def __init__(
        self,
        url: str | None,
        merchant_account: str,
        hmac_key: str,
        delay_seconds: float,
        attempts: int,
        check: OpenApiCheck,
        on_violation: Callable[[str, str], None],
    ) -> None:
        self.url, self.merchant_account, self.hmac_key = url, merchant_account, hmac_key
        self.delay_seconds, self.attempts = delay_seconds, attempts
        self._check, self._on_violation = check, on_violation
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._seq = itertools.count()
        self._stopping = False
        self.reset()
        threading.Thread(target=self._send_forever, name="adyen-notifications", daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.notifications: list[Notification] = []
            self._queue: list[Notification] = []
            self.drop_all = False
            self.drop_next = 0

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()

    def drop(self, what: bool | int) -> None:
        """Drop every notification from now on (True), none (False), or the next n."""
        with self._lock:
            if isinstance(what, bool):
                self.drop_all, self.drop_next = what, 0
            else:
                self.drop_all, self.drop_next = False, int(what)

    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [notification.state for notification in self.notifications]
        return {
            f"notifications{state.title()}": states.count(state)
            for state in ("sent", "dropped", "failed", "pending")
        }

    def listed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "eventCode": n.event_code,
                    "state": n.state,
                    "attempts": n.attempts,
                    "lastAnswer": n.last_answer,
                    "item": n.item,
                    "items": n.items,
                }
                for n in self.notifications
            ]

    def make(
        self,
        event: str,
        psp: str,
        original: str | None,
        reference: str,
        amount: dict[str, Any],
        success: bool,
        reason: str,
        extra: dict[str, Any] | None = None,
    ) -> Notification:
        """A signed NotificationRequestItem; `extra` adds fields (its `additionalData` beside the HMAC)."""
        extra = dict(extra or {})
        item: dict[str, Any] = {
            "amount": dict(amount),
            "eventCode": event,
            "eventDate": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "merchantAccountCode": self.merchant_account,
            "merchantReference": reference,
            "pspReference": psp,
            "reason": reason,
            "success": "true" if success else "false",
        }
        if original:
            item["originalReference"] = original
        additional = dict(extra.pop("additionalData", {}))
        item.update(extra)
        additional["hmacSignature"] = generate_notification_sig(item, self.hmac_key).decode()
        item["additionalData"] = additional
        return Notification(time.monotonic() + self.delay_seconds, next(self._seq), [item])

    def batch(self, notifications: list[Notification]) -> Notification:
        """Their items in one request, as Adyen may send them."""
        return Notification(notifications[0].due, next(self._seq), [n.item for n in notifications])

    def send_later(self, notification: Notification) -> None:
        with self._lock:
            self.notifications.append(notification)
            if self.drop_all or self.drop_next > 0 or not self.url:
                notification.state = "dropped"
                self.drop_next = max(0, self.drop_next - 1)
                return
            heapq.heappush(self._queue, notification)
            self._wake.notify_all()

    def send_now(self, notification: Notification) -> tuple[int, str]:
        """Sent at once (retried later if not accepted); the receiver's status and body."""
        with self._lock:
            self.notifications.append(notification)
        answer = self._deliver(notification)
        self._retry_later(notification)
        return answer

    def _deliver(self, notification: Notification) -> tuple[int, str]:
        wrapped = [{"NotificationRequestItem": item} for item in notification.items]
        for one in wrapped:  # each item against the document of its own event
            event = one["NotificationRequestItem"]["eventCode"]
            for error in self._check.notification_errors(
                event, {"live": "false", "notificationItems": [one]}
            ):
                self._on_violation("notificationViolations", f"{event}: {error}")
        body = {"live": "false", "notificationItems": wrapped}
        notification.attempts += 1
        request = urllib.request.Request(  # noqa: S310 - the configured receiver, usually the runtime on loopback
            str(self.url),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "Adyen HttpPost Notification Service"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT_SECONDS) as answer:  # noqa: S310
                status, text = answer.status, answer.read().decode(errors="replace")
        except urllib.error.HTTPError as refused:
            status, text = refused.code, refused.read().decode(errors="replace")
        except (OSError, ValueError) as failed:
            status, text = 0, str(failed)
        with self._lock:
            notification.last_answer = f"{status} {text[:200]}"
            if 200 <= status < 300 and text == "[accepted]":
                notification.state = "sent"
            elif notification.attempts >= self.attempts:
                notification.state = "failed"
                log.warning(
                    "Adyen notification %s given up: %s", notification.event_code, notification.last_answer
                )
        return status, text

    def _send_forever(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._queue or self._queue[0].due > time.monotonic()):
                    self._wake.wait(self._queue[0].due - time.monotonic() if self._queue else None)
                if self._stopping:
                    return
                notification = heapq.heappop(self._queue)
                if notification.state != "pending":
                    continue
            self._deliver(notification)
            self._retry_later(notification)

    def _retry_later(self, notification: Notification) -> None:
        """Not accepted yet: again after 1, 2, 4... seconds (Adyen retries for days; tests need seconds)."""
        with self._lock:
            if notification.state == "pending" and notification in self.notifications:
                notification.due = time.monotonic() + 2 ** (notification.attempts - 1)
                heapq.heappush(self._queue, notification)
                self._wake.notify_all()
