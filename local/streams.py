"""The EventBridge Pipe of the sessions table, locally: stream -> filter -> enrichment -> event bus.

One thread reads the table's DynamoDB stream shard in order, keeps the records that match the Pipe's filter
(new `entity = EVENT` items) and, as the Pipe's ParallelizationFactor allows, splits them in lanes by
partition key (so the events of a session are published in their sequence, lanes side by side), handing
each lane in batches to the enrichment function (`PublishEventsFunction`: stream records in, Event dicts
out) and puts each Event on the bus with source `checkout.sessions` and detail-type = the Event's `type`. A
batch whose enrichment or PutEvents fails is retried, with backoff, before anything after it in its lane,
as the Pipe does; past the Pipe's MaximumRetryAttempts it is dropped with an error line (where the Pipe
uses its dead-letter queue). Without enrichment code the batch is skipped with a log line.

When the template has `AWS::Pipes::Pipe`s reading this stream, each is run by its own reader (as each Pipe
reads the stream on its own), with its enrichment, filter patterns and batch size, and its target: the event
bus (`Source` / static `DetailType`) or an SQS queue, each Event sent as one message shaped by the target's
`InputTemplate` (`<aws.pipes.event.json>`, `<$.path>`), with its `MessageGroupId` / `MessageDeduplicationId`
static or a dynamic `$.path` of the Event.

The runtime's readers ask moto's backend in this process (`MotoStreams`) rather than its server: GetRecords
of a hundred records with both images took moto ~50 ms of the runtime's one core to serialise, for each
Pipe, and botocore in the same process parsed them back. Each reader waits for its table's stream to grow
(moto's shards, in this process, tell of every record added), not for a fixed interval.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import threading
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.events.models import EventPattern

from local import atomic_dynamodb, cfn
from local.functions import FunctionCodeMissing, FunctionError, FunctionSpec, RuntimeStopping
from local.queues import Changes

log = logging.getLogger("local.streams")
READ_LIMIT = 100  # records per GetRecords: a pass stays short, so a stop is noticed within one

EVENT_SOURCE = "checkout.sessions"
DEFAULT_ENRICHMENT = "PublishEventsFunction"
DEFAULT_FILTER = json.dumps({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["EVENT"]}}}})
PUT_EVENTS_LIMIT = 10


SEND_MESSAGE_BATCH_LIMIT = 10
_TEMPLATE_VARIABLE = re.compile(r"<(aws\.pipes\.event\.json|aws\.pipes\.event|\$[^<>]*)>")


@functools.lru_cache(maxsize=64)
def _pattern(text: str) -> EventPattern:
    """A filter pattern, parsed once: each reader matches every record of the stream against its own."""
    return EventPattern.load(text)


def _projection(pattern: Any, value: Any) -> Any:
    """The parts of `value` that `pattern` names: matching them alone answers as matching all of `value`.
    The whole of `value` where the pattern is not a plain tree of names (`$or`, an empty pattern)."""
    if not isinstance(pattern, dict) or not pattern or "$or" in pattern or not isinstance(value, dict):
        return value
    return {key: _projection(rule, value[key]) for key, rule in pattern.items() if key in value}


def _plain(value: Any) -> Any:
    """A value of moto's stream records as JSON has it: epoch seconds, binary as base64."""
    if isinstance(value, datetime):  # moto's own records hold naive UTC times
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _path_value(event: dict[str, Any], path: str) -> Any:
    """The value at a dot path (`$.a.b`) of the Event."""
    value: Any = event
    for part in path.removeprefix("$").strip(".").split("."):
        if part:
            value = value[part]
    return value


def _dynamic(value: str | None, event: dict[str, Any]) -> str | None:
    """A target parameter: a whole-value JSON path (`$.sessionId`) is read from the Event, else static."""
    if value is None:
        return None
    return str(_path_value(event, value)) if value.startswith("$.") else value


