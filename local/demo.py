"""`make demo`: the README walk-through (scripts/walkthrough.sh) against a fresh runtime on a free port,
with its data in a temporary folder; the runtime is stopped afterwards (so nothing printed links to it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from local import processes

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 90
BASH = shutil.which("bash") or "/bin/bash"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(base_url: str, runtime: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if runtime.poll() is not None:
            raise SystemExit(f"the runtime exited with {runtime.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/v1/openapi.json", timeout=5):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the runtime did not serve within {READY_TIMEOUT_SECONDS} s")


def main() -> int:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="checkout-demo-") as state:
        env = {**os.environ, "PORT": str(port), "LOCAL_STATE_DIR": state}
        log = Path(state) / "runtime.log"
        with log.open("wb") as output:
            runtime = processes.spawn(
                [sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=output, stderr=output
            )
        try:
            wait_until_serving(base_url, runtime)
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
