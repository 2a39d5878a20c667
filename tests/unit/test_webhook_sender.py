"""One webhook request against real HTTP servers on loopback: outcomes, redirects not followed, the time
limit, and the SSRF check on the address actually connected to (a name that resolved to a public address
when checked, and connects to loopback)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from checkout_core.webhooks.sender import post


class Server:
    def __init__(self, answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.requests.append({k.lower(): v for k, v in self.headers.items()})
                answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def answering(status: int, headers: dict[str, str] | None = None, delay: float = 0.0) -> Callable[..., None]:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(delay)
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def serve(servers: list[Server], answer: Callable[..., None]) -> Server:
    servers.append(Server(answer))
    return servers[-1]


def test_a_2xx_succeeds_and_the_signed_headers_are_sent(servers: list[Server]) -> None:
    server = serve(servers, answering(204))
    got = post(f"http://127.0.0.1:{server.port}/hook", {"webhook-id": "e1"}, "{}", allow_private=True)
    assert (got.status, got.error) == (204, None)
    assert (
        server.requests[0]["webhook-id"] == "e1" and server.requests[0]["content-type"] == "application/json"
    )


def test_a_redirect_is_not_followed(servers: list[Server]) -> None:
    target = serve(servers, answering(200))
    server = serve(servers, answering(302, {"Location": f"http://127.0.0.1:{target.port}/elsewhere"}))
    got = post(f"http://127.0.0.1:{server.port}/hook", {}, "{}", allow_private=True)
    assert got.status == 302 and "not followed" in (got.error or "")
    assert target.requests == []


def test_retry_after_is_reported_and_a_slow_answer_times_out(servers: list[Server]) -> None:
    busy = serve(servers, answering(503, {"Retry-After": "120"}))
    got = post(f"http://127.0.0.1:{busy.port}/", {}, "{}", allow_private=True)
    assert (got.status, got.retry_after) == (503, "120")
    slow = serve(servers, answering(200, delay=1.5))
    got = post(f"http://127.0.0.1:{slow.port}/", {}, "{}", allow_private=True, timeout=0.5)
    assert got.status is None and "0.5 s" in (got.error or "")


def test_nothing_is_sent_when_the_connected_address_is_not_public(servers: list[Server]) -> None:
    server = serve(servers, answering(200))
    # The name passed the check (resolved to a public address then), but connects to loopback now.
    got = post(
        f"https://localhost:{server.port}/hook",
        {},
        "{}",
        allow_private=False,
        resolve=lambda host, port: ["93.184.216.34"],
    )
    assert got.status is None and "non-public address (127.0.0.1)" in (got.error or "")
    assert server.requests == []


def test_refused_connections_and_unsafe_urls_are_failures_not_errors() -> None:
    got = post("http://127.0.0.1:9/hook", {}, "{}", allow_private=True)
    assert got.status is None and got.error
    got = post("http://127.0.0.1:9/hook", {}, "{}", allow_private=False)
    assert got.status is None and "https" in (got.error or "")
