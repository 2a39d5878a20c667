"""The EventBridge Pipe of the sessions table, locally: stream -> filter -> enrichment -> event bus.

One thread reads the table's DynamoDB stream shard in order (so the events of a session are published in
their sequence), keeps the records that match the Pipe's filter (new `entity = EVENT` items), hands them in
batches to the enrichment function (`PublishEventsFunction`: stream records in, Event dicts out) and puts each
Event on the bus with source `checkout.sessions` and detail-type = the Event's `type`. A batch whose
enrichment or PutEvents fails is retried, with backoff, before anything after it, as the Pipe does; past
the Pipe's MaximumRetryAttempts it is dropped with an error line (where the Pipe uses its dead-letter
queue). Without enrichment code the batch is skipped with a log line.

When the template has an `AWS::Pipes::Pipe` reading this stream, its enrichment, filter patterns, batch size
and EventBridge target `Source` / static `DetailType` are used instead of the defaults.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.events.models import EventPattern

from local import cfn
from local.functions import FunctionCodeMissing, FunctionError, FunctionSpec, RuntimeStopping

log = logging.getLogger("local.streams")
READ_LIMIT = 100  # records per GetRecords: a pass stays short, so a stop is noticed within one

EVENT_SOURCE = "checkout.sessions"
DEFAULT_ENRICHMENT = "PublishEventsFunction"
DEFAULT_FILTER = json.dumps({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["EVENT"]}}}})
PUT_EVENTS_LIMIT = 10


@dataclass(frozen=True)
class PipeConfig:
    enrichment_id: str | None
    filters: tuple[str, ...] = (DEFAULT_FILTER,)
    batch_size: int = 10
    source: str = EVENT_SOURCE
    detail_type: str | None = None  # None: the Event's `type`
    max_retries: int = -1  # -1: until it succeeds

    def matches(self, record: dict[str, Any]) -> bool:
        event: Any = record
        return any(EventPattern.load(pattern).matches_event(event) for pattern in self.filters)

    def entry(self, event: dict[str, Any], bus_name: str) -> dict[str, Any]:
        return {
            "Source": self.source,
            "DetailType": self.detail_type or str(event["type"]),
            "Detail": json.dumps(event),
            "EventBusName": bus_name,
        }


def pipe_config(
    stream_arn: str,
    specs: dict[str, FunctionSpec],
    resolver: cfn.Resolver,
    template: dict[str, Any] | None = None,
) -> PipeConfig:
    """The template's Pipe reading `stream_arn` (resolved through `resolver`), or the default one."""
    by_arn = {spec.arn: spec.logical_id for spec in specs.values()}
    for logical_id, pipe in cfn.resources("AWS::Pipes::Pipe", template).items():
        properties = pipe.get("Properties", {})
        try:
            source = resolver.resolve(properties.get("Source"))
        except KeyError:
            continue
        if source != stream_arn:
            continue
        enrichment = properties.get("Enrichment")
        enrichment_id = by_arn.get(str(resolver.resolve(enrichment))) if enrichment is not None else None
        if enrichment is not None and enrichment_id is None:
            raise ValueError(f"{logical_id}: enrichment {enrichment} is not a function of the template")
        source_parameters = properties.get("SourceParameters", {})
        filters = tuple(
            item["Pattern"] for item in source_parameters.get("FilterCriteria", {}).get("Filters", [])
        )
        stream_parameters = source_parameters.get("DynamoDBStreamParameters", {})
        target = properties.get("TargetParameters", {}).get("EventBridgeEventBusParameters", {})
        detail_type = target.get("DetailType")
        return PipeConfig(
            enrichment_id=enrichment_id,
            filters=filters or ("{}",),
            batch_size=int(stream_parameters.get("BatchSize", 1)),
            source=str(target.get("Source", EVENT_SOURCE)),
            detail_type=None if detail_type is None or str(detail_type).startswith("$") else str(detail_type),
            max_retries=int(stream_parameters.get("MaximumRetryAttempts", -1)),
        )
    return PipeConfig(enrichment_id=DEFAULT_ENRICHMENT if DEFAULT_ENRICHMENT in specs else None)


