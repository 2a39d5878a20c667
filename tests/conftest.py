"""What every test shares: no process started by the suite may outlive it.

Each process that runs tests (pytest itself, or each pytest-xdist worker) becomes a child subreaper, so a
process the suite started whose parent has died (an orphaned emulator, a runtime's launcher) is re-parented
to it rather than to init. At the end of the session, once every fixture is torn down, nothing may be left
below it: the last teardown fails, naming what was left (and kills it, so that one leak does not hold ports
and memory after the run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest

from local import processes

LEFTOVER_DEADLINE_SECONDS = 10.0
# The longest modules, first: pytest-xdist hands out modules in collection order (the Makefile turns its own
# reorder off), so a long one collected last would run alone at the end while the other workers wait.
LONGEST_FIRST = (
    "tests/fuzz/test_schemathesis.py",
    "tests/e2e/test_bench_shape.py",
    "tests/e2e/test_stripe_reconciliation.py",
    "tests/e2e/test_restart.py",
    "tests/e2e/test_runtime.py",
    "tests/integration/test_sessions_api.py",
    "tests/e2e/test_stripe.py",
    "tests/browser/test_console.py",
    "tests/e2e/test_adyen_reconciliation.py",
    "tests/integration/test_webhook_failures.py",
    "tests/e2e/test_faults.py",
    "tests/e2e/test_webhook_restart.py",
)


def pytest_configure(config: pytest.Config) -> None:
    processes.become_subreaper()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath

    def rank(item: pytest.Item) -> int:
        module = item.path.relative_to(root).as_posix()
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a module, and of the other modules, is kept


def _reap_zombies() -> None:
    """Children already dead (orphans re-parented here included) are collected, so they are not counted."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_suite() -> Iterator[None]:
    before = set(processes.descendants(os.getpid()))
    yield
    deadline = time.monotonic() + LEFTOVER_DEADLINE_SECONDS
    while True:
        _reap_zombies()
        left = [pid for pid in processes.descendants(os.getpid()) if pid not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        described = [f"{pid}: {processes.command_line(pid)}" for pid in left]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap_zombies()
        pytest.fail(
            f"{len(left)} process(es) started by the tests outlived them:\n" + "\n".join(described),
            pytrace=False,
        )
