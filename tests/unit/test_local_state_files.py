"""The local state's files: the snapshot's rename made durable before the journal that covers it is
emptied, and the server key kept beside them, made once and readable by its owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from local import state
from local.state import SERVER_KEY_FILE, StateStore, server_key_hex


class Backend:
    def __init__(self) -> None:
        self.tables: dict[str, Any] = {}


def test_the_snapshot_rename_is_made_durable_before_the_journal_is_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path, Backend())
    (tmp_path / state.JOURNAL).write_text('{"t": "x"}\n')
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(handle: int) -> None:
        is_directory = stat.S_ISDIR(os.fstat(handle).st_mode)
        steps.append("fsync directory" if is_directory else "fsync file")
        real_fsync(handle)

    def replace(source: Any, target: Any) -> None:
        steps.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(state.os, "fsync", fsync)
    monkeypatch.setattr(state.os, "replace", replace)
    journal = tmp_path / state.JOURNAL
    real_write_text = Path.write_text

    def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
        if self == journal:
            steps.append("empty journal")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    store.compact()
    assert steps.index("rename") < steps.index("fsync directory") < steps.index("empty journal")
    assert journal.read_text() == ""


def test_the_server_key_is_made_once_and_kept_for_its_owner(tmp_path: Path) -> None:
    first = server_key_hex(tmp_path)
    assert len(bytes.fromhex(first)) == 32
    assert server_key_hex(tmp_path) == first  # the next run finds the same key
    assert stat.S_IMODE((tmp_path / SERVER_KEY_FILE).stat().st_mode) == 0o600
    assert server_key_hex(tmp_path / "other") != first
    assert server_key_hex(None) == server_key_hex(None) != first  # no state kept: one for this process