def pipe_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as a Pipe (or Lambda) delivers it: epoch seconds, binary as base64, source ARN."""

    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return int(value.timestamp())
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode("ascii")
        raise TypeError(f"cannot serialise {type(value).__name__}")

    return {**json.loads(json.dumps(record, default=default)), "eventSourceARN": stream_arn}


class StreamPublisher:
    def __init__(
        self,
        streams_client: Any,
        events_client: Any,
        stream_arn: str,
        bus_name: str,
        config: PipeConfig,
        enrich: Callable[[str, Any], Any] | None,
        poll_interval: float = 0.1,
        max_backoff: float = 5.0,
        consumed: Callable[[str], None] | None = None,
    ) -> None:
        """`enrich(function_logical_id, records)` invokes the enrichment function; `consumed(sequence)` is
        told each time every record up to `sequence` has been handled (published or dropped)."""
        self.streams = streams_client
        self.events = events_client
        self.stream_arn = stream_arn
        self.bus_name = bus_name
        self.config = config
        self.enrich = enrich
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.consumed = consumed
        self.published = 0
        self._shard_id = ""
        self._last_sequence: str | None = None
        self._pending: list[dict[str, Any]] = []
        self._seen: deque[str] = deque(maxlen=10_000)
        self._seen_set: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_missing = False
        self._failures = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self._shard_id = self._only_shard()
        self._thread = threading.Thread(target=self._run, name="stream-publisher", daemon=True)
        self._thread.start()
        log.info(
            "publishing %s to bus %s via %s",
            self.stream_arn.rsplit("/stream/", 1)[0].rsplit("/", 1)[-1],
            self.bus_name,
            self.config.enrichment_id or "no enrichment",
        )

    def stop(self, timeout: float = 2.0) -> None:
        """Stops the reader after a last pass, so that events committed just before the stop are published.
        Reads are small (READ_LIMIT records), so the reader notices the stop soon; a backlog left beyond
        the last pass is not published (the timeline has it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the stream publisher is still running after %g s", timeout)
                return
        try:
            self.poll_once()
        except Exception:
            log.exception("last pass of the stream publisher failed")

    def _only_shard(self) -> str:
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        if len(shards) != 1:
            raise RuntimeError(f"expected one stream shard, found {len(shards)}")
        return str(shards[0]["ShardId"])

    def _iterator(self) -> str:
        """A fresh iterator after the last record read. Not NextShardIterator: when a TransactWriteItems is
        cancelled, moto puts back a copy of the table made before it, stream shard included, and iterators
        of the old shard never see another record. A new iterator always reads the table's current shard."""
        position: dict[str, str] = (
            {"ShardIteratorType": "TRIM_HORIZON"}
            if self._last_sequence is None
            else {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._last_sequence}
        )
        return str(
            self.streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=self._shard_id, **position)[
                "ShardIterator"
            ]
        )

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.wait(backoff or self.poll_interval):
            try:
                while self.poll_once() and not self._stop.is_set():
                    pass
                backoff = 0.0
            except RuntimeStopping:  # the records stay in the stream (the timeline has them)
                return
            except Exception:
                backoff = min(self.max_backoff, max(0.2, backoff * 2))
                log.exception("publishing stream records failed; retrying in %.1f s", backoff)

    def poll_once(self) -> int:
        """Reads the next records and publishes what matches; returns how many records were read.
        Raises when the enrichment or PutEvents fails; the same records are tried again on the next call."""
        with self._lock:
            if not self._pending:
                answer = self.streams.get_records(ShardIterator=self._iterator(), Limit=READ_LIMIT)
                if answer["Records"]:
                    self._last_sequence = max(
                        (r["dynamodb"]["SequenceNumber"] for r in answer["Records"]), key=int
                    )
                self._pending = [
                    pipe_record(record, self.stream_arn)
                    for record in answer["Records"]
                    if record["eventID"] not in self._seen_set
                ]
                read = len(answer["Records"])
            else:
                read = len(self._pending)
            while self._pending:
                batch = self._pending[: self.config.batch_size]
                try:
                    self._publish(batch)
                    self._failures = 0
                except Exception:
                    self._failures += 1
                    if not 0 <= self.config.max_retries < self._failures:
                        raise
                    log.exception(
                        "dropping %d stream records after %d attempts (the Pipe would dead-letter them)",
                        len(batch),
                        self._failures,
                    )
                    self._failures = 0
                for record in batch:
                    self._remember(record["eventID"])
                del self._pending[: len(batch)]
            if read and self.consumed is not None and self._last_sequence is not None:
                self.consumed(self._last_sequence)
            return read

    def _remember(self, event_id: str) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(event_id)
        self._seen_set.add(event_id)

    def _skip(self, message: str) -> None:
        if not self._warned_missing:
            log.warning(message)
            self._warned_missing = True

    def _publish(self, records: list[dict[str, Any]]) -> None:
        matching = [record for record in records if self.config.matches(record)]
        if not matching:
            return
        if self.config.enrichment_id is None or self.enrich is None:
            self._skip(f"{len(matching)} events are not published: no enrichment function in the template")
            return
        try:
            events = self.enrich(self.config.enrichment_id, matching)
        except FunctionCodeMissing as exc:
            self._skip(f"events are not published: {exc}")
            return
        except RuntimeStopping:
            raise
        except FunctionError as exc:
            raise RuntimeError(f"enrichment failed: {exc}\n{exc.stack}") from exc
        if events is None:
            return
        events = [events] if isinstance(events, dict) else events
        if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
            raise RuntimeError("the enrichment must answer a list of Event objects")
        entries = [self.config.entry(event, self.bus_name) for event in events]
        for start in range(0, len(entries), PUT_EVENTS_LIMIT):
            chunk = entries[start : start + PUT_EVENTS_LIMIT]
            answer = self.events.put_events(Entries=chunk)
            if answer.get("FailedEntryCount"):
                failed = [e for e in answer["Entries"] if e.get("ErrorCode")]
                raise RuntimeError(f"PutEvents failed for {len(failed)} entries: {failed[:1]}")
            self.published += len(chunk)
            for event in chunk:
                log.debug("published %s %s", event["DetailType"], event["Detail"][:200])
