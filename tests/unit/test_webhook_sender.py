"""One webhook request against real HTTP servers on loopback: outcomes, redirects not followed, the time
limit, and the SSRF check on the address actually connected to (a name that resolved to a public address
when checked, and connects to loopback)."""

from __future__ import annotations

import http.server
import socket
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
    assert got.status is None and "non-public address" in (got.error or "")
    assert "127.0.0.1" not in (got.error or "") and str(server.port) not in (got.error or "")
    assert server.requests == []


def test_refused_connections_and_unsafe_urls_are_failures_not_errors() -> None:
    got = post("http://127.0.0.1:9/hook", {}, "{}", allow_private=True)
    assert (got.status, got.error) == (None, "connection refused")  # no address, no port
    got = post("http://127.0.0.1:9/hook", {}, "{}", allow_private=False)
    assert got.status is None and "https" in (got.error or "")


class Trickler:
    """A TCP server that answers one byte at a time, `pause` apart, never finishing within the limit; or
    says nothing at all (a TLS handshake that never completes). Counts the bytes it got out."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Slow: " + b"x" * 200 + b"\r\n\r\n"

    def __init__(self, pause: float, silent: bool = False) -> None:
        self.pause, self.silent = pause, silent
        self.sent = 0
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        try:
            if self.silent:
                connection.recv(65536)
                self.closed.wait(30)
                return
            connection.recv(65536)
            for byte in self.ANSWER:
                connection.sendall(bytes([byte]))
                self.sent += 1
                time.sleep(self.pause)
        except OSError:
            pass
        finally:
            self.closed.set()
            connection.close()
            self.listener.close()


def test_an_endpoint_trickling_its_answer_is_cut_off_at_the_limit() -> None:
    # Given an endpoint that sends a header byte every 0.05 s: each read is quick, the answer takes 11 s
    slow = Trickler(pause=0.05)
    # When the attempt's limit is 1 s
    got = post(f"http://127.0.0.1:{slow.port}/", {}, "{}", allow_private=True, timeout=1.0)
    # Then it ended before the endpoint had sent a quarter of its answer, and counts as no answer
    assert got.status is None and "within 1 s" in (got.error or "")
    assert slow.sent < len(Trickler.ANSWER) // 4
    assert slow.closed.wait(5)  # and the connection was shut, not left to run on


def test_a_tls_handshake_that_never_completes_is_cut_off_at_the_limit() -> None:
    silent = Trickler(pause=0, silent=True)
    finished = threading.Event()

    def attempt() -> None:
        post(f"https://localhost:{silent.port}/", {}, "{}", allow_private=True, timeout=0.5)
        finished.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert finished.wait(5)
