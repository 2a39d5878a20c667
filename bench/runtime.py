"""The embedded runtime over HTTP, as `make run` starts it: create latency with an empty table and with N
sessions stored (8 concurrent clients), resident memory of the whole process tree (workers included), 5xx
answers, how long a SIGTERM takes to stop it, and how long it takes to serve again with N sessions stored."""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench import harness
from local import processes
from local.runtime import BANNER_URL

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 8
KEY = "sk_test_demo"
BODY = {"amount": 5000, "currency": "USD", "referenceId": "bench", "returnUrl": "https://example.com/return"}


class Runtime:
    def __init__(self, state_dir: Path, log: Path, idle_seconds: float = 30) -> None:
        self.base_url = ""  # known once it says where it listens: PORT=0 lets the kernel choose
        self._log = log
        self._log_start = log.stat().st_size if log.exists() else 0
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(state_dir.parent),
            "PORT": "0",
            "LOCAL_STATE_DIR": str(state_dir),
            "SWEEP_INTERVAL_SECONDS": "3600",
            "LOCAL_ENVIRONMENT_IDLE_SECONDS": str(idle_seconds),
            "LOCAL_LOG_LEVEL": "WARNING",
            # What is measured is the runtime, not the tenant's allowance.
            "TENANT_THROTTLING_RATE_LIMIT": "100000",
            "TENANT_THROTTLING_BURST_LIMIT": "100000",
        }
        with log.open("ab") as out:
            self.process = processes.spawn(
                [sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=out, stderr=out
            )

    def wait_until_serving(self, session_id: str | None = None, timeout: float = 300) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.base_url:
                with self._log.open("rb") as log:
                    log.seek(self._log_start)
                    found = BANNER_URL.search(log.read().decode(errors="replace"))
                if found is None:
                    time.sleep(0.05)
                    continue
                self.base_url = found.group(1)
            try:
                with urllib.request.urlopen(f"{self.base_url}/v1/openapi.json", timeout=5) as answer:  # noqa: S310
                    if answer.status == 200 and (session_id is None or self._reads(session_id)):
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the runtime did not start")

    def _reads(self, session_id: str) -> bool:
        answer = requests.get(
            f"{self.base_url}/v1/sessions/{session_id}",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        )
        return answer.status_code == 200

    def rss_mb(self) -> float:
        """Resident memory of the runtime and every process below it, each process's proportional share
        (Pss): environments forked from one launcher share its pages, which plain RSS would count once per
        process."""
        total_kb = 0
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending.extend(int(child) for child in (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError):
                continue
        return round(total_kb / 1024, 1)

    def idle_mb(self, timeout: float = 180) -> float:
        """Memory once the runtime has sat unused until its idle execution environments were stopped: what
        is left below it is the launcher (one `local.zygote`) and the local Stripe."""
        deadline = time.monotonic() + timeout
        while self.environments() and time.monotonic() < deadline:
            time.sleep(1)
        if self.environments():
            raise RuntimeError("the runtime's idle environments were not stopped")
        return self.rss_mb()

    def environments(self) -> int:
        """Execution environments alive: processes forked by the launcher."""
        below = processes.descendants(self.process.pid)
        return sum("local.zygote" in processes.command_line(pid) for pid in below) - 1

    def stop(self) -> float:
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
        return time.monotonic() - started


class Clients:
    """CLIENTS threads creating sessions over keep-alive connections; counts 5xx answers."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.errors_5xx = 0
        self.last_session_id = ""
        self._lock = threading.Lock()
        self._local = threading.local()

    def _create(self, _: int) -> float:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {KEY}"
        started = time.monotonic()
        answer = session.post(f"{self.base_url}/v1/sessions", json=BODY, timeout=60)
        elapsed = (time.monotonic() - started) * 1000
        with self._lock:
            if answer.status_code >= 500:
                self.errors_5xx += 1
            elif answer.status_code == 201:
                self.last_session_id = answer.json()["sessionId"]
        return elapsed

    def create(self, count: int) -> list[float]:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            return list(pool.map(self._create, range(count)))


def measure(sessions: int, sample: int, idle_seconds: float = 30) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    log = work / "runtime.log"
    runtime = Runtime(work / "state", log, idle_seconds)
    try:
        runtime.wait_until_serving()
        clients = Clients(runtime.base_url)
        clients.create(CLIENTS * 4)
        harness.say("bench: waiting for the runtime to be idle")
        idle = runtime.idle_mb()
        # Growth is measured between two moments with environments made the same way (after the idle
        # stop, by the same clients): the environments alive depend on the load, not on the data.
        clients.create(CLIENTS * 4)  # every client's environments warm, as after a minute of use
        empty = clients.create(sample)
        rss_empty = runtime.rss_mb()
        environments_empty = runtime.environments()
        remaining = sessions - CLIENTS * 8 - sample * 2
        harness.say(f"bench: filling the runtime to {sessions} sessions")
        while remaining > 0:
            batch = min(remaining, 1000)
            clients.create(batch)
            remaining -= batch
        full = clients.create(sample)
        rss_full = runtime.rss_mb()
        environments_full = runtime.environments()
        stop_seconds = runtime.stop()
        restarted = Runtime(work / "state", log)
        restart_seconds = restarted.wait_until_serving(clients.last_session_id)
        restarted.stop()
    except BaseException:
        if runtime.process.poll() is None:
            runtime.process.kill()
        raise
    p50_empty, p50_full = statistics.median(empty), statistics.median(full)
    return {
        "create_p50_ms_empty": round(p50_empty, 1),
        "create_p50_ms_10k": round(p50_full, 1),
        "create_p50_ratio_10k": round(p50_full / p50_empty, 3),
        "rss_mb_empty": rss_empty,
        "idle_mb": idle,
        "rss_mb_10k": rss_full,
        "memory_growth_mb_10k": round(rss_full - rss_empty, 1),
        "environments_empty": environments_empty,
        "environments_10k": environments_full,
        "errors_5xx": clients.errors_5xx,
        "stop_seconds": round(stop_seconds, 2),
        "restart_seconds_10k": round(restart_seconds, 2),
        "sessions": sessions,
        "sample": sample,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, 200), indent=2))
