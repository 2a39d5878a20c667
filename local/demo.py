"""`make demo`: the README walk-through (scripts/walkthrough.sh) against a fresh runtime on a free port,
with its data in a temporary folder; the runtime is stopped afterwards (so nothing printed links to it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from local import processes
from local.runtime import BANNER_URL

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 90
BASH = shutil.which("bash") or "/bin/bash"


def wait_until_serving(log: Path, runtime: subprocess.Popen[bytes]) -> str:
    """The runtime's URL, once it serves: it says where in its banner (PORT=0 lets the kernel choose)."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if runtime.poll() is not None:
            raise SystemExit(f"the runtime exited with {runtime.returncode}")
        found = BANNER_URL.search(log.read_text(errors="replace"))
        if found is None:
            time.sleep(0.2)
            continue
        try:
            with urllib.request.urlopen(f"{found.group(1)}/v1/openapi.json", timeout=5):  # noqa: S310 - loopback
                return found.group(1)
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the runtime did not serve within {READY_TIMEOUT_SECONDS} s")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="checkout-demo-") as state:
        env = {**os.environ, "PORT": "0", "LOCAL_STATE_DIR": state}
        log = Path(state) / "runtime.log"
        with log.open("wb") as output:
            runtime = processes.spawn(
                [sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=output, stderr=output
            )
        try:
            base_url = wait_until_serving(log, runtime)
            print(f"runtime at {base_url}")
            walk = subprocess.run(  # noqa: S603 - the repository's own script
                [BASH, str(ROOT / "scripts/walkthrough.sh")], env={**os.environ, "API": base_url}, check=False
            )
            if walk.returncode:
                print(log.read_text(errors="replace")[-5000:], file=sys.stderr)
            return walk.returncode
        finally:
            runtime.send_signal(signal.SIGTERM)
            runtime.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())
