"""Nothing the runtime starts outlives it, however it ends; it stops quickly and quietly.

The runtime's children are its environment launcher (and the execution environments the launcher forks) and
the local Stripe; each test finds them below the runtime's pid in /proc, ends the runtime, and polls until
none of them is alive.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from local import processes
from local.stripe_emulator import LocalStripe
from tests.e2e.conftest import DEMO_KEY, RunningRuntime, launch
from tests.e2e.helpers import Api

GONE_WITHIN_SECONDS = 5.0
STOP_DEADLINE_SECONDS = 10.0  # a deadline, not the goal: the bench measures the stop (runtime.stop_seconds)


def _warm(runtime: RunningRuntime) -> list[int]:
    """Serves a create (the authorizer's and the create function's environments start), then the runtime's
    descendants, which must include the launcher, environments and the local Stripe."""
    Api(runtime.base_url, DEMO_KEY).open_session()
    below = processes.descendants(runtime.process.pid)
    commands = [processes.command_line(pid) for pid in below]
    assert any("local.zygote" in command for command in commands), commands
    assert any("local.stripe_emulator" in command for command in commands), commands
    assert len(below) >= 4, commands  # launcher, Stripe, at least the authorizer's and create's environments
    return below


def _wait_until_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while True:
        left = [pid for pid in pids if processes.alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_a_killed_runtime_leaves_no_process_behind() -> None:
    runtime = launch()
    below = _warm(runtime)
    # When the runtime is killed outright (no handler runs)
    runtime.process.send_signal(signal.SIGKILL)
    runtime.process.wait(30)
    # Then every process it had started is gone within seconds
    left = _wait_until_gone(below)
    assert not left, [processes.command_line(pid) for pid in left]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_is_quiet_and_complete(signum: int) -> None:
    # Given a runtime in its own process group, as in a terminal, that has served requests
    runtime = launch(own_process_group=True)
    below = _warm(runtime)
    # When it is stopped: SIGTERM to it, or Ctrl-C, which the terminal sends to the whole group
    os.kill(-runtime.process.pid if signum == signal.SIGINT else runtime.process.pid, signum)
    # Then it exits 0 within the deadline, with no traceback and no error line, and nothing it started lives
    runtime.process.wait(STOP_DEADLINE_SECONDS)
    assert runtime.process.returncode == 0, runtime.tail()
    assert "Traceback" not in runtime.stderr, runtime.tail()
    assert " ERROR " not in runtime.stderr, runtime.tail()
    assert not _wait_until_gone(below)


def test_the_local_stripe_exits_at_once_on_sigterm_with_a_connection_open() -> None:
    # Given the local Stripe with an idle keep-alive connection open (as the SDK's pool keeps one)
    stripe = LocalStripe("http://127.0.0.1:9/dropped", "whsec_test")
    host, port = stripe.api_base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            b"GET /v1/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk_test_x\r\n\r\n"
        )
        assert connection.recv(100).startswith(b"HTTP/1.1")
        # When it is sent SIGTERM
        stripe._process.terminate()
        # Then it exits, at once rather than after aiohttp's minute of waiting for open connections
        assert stripe._process.wait(GONE_WITHIN_SECONDS) == 0
