"""Child processes that never outlive the process that started them.

Every process the runtime starts (the environment launcher, the local Stripe, any other emulator) is started
through `spawn`, which asks the kernel to SIGKILL the child when its parent dies (Linux's
`prctl(PR_SET_PDEATHSIG)`), however the parent ends: Ctrl-C, SIGTERM or SIGKILL. A forked child that runs no
`exec` (an execution environment forked by the launcher) calls `die_with_parent` itself.

The kernel sends that signal when the *thread* that forked the child ends, not the process: so children are
forked by one thread that lives as long as the process. Children also ignore SIGINT: a Ctrl-C in a terminal
reaches the whole foreground process group, and it is the runtime's to handle (it stops its children itself,
in order, rather than each of them dying in the middle of an invocation with a traceback).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _prctl(option: int, value: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def die_with_parent(parent_pid: int) -> None:
    """In a child: SIGKILL when the parent dies; exits at once if it already has (it may die before this)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def become_subreaper() -> None:
    """Orphaned descendants of this process are re-parented to it (not to init), so it can find them."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _child_setup(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


def spawn(args: list[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(args, **popen_kwargs)`, for a child that ends when this process ends."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")
    parent = os.getpid()
    popen_kwargs.setdefault("preexec_fn", None)
    preexec = popen_kwargs.pop("preexec_fn")

    def setup() -> None:
        _child_setup(parent)
        if preexec is not None:
            preexec()

    def start() -> subprocess.Popen[Any]:
        return subprocess.Popen(args, preexec_fn=setup, **popen_kwargs)  # noqa: S603 - the caller's command

    return _spawner.submit(start).result()


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie, dead and not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """The live processes below `pid`, children first."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        below = [child for parent in frontier for child in children(parent)]
        found.extend(below)
        frontier = below
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def loopback_listener() -> socket.socket:
    """A socket listening on a free loopback port, for a child to serve on (`spawn(..., pass_fds=...)` and
    `--listen-fd`). Choosing a free port and letting the child bind it later races every other process on the
    machine (an outgoing connection may take the port in between); a socket already bound cannot be taken."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    return listener


def inherited_listener(fd: int) -> socket.socket:
    """In the child: the listening socket its parent made with `loopback_listener`."""
    return socket.socket(fileno=fd)


def wait_until_answered(
    process: subprocess.Popen[Any], request: urllib.request.Request | str, timeout_seconds: float
) -> bool:
    """Sends `request` to a child serving on a `loopback_listener` until it answers: False if the child
    exits or `timeout_seconds` pass first. Refused, reset and timed-out tries are tried again, since the
    inherited socket accepts connections before the child serves them."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - a child on loopback
                return True
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
