"""The template's SQS queues, rules and SQS event sources, locally, on moto's SQS.

Queues are created with their attributes (FIFO, visibility timeout, redrive to their dead-letter queue).
Rules of the event bus whose targets are all SQS queues are created in moto's EventBridge, which then
sends each matching event to its queue (with the target's FIFO message group). Each function event of
type `SQS` is polled as Lambda's event source mapping does: ReceiveMessage (long poll, up to BatchSize),
invoke the function with the batch, delete what it handled. With `ReportBatchItemFailures`, the messages
it names stay (they come back when their visibility ends, which the function may have changed); an
invocation that fails leaves the whole batch. Several pollers share a FIFO queue: SQS hands a message group
to one of them at a time, so each group stays in order while groups proceed side by side. (moto decides
which groups are taken when a ReceiveMessage starts, so two calls at once could split a group: the pollers
of one queue take turns to receive, and invoke side by side.)

A poller waits as a long poll does, without its fixed wait: moto's own long poll keeps the message groups
that were in flight when it started, so a group freed meanwhile waited out the whole poll. Here the queues
of moto's server (in this process) tell their pollers of every send, delete and visibility change; an empty
poller sleeps until then (or WAIT_SECONDS, for messages whose visibility or delay just ended) and receives
again at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local import cfn
from local.functions import FunctionCodeMissing, FunctionError, FunctionSpec, RuntimeStopping
from local.naming import ACCOUNT_ID, REGION

log = logging.getLogger("local.queues")

QUEUE_TYPE = "AWS::SQS::Queue"
WAIT_SECONDS = 1
_PASSED_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
)


def queue_name(local_name: str, properties: dict[str, Any]) -> str:
    return f"{local_name}.fifo" if str(properties.get("FifoQueue", "")).lower() == "true" else local_name


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def create_queues(sqs: Any, template: dict[str, Any], resolver: cfn.Resolver) -> dict[str, str]:
    """Creates every queue of the template; returns logical id -> queue URL."""
    queues = cfn.resources(QUEUE_TYPE, template)
    urls: dict[str, str] = {}
    for logical_id, resource in queues.items():
        properties = resource.get("Properties", {})
        attributes = {
            key: str(properties[key]).lower()
            if key in ("FifoQueue", "ContentBasedDeduplication")
            else str(properties[key])
            for key in _PASSED_ATTRIBUTES
            if key in properties
        }
        urls[logical_id] = sqs.create_queue(
            QueueName=resolver.attributes[f"{logical_id}.QueueName"], Attributes=attributes
        )["QueueUrl"]
    for logical_id, resource in queues.items():  # once every dead-letter queue exists
        redrive = resource.get("Properties", {}).get("RedrivePolicy")
        if redrive:
            policy = {
                "deadLetterTargetArn": resolver.resolve(redrive["deadLetterTargetArn"]),
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            }
            sqs.set_queue_attributes(
                QueueUrl=urls[logical_id], Attributes={"RedrivePolicy": json.dumps(policy)}
            )
    return urls


def create_rules(events: Any, template: dict[str, Any], resolver: cfn.Resolver, bus_name: str) -> list[str]:
    """The bus's rules whose every target is an SQS queue (moto's EventBridge delivers to those)."""
    created = []
    for logical_id, resource in cfn.resources("AWS::Events::Rule", template).items():
        properties = resource.get("Properties", {})
        if properties.get("EventBusName") is None or resolver.resolve(properties["EventBusName"]) != bus_name:
            continue
        targets = properties.get("Targets", [])
        arns = [str(resolver.resolve(target["Arn"])) for target in targets]
        if not targets or not all(arn.startswith("arn:aws:sqs:") for arn in arns):
            continue
        name = resolver.refs[logical_id]
        events.put_rule(
            Name=name,
            EventBusName=bus_name,
            EventPattern=json.dumps(properties["EventPattern"]),
            State=str(properties.get("State", "ENABLED")),
        )
        events.put_targets(
            Rule=name,
            EventBusName=bus_name,
            Targets=[
                {
                    "Id": target["Id"],
                    "Arn": arn,
                    **({"SqsParameters": target["SqsParameters"]} if "SqsParameters" in target else {}),
                }
                for target, arn in zip(targets, arns, strict=True)
            ],
        )
        created.append(name)
    return created


class Changes:
    """A counter per name (a queue, a table's stream), moved by every change a waiter may be waiting for."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._counts: dict[str, int] = {}

    def moved(self, name: str) -> None:
        with self._condition:
            self._counts[name] = self._counts.get(name, 0) + 1
            self._condition.notify_all()

    def count(self, name: str) -> int:
        with self._condition:
            return self._counts.get(name, 0)

    def wait(self, name: str, seen: int, timeout: float, stop: threading.Event) -> None:
        """Until `name` changed after `seen`, `stop` is set, or `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._counts.get(name, 0) == seen and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._condition.wait(min(left, 0.25))  # a stop is noticed within a quarter second


CHANGES = Changes()
_installed = False


def install_wake_ups() -> None:
    """Makes moto's queues report their changes to CHANGES (once per process)."""
    global _installed
    if _installed:
        return
    from moto.sqs.models import Queue, SQSBackend

    add_message, delete_message = Queue.add_message, Queue.delete_message
    change_visibility = SQSBackend.change_message_visibility

    def added(self: Any, message: Any) -> None:
        add_message(self, message)
        CHANGES.moved(self.name)

    def deleted(self: Any, receipt_handle: str) -> None:
        delete_message(self, receipt_handle)
        CHANGES.moved(self.name)

    def changed(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> None:
        change_visibility(self, queue_name, *args, **kwargs)
        CHANGES.moved(queue_name)

    Queue.add_message = added  # type: ignore[method-assign]
    Queue.delete_message = deleted  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = changed  # type: ignore[method-assign]
    _installed = True


@dataclass(frozen=True)
class EventSource:
    function_id: str
    queue_logical_id: str
    batch_size: int
    report_failures: bool


def event_sources(specs: dict[str, FunctionSpec], resolver: cfn.Resolver) -> list[EventSource]:
    by_arn = {
        arn: key.removesuffix(".Arn") for key, arn in resolver.attributes.items() if key.endswith(".Arn")
    }
    found = []
    for spec in specs.values():
        for event in spec.events.values():
            if event.get("Type") != "SQS":
                continue
            properties = event.get("Properties", {})
            found.append(
                EventSource(
                    function_id=spec.logical_id,
                    queue_logical_id=by_arn[str(resolver.resolve(properties["Queue"]))],
                    batch_size=int(properties.get("BatchSize", 10)),
                    report_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
                )
            )
    return found


class QueuePoller:
    """One event source mapping: `workers` threads receiving and invoking."""

    def __init__(
        self,
        sqs: Any,
        source: EventSource,
        queue_url: str,
        invoke: Callable[[str, Any], Any],
        workers: int = 1,
    ) -> None:
        self.sqs = sqs
        self.source = source
        self.queue_url = queue_url
        self.name = queue_url.rsplit("/", 1)[-1]
        self.arn = queue_arn(self.name)
        self.invoke = invoke
        self.workers = workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._receiving = threading.Lock()
        self.invocations = 0

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(
                target=self._run, name=f"sqs-{self.source.function_id}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info(
            "%s polls %s (%d at a time)",
            self.source.function_id,
            self.queue_url.rsplit("/", 1)[-1],
            self.workers,
        )

    def signal_stop(self) -> None:
        """Asks every worker to stop after its current receive or invocation."""
        self._stop.set()
        CHANGES.moved(self.name)  # wakes the workers that wait for a message

    def stop(self, timeout: float = WAIT_SECONDS + 2.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                self.poll_once()
                backoff = 0.0
            except Exception:
                if self._stop.is_set():
                    return
                backoff = min(5.0, max(0.2, backoff * 2))
                log.exception("polling %s failed; again in %.1f s", self.queue_url, backoff)
                self._stop.wait(backoff)

    def poll_once(self) -> int:
        with self._receiving:
            if self._stop.is_set():  # asked to stop while waiting for the other workers' receive
                return 0
            seen = CHANGES.count(self.name)
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.source.batch_size),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        messages = answer.get("Messages", [])
        if not messages:
            CHANGES.wait(self.name, seen, WAIT_SECONDS, self._stop)
            return 0
        records = [self._record(message) for message in messages]
        try:
            result = self.invoke(self.source.function_id, {"Records": records})
        except FunctionCodeMissing as exc:
            log.warning("%s", exc)
            time.sleep(1)
            return 0
        except RuntimeStopping:  # the messages stay in the queue, as after a crash
            return 0
        except FunctionError as exc:
            log.error(
                "%s failed on %d messages: %s\n%s", self.source.function_id, len(records), exc, exc.stack
            )
            return 0
        self.invocations += 1
        failed: set[str] = set()
        if self.source.report_failures and isinstance(result, dict):
            failed = {str(item.get("itemIdentifier")) for item in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        return len(messages)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": REGION,
        }
