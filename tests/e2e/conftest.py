"""End-to-end fixtures: the embedded runtime (`python -m local`) started as a process and driven over HTTP.

- `runtime` (session): one runtime with the default settings; `base_url` and `api_key` come from it.
- `start_runtime` (per test): a factory, `start_runtime(SWEEP_INTERVAL_SECONDS="1", ...)`, for runtimes with
  other settings; each is stopped with SIGTERM at the end of the test.

Each runtime starts from a clean environment (PATH only, an empty HOME: no AWS profile, no credentials), on a
free port. Its output goes to files, not pipes, so a chatty runtime never blocks on a full pipe. Readiness is
a poll of its stdout for the banner it prints once serving, with a deadline; stopping asserts the process exits 0 on SIGTERM.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from local import processes
from local.runtime import BANNER_URL, LISTENING_ON

ROOT = Path(__file__).resolve().parents[2]
DEMO_KEY = "sk_test_demo"
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0
_MOTO_URL = re.compile(r"AWS emulated by moto at (http://\S+)")
READY_LINE = LISTENING_ON
_STRIPE_URL = re.compile(r"Stripe emulated by localstripe at (http://\S+)")
_ADYEN_URL = re.compile(r"Adyen emulated at (http://\S+)")


@dataclass
class RunningRuntime:
    process: subprocess.Popen[bytes]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def base_url(self) -> str:
        """Where it serves, from its banner: it binds a port the kernel chooses (PORT=0), as a port chosen
        here and bound there later could be taken in between by any other process on the machine."""
        found = BANNER_URL.search(self.stdout)
        assert found, f"the runtime did not say where it listens:\n{self.tail()}"
        return found.group(1)

    @property
    def stdout(self) -> str:
        return (self.workdir / "stdout.log").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr.log").read_text(errors="replace")

    @property
    def moto_url(self) -> str:
        found = _MOTO_URL.search(self.stderr)
        assert found, f"the runtime did not say where moto listens:\n{self.tail()}"
        return found.group(1)

    @property
    def stripe_url(self) -> str:
        """The local Stripe the runtime started (its API base)."""
        found = _STRIPE_URL.search(self.stderr)
        assert found, f"the runtime did not say where the local Stripe listens:\n{self.tail()}"
        return found.group(1)

    @property
    def adyen_url(self) -> str:
        """The local Adyen the runtime started (its API base; control routes under /_emulator/)."""
        found = _ADYEN_URL.search(self.stderr)
        assert found, f"the runtime did not say where the local Adyen listens:\n{self.tail()}"
        return found.group(1)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(
            [
                "--- stdout",
                *self.stdout.splitlines()[-lines:],
                "--- stderr",
                *self.stderr.splitlines()[-lines:],
            ]
        )

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed, and reported as such, if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(
                    f"the runtime did not stop within {STOP_TIMEOUT_SECONDS} s of SIGTERM\n{self.tail()}"
                )
        return int(self.process.returncode)


def clean_environment(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env["PORT"] = "0"
    env["LOCAL_STATE_DIR"] = str(home.parent / "state")  # each runtime keeps its data in its own folder
    # The races fire dozens of requests of one tenant at once; the throttling test sets its own limits.
    env["TENANT_THROTTLING_RATE_LIMIT"] = "1000"
    env["TENANT_THROTTLING_BURST_LIMIT"] = "1000"
    if os.environ.get("LOCAL_LOG_LEVEL"):  # to debug a failing test: LOCAL_LOG_LEVEL=DEBUG pytest ...
        env["LOCAL_LOG_LEVEL"] = os.environ["LOCAL_LOG_LEVEL"]
    env.update(extra)
    return env


def wait_until_ready(runtime: RunningRuntime, deadline_seconds: float = START_TIMEOUT_SECONDS) -> None:
    """Polls the runtime's stdout for its banner, which it prints once it serves (a request instead would
    cold-start a function, and each retry of one timed out on a busy machine another)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if READY_LINE in runtime.stdout:
            return
        if runtime.process.poll() is not None:
            pytest.fail(
                f"the runtime exited with {runtime.process.returncode} while starting\n{runtime.tail()}"
            )
        time.sleep(0.05)
    runtime.stop()
    pytest.fail(f"the runtime was not serving within {deadline_seconds} s\n{runtime.tail()}")


def launch(extra_env: dict[str, str] | None = None, *, own_process_group: bool = False) -> RunningRuntime:
    """A runtime on a port of the kernel's choosing, serving. It is killed if the test process dies; `own_process_group` puts
    it in a process group of its own, as a terminal does, so a test can send the group a Ctrl-C."""
    workdir = Path(tempfile.mkdtemp(prefix="checkout-runtime-"))
    (workdir / "home").mkdir()
    env = clean_environment(workdir / "home", dict(extra_env or {}))
    with (workdir / "stdout.log").open("wb") as stdout, (workdir / "stderr.log").open("wb") as stderr:
        process = processes.spawn(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            process_group=0 if own_process_group else None,
        )
    runtime = RunningRuntime(process=process, workdir=workdir, env=env)
    wait_until_ready(runtime)
    return runtime


def assert_local_adyen_saw_no_spec_violation(runtime: RunningRuntime) -> None:
    """Every request the tests made the service send to the local Adyen, and every answer and notification it
    gave, was one Adyen's OpenAPI documents allow (the emulator counts those they refuse)."""
    found = _ADYEN_URL.search(runtime.stderr)
    if found is None or runtime.process.poll() is not None:
        return
    with urllib.request.urlopen(f"{found.group(1)}/_emulator/violations", timeout=10) as answer:  # noqa: S310
        violations = json.loads(answer.read())["violations"]
    assert violations == [], "the local Adyen met what Adyen's OpenAPI document refuses:\n" + "\n".join(
        violations
    )


def stop_and_check(runtime: RunningRuntime) -> None:
    try:
        assert_local_adyen_saw_no_spec_violation(runtime)
    finally:
        status = runtime.stop()
    assert status == 0, f"the runtime exited with {status} on SIGTERM\n{runtime.tail()}"


@pytest.fixture(scope="session")
def runtime() -> Iterator[RunningRuntime]:
    running = launch()
    yield running
    stop_and_check(running)


@pytest.fixture(scope="session")
def base_url(runtime: RunningRuntime) -> str:
    return runtime.base_url


@pytest.fixture(scope="session")
def api_key(runtime: RunningRuntime) -> str:
    return DEMO_KEY


@pytest.fixture
def start_runtime() -> Iterator[Callable[..., RunningRuntime]]:
    started: list[RunningRuntime] = []

    def start(**extra_env: str) -> RunningRuntime:
        running = launch(extra_env)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            stop_and_check(running)
