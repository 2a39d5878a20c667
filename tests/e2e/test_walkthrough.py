"""The README walk-through (scripts/walkthrough.sh, what `make demo` runs) against the runtime."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.e2e.conftest import RunningRuntime

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/walkthrough.sh"


def test_the_walk_through_runs_as_written(runtime: RunningRuntime) -> None:
    walk = subprocess.run(  # noqa: S603 - the repository's own script
        [shutil.which("bash") or "/bin/bash", str(SCRIPT)],
        env={**os.environ, "API": runtime.base_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert walk.returncode == 0, walk.stdout + walk.stderr
    lines = walk.stdout.splitlines()
    assert lines[0].startswith("session ") and lines[0].split(": ")[1].startswith("OPEN")
    assert "cancel: PENDING_CANCELLATION" in walk.stdout
    assert '"status": "CANCELLED"' in walk.stdout
    assert any(line.endswith("session.cancelled by workflow") for line in lines)
