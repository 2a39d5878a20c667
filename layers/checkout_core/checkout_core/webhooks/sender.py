"""One webhook request: POST with a 15 s limit, redirects not followed, and in deployments only to a public
address — the one the socket actually connected to, checked before a byte of the request is sent."""

from __future__ import annotations

import http.client
import socket
import ssl
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
    deadline = time.monotonic() + timeout
    try:
        check_endpoint_url(url, allow_private, resolve)
        parts = urlsplit(url)
        host = parts.hostname or ""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # Connect, check where the socket went, and only then speak TLS or HTTP to it.
        sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        try:
            check_connected_peer(sock.getpeername()[0], allow_private)
            if parts.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
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
        return Answer(None, error=f"{type(exc).__name__}: {exc}"[:300])