@dataclass(frozen=True)
class PipeConfig:
    enrichment_id: str | None
    filters: tuple[str, ...] = (DEFAULT_FILTER,)
    batch_size: int = 10
    parallelization: int = 1  # batches of the shard published side by side, one partition key in one lane
    source: str = EVENT_SOURCE
    detail_type: str | None = None  # None: the Event's `type`
    max_retries: int = -1  # -1: until it succeeds
    name: str = "EventsPipe"
    queue_url: str | None = None  # an SQS target; None: the event bus
    input_template: str | None = None
    message_group: str | None = None
    deduplication_id: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """The record matches one of the filters. Each filter sees only the parts of the record it names,
        as a Pipe delivers them: every record of the stream is matched, most of them whole items that no
        filter looks into."""
        for text in self.filters:
            pattern = _pattern(text)
            seen = json.loads(json.dumps(_projection(pattern.get_pattern(), record), default=_plain))
            if pattern.matches_event(seen):
                return True
        return False

    def body(self, event: dict[str, Any]) -> str:
        """The message an SQS target receives: the Event, or the target's InputTemplate filled with it."""
        if self.input_template is None:
            return json.dumps(event)

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            value = event if name.startswith("aws.pipes.event") else _path_value(event, name)
            return value if isinstance(value, str) and name.startswith("$") else json.dumps(value)

        return _TEMPLATE_VARIABLE.sub(fill, self.input_template)

    def message(self, event: dict[str, Any], index: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": self.body(event)}
        group = _dynamic(self.message_group, event)
        deduplication = _dynamic(self.deduplication_id, event)
        if group is not None:
            entry["MessageGroupId"] = group
        if deduplication is not None:
            entry["MessageDeduplicationId"] = deduplication
        return entry

    def entry(self, event: dict[str, Any], bus_name: str) -> dict[str, Any]:
        return {
            "Source": self.source,
            "DetailType": self.detail_type or str(event["type"]),
            "Detail": json.dumps(event),
            "EventBusName": bus_name,
        }


def pipe_configs(
    stream_arn: str,
    specs: dict[str, FunctionSpec],
    resolver: cfn.Resolver,
    template: dict[str, Any] | None = None,
) -> list[PipeConfig]:
    """The template's Pipes reading `stream_arn` (resolved through `resolver`), or the default one."""
    by_arn = {spec.arn: spec.logical_id for spec in specs.values()}
    queue_by_arn = {
        arn: resolver.refs[key.removesuffix(".Arn")]
        for key, arn in resolver.attributes.items()
        if key.endswith(".Arn") and str(arn).startswith("arn:aws:sqs:")
    }
    configs = []
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
        target_parameters = properties.get("TargetParameters", {})
        bus = target_parameters.get("EventBridgeEventBusParameters", {})
        sqs = target_parameters.get("SqsQueueParameters", {})
        detail_type = bus.get("DetailType")
        target = str(resolver.resolve(properties.get("Target")))
        queue_url = queue_by_arn.get(target)
        if target.startswith("arn:aws:sqs:") and queue_url is None:
            raise ValueError(f"{logical_id}: target {target} is not a queue of the template")
        configs.append(
            PipeConfig(
                enrichment_id=enrichment_id,
                filters=filters or ("{}",),
                batch_size=int(stream_parameters.get("BatchSize", 1)),
                parallelization=int(stream_parameters.get("ParallelizationFactor", 1)),
                source=str(bus.get("Source", EVENT_SOURCE)),
                detail_type=None
                if detail_type is None or str(detail_type).startswith("$")
                else str(detail_type),
                max_retries=int(stream_parameters.get("MaximumRetryAttempts", -1)),
                name=logical_id,
                queue_url=queue_url,
                input_template=target_parameters.get("InputTemplate"),
                message_group=sqs.get("MessageGroupId"),
                deduplication_id=sqs.get("MessageDeduplicationId"),
            )
        )
    if configs:
        return configs
    return [PipeConfig(enrichment_id=DEFAULT_ENRICHMENT if DEFAULT_ENRICHMENT in specs else None)]


def pipe_config(
    stream_arn: str,
    specs: dict[str, FunctionSpec],
    resolver: cfn.Resolver,
    template: dict[str, Any] | None = None,
) -> PipeConfig:
    """The Pipe that publishes `stream_arn` to the event bus."""
    configs = pipe_configs(stream_arn, specs, resolver, template)
    return next((config for config in configs if config.queue_url is None), configs[0])


def pipe_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as a Pipe (or Lambda) delivers it: epoch seconds, binary as base64, source ARN."""
    return {**json.loads(json.dumps(record, default=_plain)), "eventSourceARN": stream_arn}


APPENDS = Changes()  # per table name, moved by every record added to its stream
_installed = False


def install_wake_ups() -> None:
    """Makes moto's stream shards report every record added to APPENDS (once per process)."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models.table import StreamShard

    add = StreamShard.add

    def added(self: Any, old: Any, new: Any) -> None:
        add(self, old, new)
        APPENDS.moved(self.table.name)

    StreamShard.add = added  # type: ignore[method-assign]
    _installed = True


def table_of(stream_arn: str) -> str:
    """`arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>` -> `<name>`."""
    return stream_arn.split(":table/", 1)[1].split("/stream/", 1)[0]


class MotoStreams:
    """The DynamoDB Streams calls a reader makes, answered by the moto backend of this process: the
    records GetRecords would return, not serialised to JSON and parsed back. moto never changes a record
    once it is made, so they are handed out as they are (the reader copies what it keeps)."""

    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region

    def _backend(self) -> Any:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        return dynamodbstreams_backends[self.account_id][self.region]

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:  # boto3's parameter names
        with atomic_dynamodb.exclusive():
            return {"StreamDescription": self._backend().describe_stream(StreamArn)}

    def get_shard_iterator(
        self,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> dict[str, Any]:
        sequence = int(SequenceNumber) if SequenceNumber is not None else None
        with atomic_dynamodb.exclusive():
            iterator = self._backend().get_shard_iterator(StreamArn, ShardId, ShardIteratorType, sequence)
            return {"ShardIterator": iterator.arn}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        with atomic_dynamodb.exclusive():
            return {"Records": self._backend().get_records(ShardIterator, Limit)["Records"]}


class StreamPublisher:
    def __init__(
        self,
        streams_client: Any,
        events_client: Any,
        stream_arn: str,
        bus_name: str,
        config: PipeConfig,
        enrich: Callable[[str, Any], Any] | None,
        poll_interval: float = 0.1,  # the longest wait for a record; with wake-ups installed, a fallback
        max_backoff: float = 5.0,
        consumed: Callable[[str], None] | None = None,
        sqs_client: Any = None,
        read_lock: Any = None,
    ) -> None:
        """`enrich(function_logical_id, records)` invokes the enrichment function; `consumed(sequence)` is
        told each time every record up to `sequence` has been handled (published or dropped).
        `sqs_client` sends to the target of a Pipe whose target is a queue. Readers of one stream share a
        `read_lock`, held while an iterator is made and read: trimming the stream (`consumed`) drops the
        iterators handed out, so it takes the same lock."""
        self.streams = streams_client
        self.events = events_client
        self.sqs = sqs_client
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
        self._failures: dict[str, int] = {}  # attempts of a batch that failed, by its first record
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()  # what lanes published side by side share
        self._hash_key = ""
        self._lane_pool = ThreadPoolExecutor(config.parallelization, thread_name_prefix=f"pipe-{config.name}")
        self._read_lock = read_lock or threading.Lock()

    def start(self) -> None:
        self._shard_id = self._only_shard()
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.config.name}", daemon=True)
        self._thread.start()
        log.info(
            "%s: %s to %s via %s",
            self.config.name,
            self.stream_arn.rsplit("/stream/", 1)[0].rsplit("/", 1)[-1],
            (self.config.queue_url or "").rsplit("/", 1)[-1] or f"bus {self.bus_name}",
            self.config.enrichment_id or "no enrichment",
        )

    def stop(self, timeout: float = 2.0) -> None:
        """Stops the reader after a last pass, so that events committed just before the stop are published.
        Reads are small (READ_LIMIT records), so the reader notices the stop soon; a backlog left beyond
        the last pass is not published (the timeline has it)."""
        self._stop.set()
        APPENDS.moved(table_of(self.stream_arn))  # wakes the reader if it waits for a record
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the stream publisher is still running after %g s", timeout)
                return
        try:
            self.poll_once()
        except Exception:
            log.exception("last pass of the stream publisher failed")
        self._lane_pool.shutdown(wait=False)

    def _only_shard(self) -> str:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        self._hash_key = next(
            (key["AttributeName"] for key in description.get("KeySchema", []) if key["KeyType"] == "HASH"), ""
        )
        shards = description["Shards"]
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
        table = table_of(self.stream_arn)
        while not self._stop.is_set():
            seen = APPENDS.count(table)  # before the read: a record added after it wakes the wait below
            try:
                while self.poll_once() and not self._stop.is_set():
                    pass
                backoff = 0.0
            except RuntimeStopping:  # the records stay in the stream (the timeline has them)
                return
            except Exception:
                backoff = min(self.max_backoff, max(0.2, backoff * 2))
                log.exception("publishing stream records failed; retrying in %.1f s", backoff)
            if backoff:
                self._stop.wait(backoff)
            else:
                APPENDS.wait(table, seen, self.poll_interval, self._stop)

    def poll_once(self) -> int:
        """Reads the next records and publishes what matches; returns how many records were read.
        Raises when the enrichment or PutEvents fails; the same records are tried again on the next call."""
        with self._lock:
            if not self._pending:
                with self._read_lock:
                    answer = self.streams.get_records(ShardIterator=self._iterator(), Limit=READ_LIMIT)
                if answer["Records"]:
                    self._last_sequence = max(
                        (r["dynamodb"]["SequenceNumber"] for r in answer["Records"]), key=int
                    )
                # Filtered before batching, as a Pipe does: a batch is `batch_size` matching records.
                self._pending = [
                    pipe_record(record, self.stream_arn)
                    for record in answer["Records"]
                    if record["eventID"] not in self._seen_set
                    and self.config.matches({**record, "eventSourceARN": self.stream_arn})
                ]
                read = len(answer["Records"])
            else:
                read = len(self._pending)
            lanes = self._lanes(self._pending)
            if len(lanes) == 1:
                self._drain(lanes[0])
            else:
                outcomes = list(self._lane_pool.map(self._drain_or_fail, lanes))
                self._pending = [record for lane in lanes for record in lane]
                failure = next((outcome for outcome in outcomes if outcome is not None), None)
                if failure is not None:
                    raise failure
            if read and self.consumed is not None and self._last_sequence is not None:
                self.consumed(self._last_sequence)
            return read

    def _lanes(self, records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The records in up to ParallelizationFactor lanes by partition key, each in stream order: one
        item collection (one session) stays in one lane, so in order, while lanes are published side by
        side. As few lanes as there are batches."""
        count = min(self.config.parallelization, -(-len(records) // self.config.batch_size))
        if count <= 1:
            return [records]
        lanes: list[list[dict[str, Any]]] = [[] for _ in range(count)]
        for record in records:
            key = json.dumps(record["dynamodb"]["Keys"].get(self._hash_key), sort_keys=True)
            lanes[zlib.crc32(key.encode()) % count].append(record)
        return [lane for lane in lanes if lane]

    def _drain_or_fail(self, records: list[dict[str, Any]]) -> Exception | None:
        try:
            self._drain(records)
        except Exception as exc:
            return exc
        return None

    def _drain(self, records: list[dict[str, Any]]) -> None:
        """Publishes `records` batch by batch, removing each batch once published (or dropped); raises at
        the first batch that fails and may be retried, which stays at the head."""
        while records:
            batch = records[: self.config.batch_size]
            head = batch[0]["eventID"]
            try:
                self._publish(batch)
                with self._state_lock:
                    self._failures.pop(head, None)
            except Exception:
                with self._state_lock:
                    failures = self._failures[head] = self._failures.get(head, 0) + 1
                if not 0 <= self.config.max_retries < failures:
                    raise
                log.exception(
                    "dropping %d stream records after %d attempts (the Pipe would dead-letter them)",
                    len(batch),
                    failures,
                )
                with self._state_lock:
                    self._failures.pop(head, None)
            with self._state_lock:
                for record in batch:
                    self._remember(record["eventID"])
            del records[: len(batch)]

    def _remember(self, event_id: str) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(event_id)
        self._seen_set.add(event_id)

    def _skip(self, message: str) -> None:
        if not self._warned_missing:
            log.warning(message)
            self._warned_missing = True

    def _publish(self, matching: list[dict[str, Any]]) -> None:
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
        if self.config.queue_url is not None:
            self._send(events)
            return
        entries = [self.config.entry(event, self.bus_name) for event in events]
        for start in range(0, len(entries), PUT_EVENTS_LIMIT):
            chunk = entries[start : start + PUT_EVENTS_LIMIT]
            answer = self.events.put_events(Entries=chunk)
            if answer.get("FailedEntryCount"):
                failed = [e for e in answer["Entries"] if e.get("ErrorCode")]
                raise RuntimeError(f"PutEvents failed for {len(failed)} entries: {failed[:1]}")
            with self._state_lock:
                self.published += len(chunk)
            for event in chunk:
                log.debug("published %s %s", event["DetailType"], event["Detail"][:200])

    def _send(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), SEND_MESSAGE_BATCH_LIMIT):
            chunk = events[start : start + SEND_MESSAGE_BATCH_LIMIT]
            answer = self.sqs.send_message_batch(
                QueueUrl=self.config.queue_url,
                Entries=[self.config.message(event, index) for index, event in enumerate(chunk)],
            )
            if answer.get("Failed"):
                raise RuntimeError(
                    f"SendMessageBatch failed for {len(answer['Failed'])} entries: {answer['Failed'][:1]}"
                )
            with self._state_lock:
                self.published += len(chunk)
