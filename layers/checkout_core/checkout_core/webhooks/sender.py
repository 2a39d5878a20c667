"""One webhook request: POST with a 15 s limit, redirects not followed, and in deployments only to a public
address — the one the socket actually connected to, checked before a byte of the request is sent."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from checkout_core.webhooks.addresses import (
    Resolver,
    UnsafeUrl,
    _resolve,
    check_connected_peer,
    check_endpoint_url,
)

TIMEOUT_SECONDS = 15.0
USER_AGENT = "checkout-sessions-webhooks/1"


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, timed out, unsafe address)
    retry_after: str | None = None
    error: str | None = None


def post(
    url: str,
    headers: dict[str, str],
    body: str,
    allow_private: bool,
    timeout: float = TIMEOUT_SECONDS,
    resolve: Resolver = _resolve,
) -> Answer:
    """One attempt, ended within `timeout` of wall-clock time whatever the endpoint does: a socket timeout
    bounds each read, not their sum (an endpoint trickling a byte at a time would hold it for ever), so the
    request runs in a thread of its own and, at the deadline, its socket is shut: whatever it was doing
    (resolving, connecting, the TLS handshake, sending, reading headers or body) ends there."""
    request = _Request()
    answers: list[Answer] = []

    def run() -> None:
        answers.append(_post(request, url, headers, body, allow_private, timeout, resolve))

    worker = threading.Thread(target=run, name="webhook-attempt", daemon=True)
    worker.start()
    worker.join(timeout)
    if answers:
        return answers[0]
    request.abandon()
    return Answer(None, error=f"no complete answer within {timeout:g} s")


class _Request:
    """The socket of one attempt, so that the caller can end it at the deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.abandoned = False

    def use(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sock = sock
            if self.abandoned:
                _shut(sock)
        return sock

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _post(
    request: _Request,
    url: str,
    headers: dict[str, str],
    body: str,
    allow_private: bool,
    timeout: float,
    resolve: Resolver,
) -> Answer:
    deadline = time.monotonic() + timeout
    try:
        check_endpoint_url(url, allow_private, resolve)
        parts = urlsplit(url)
        host = parts.hostname or ""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # Connect, check where the socket went, and only then speak TLS or HTTP to it.
        sock = request.use(socket.create_connection((host, port), timeout=timeout))
        try:
            check_connected_peer(sock.getpeername()[0], allow_private)
            if parts.scheme == "https":
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock = request.use(ssl.create_default_context().wrap_socket(sock, server_hostname=host))
        except BaseException:
            sock.close()
            raise
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
        connection.sock = sock
        try:
            connection.sock.settimeout(max(0.1, deadline - time.monotonic()))
            connection.request(
                "POST",
                path,
                body=body.encode(),
                headers={**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT},
            )
            response = connection.getresponse()
            if connection.sock is not None:
                connection.sock.settimeout(max(0.1, deadline - time.monotonic()))
            response.read(4096)
            if time.monotonic() > deadline:
                return Answer(None, error=f"no complete answer within {timeout:g} s")
            error = None
            if 300 <= response.status < 400:
                error = f"redirect ({response.status}) not followed"
            elif not 200 <= response.status < 300:
                error = f"answered {response.status}"
            return Answer(response.status, response.getheader("Retry-After"), error)
        finally:
            connection.close()
    except UnsafeUrl as exc:
        return Answer(None, error=str(exc))
    except TimeoutError:
        return Answer(None, error=f"no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, error=_described(exc))


def _described(exc: BaseException) -> str:
    """What failed, in words that name no address, port or internal detail (the delivery log shows it)."""
    if isinstance(exc, socket.gaierror):
        return "the endpoint's host name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "connection closed by the endpoint"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate not valid for the endpoint's host"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, http.client.HTTPException):
        return "the answer is not valid HTTP"
    return "could not connect to the endpoint"
