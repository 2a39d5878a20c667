"""The template's `Schedule` / `ScheduleV2` function events, run locally every SWEEP_INTERVAL_SECONDS.

The schedule expression itself (e.g. `rate(1 minute)`) is not used: locally one interval drives every
schedule, so that tests and demos can make the expiry job run often. Like EventBridge, the first run comes
one interval after start; a run that takes longer than the interval delays the next one rather than
overlapping it.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.functions import FunctionCodeMissing, FunctionError, FunctionSpec, RuntimeStopping
from local.naming import ACCOUNT_ID, REGION

log = logging.getLogger("local.scheduler")

SCHEDULE_TYPES = ("Schedule", "ScheduleV2")


@dataclass(frozen=True)
class Schedule:
    function_id: str
    event_name: str
    event_type: str
    expression: str
    input: str | None = None

    @property
    def resource_arn(self) -> str:
        name = f"{self.function_id}{self.event_name}"
        if self.event_type == "ScheduleV2":
            return f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{name}"
        return f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{name}"

    def event(self, now: datetime | None = None) -> Any:
        """What the function receives: the event's `Input` if it has one, else a scheduled event."""
        if self.input is not None:
            return json.loads(self.input)
        now = now or datetime.now(UTC)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [self.resource_arn],
            "detail": {},
        }


def schedules(specs: dict[str, FunctionSpec]) -> list[Schedule]:
    found: list[Schedule] = []
    for spec in specs.values():
        for event_name, event in spec.events.items():
            if event.get("Type") not in SCHEDULE_TYPES:
                continue
            properties = event.get("Properties", {})
            if properties.get("Enabled") is False or str(properties.get("State", "ENABLED")) == "DISABLED":
                continue
            found.append(
                Schedule(
                    function_id=spec.logical_id,
                    event_name=event_name,
                    event_type=event["Type"],
                    expression=str(properties.get("ScheduleExpression") or properties.get("Schedule", "")),
                    input=properties.get("Input"),
                )
            )
    return found


class Scheduler:
    """One thread per schedule, invoking its function every `interval_seconds` until stopped."""

    def __init__(
        self,
        entries: list[Schedule],
        invoke: Callable[[str, Any, str], Any],
        interval_seconds: float,
    ) -> None:
        self.entries = entries
        self.invoke = invoke
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for entry in self.entries:
            thread = threading.Thread(
                target=self._run, args=(entry,), name=f"schedule-{entry.function_id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
            log.info(
                "%s (%s) runs every %g s locally", entry.function_id, entry.expression, self.interval_seconds
            )

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s is still running after %g s", thread.name, timeout)

    def run_all_once(self) -> None:
        """Every schedule now, once (after a restart, to resume what was due)."""
        for entry in self.entries:
            if not self._stop.is_set():
                self.run_once(entry)

    def run_once(self, entry: Schedule) -> bool:
        request_id = str(uuid.uuid4())
        try:
            self.invoke(entry.function_id, entry.event(), request_id)
        except FunctionCodeMissing as exc:
            log.warning("schedule skipped: %s", exc)
            return False
        except RuntimeStopping:
            return False
        except FunctionError as exc:
            log.error("scheduled run of %s failed: %s\n%s", entry.function_id, exc, exc.stack)
            return False
        return True

    def _run(self, entry: Schedule) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.run_once(entry)
