"""Keeps the emulated DynamoDB tables between runs, in LOCAL_STATE_DIR.

Two files: `snapshot.jsonl` (every item of every table, one per line) and `journal.jsonl` (after each write
request, the new image of every item it touched, or its deletion). A journal line is written when its
request commits and the file is fsynced every second, so a stop by SIGKILL loses at most the last second of
writes. The snapshot is replaced atomically (written aside, fsynced, renamed); the journal is replayed over
it on start (images, so replaying twice changes nothing) and a torn last line, the one write a kill can
interrupt, is dropped. Loading puts items straight into the tables, so nothing restored is published again.

Everything else (waiting workflows, queued messages) is re-derived from the table by the runtime.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local import atomic_dynamodb
from local.atomic_dynamodb import key_of, written_keys

log = logging.getLogger("local.state")

SNAPSHOT = "snapshot.jsonl"
JOURNAL = "journal.jsonl"
FSYNC_INTERVAL_SECONDS = 1.0


class StateStore:
    def __init__(self, directory: Path, backend: Any) -> None:
        self.directory = directory
        self.backend = backend
        self._journal: Any = None
        self._lock = threading.Lock()
        self._dirty = False
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None

    # -- start ----------------------------------------------------------------------------------------

    def restore(self) -> int:
        """Loads the snapshot and replays the journal into the (already created) tables; returns the
        number of items restored. A journal with anything in it (the last run did not stop cleanly) is
        folded into a fresh snapshot, which also drops a torn last line."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for table_name, attrs, deleted_key in self._records():
            table = self.backend.tables.get(table_name)
            if table is None:
                continue
            if deleted_key is not None:
                self._delete(table, deleted_key)
            else:
                self._put(table, attrs)
        for table in self.backend.tables.values():
            atomic_dynamodb.partitions.forget(table)  # index partitions are rebuilt from the restored items
        restored = sum(1 for _ in self._all_items())
        journal = self.directory / JOURNAL
        if journal.exists() and journal.stat().st_size:
            self.compact()
        self._journal = journal.open("a", encoding="utf-8")
        self._syncer = threading.Thread(target=self._sync_every_second, name="state-fsync", daemon=True)
        self._syncer.start()
        return restored

    def _records(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        snapshot = self.directory / SNAPSHOT
        if snapshot.exists():
            with snapshot.open(encoding="utf-8") as lines:
                for line in lines:
                    record = json.loads(line)
                    yield record["t"], record["i"], None
        journal = self.directory / JOURNAL
        if journal.exists():
            with journal.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, start=1):
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        log.warning(
                            "journal line %d is torn (the process was killed while writing it)", number
                        )
                        break
                    yield from ((table_name, item, key) for table_name, item, key in record["w"])

    def _put(self, table: Any, attrs: dict[str, Any]) -> None:
        from moto.dynamodb.models.dynamo_type import Item, LimitedSizeDict

        hash_value, range_value = key_of(table, attrs)
        # Item(...) re-measures the whole item after each attribute it sets; these items were measured
        # when they were written, so they are built directly (the same Item, several times faster).
        item: Any = Item.__new__(Item)
        item.hash_key, item.range_key = hash_value, range_value
        item.attrs = LimitedSizeDict()
        dict.update(item.attrs, {name: _attribute(value) for name, value in attrs.items()})
        if range_value is not None:
            table.items[hash_value][range_value] = item
        else:
            table.items[hash_value] = item

    def _delete(self, table: Any, key: dict[str, Any]) -> None:
        hash_value, range_value = key_of(table, key)
        if range_value is not None:
            table.items.get(hash_value, {}).pop(range_value, None)
        else:
            table.items.pop(hash_value, None)

    def items_with(self, table_name: str, attribute: str) -> list[dict[str, Any]]:
        """The keys of the items of a table that carry `attribute` (read once, at start)."""
        table = self.backend.tables.get(table_name)
        keys = []
        for name, item in self._all_items():
            if name == table_name and attribute in item.attrs:
                key = {table.hash_key_attr: item.attrs[table.hash_key_attr].to_json()}
                if table.range_key_attr:
                    key[table.range_key_attr] = item.attrs[table.range_key_attr].to_json()
                keys.append(key)
        return keys

    def attribute_values(self, table_name: str, attribute: str) -> dict[str, Any]:
        """Hash key -> value of `attribute`, for the items of a table that carry it (read once, at start)."""
        table = self.backend.tables.get(table_name)
        found: dict[str, Any] = {}
        for name, item in self._all_items():
            if name == table_name and attribute in item.attrs:
                found[str(item.attrs[table.hash_key_attr].value)] = item.attrs[attribute].value
        return found

    def _all_items(self) -> Iterator[tuple[str, Any]]:
        for table_name, table in list(self.backend.tables.items()):
            for entry in list(table.items.values()):
                if isinstance(entry, dict):
                    for item in list(entry.values()):
                        yield table_name, item
                else:
                    yield table_name, entry

    # -- while serving --------------------------------------------------------------------------------

    def record(self, action: str, body: dict[str, Any]) -> None:
        """Journals the new image of every item a committed write request touched (called with the
        DynamoDB request lock held, so the images are those of this request)."""
        if self._journal is None:
            return
        writes = []
        for table_name, key_or_item in written_keys(action, body):
            table = self.backend.tables.get(table_name)
            if table is None:
                continue
            hash_value, range_value = key_of(table, key_or_item)
            item = table.get_item(hash_value, range_value)
            key = {table.hash_key_attr: key_or_item[table.hash_key_attr]}
            if table.range_key_attr:
                key[table.range_key_attr] = key_or_item[table.range_key_attr]
            writes.append([table_name, item.to_json()["Attributes"] if item else None, None if item else key])
        if writes:
            with self._lock:
                self._journal.write(json.dumps({"w": writes}, separators=(",", ":")) + "\n")
                self._journal.flush()
                self._dirty = True

    def _sync_every_second(self) -> None:
        while not self._stop.wait(FSYNC_INTERVAL_SECONDS):
            self.sync()

    def sync(self) -> None:
        with self._lock:
            if self._journal is not None and self._dirty:
                os.fsync(self._journal.fileno())
                self._dirty = False

    # -- stop -----------------------------------------------------------------------------------------

    def compact(self) -> None:
        """Writes every item to a new snapshot, atomically, then empties the journal."""
        with atomic_dynamodb.exclusive(), self._lock:
            target = self.directory / SNAPSHOT
            aside = self.directory / (SNAPSHOT + ".writing")
            with aside.open("w", encoding="utf-8") as out:
                for table_name, item in self._all_items():
                    out.write(json.dumps({"t": table_name, "i": item.to_json()["Attributes"]}) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(aside, target)
            # The rename is durable only once the directory is: before that, a power loss (not a kill) can
            # bring back the old snapshot, and the journal must still hold what it lacks.
            _fsync_directory(self.directory)
            if self._journal is not None:
                self._journal.truncate(0)
                self._journal.seek(0)
                os.fsync(self._journal.fileno())
            else:
                (self.directory / JOURNAL).write_text("")

    def close(self) -> None:
        """The last snapshot: called once requests have stopped."""
        self._stop.set()
        self.compact()
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


SERVER_KEY_FILE = "server.key"


def server_key_hex(directory: Path | None) -> str:
    """The local server key (hex): kept in `directory` (made on first use, readable by its owner only), or,
    with no directory, one for this process. Locally it stands for the deployed Secrets Manager secret and
    KMS key: the snapshot and journal beside it hold endpoint secrets and idempotency seals that open only
    with it."""
    if directory is None:
        return _process_key
    path = directory / SERVER_KEY_FILE
    directory.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    made = _new_key()
    try:
        os.write(handle, made.encode("ascii"))
        os.fsync(handle)
    finally:
        os.close(handle)
    _fsync_directory(directory)
    return made


def _new_key() -> str:
    import secrets

    return secrets.token_hex(32)


_process_key = _new_key()


def _attribute(value: dict[str, Any]) -> Any:
    """moto's DynamoType of an attribute value in DynamoDB JSON, built as its constructor builds it."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    ((kind, inner),) = value.items()
    typed: Any = object.__new__(DynamoType)
    typed.type = kind
    if kind == "L":
        inner = [_attribute(element) for element in inner]
    elif kind == "M":
        inner = {key: _attribute(element) for key, element in inner.items()}
    typed.value = inner
    return typed
