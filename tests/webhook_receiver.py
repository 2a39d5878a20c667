"""A merchant's webhook receiver on loopback: a real HTTP server that records every request and answers
as the test says (per event, per attempt), so tests can fail deliveries and watch the retries."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Plan = Callable[["Received"], "tuple[int, dict[str, str]]"]


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    arrived: float
    attempt: int  # how many times this webhook-id has arrived, this one included
    answered: int = 0

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    plan: Plan = field(default=lambda received: (200, {}))
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                headers = {key.lower(): value for key, value in self.headers.items()}
                with receiver._lock:
                    attempt = 1 + sum(
                        1 for r in receiver.received if r.webhook_id == headers.get("webhook-id")
                    )
                    received = Received(headers, body, time.monotonic(), attempt)
                    status, extra = receiver.plan(received)
                    received.answered = status
                    receiver.received.append(received)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def of_session(self, session_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.event.get("sessionId") == session_id]

    def succeeded(self, session_id: str) -> list[Received]:
        return [r for r in self.of_session(session_id) if 200 <= r.answered < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
