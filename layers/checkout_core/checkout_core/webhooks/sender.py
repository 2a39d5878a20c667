"""One webhook request: POST with a 15 s limit, redirects not followed, and in deployments only to a public
address — the one the socket actually connected to, checked before a byte of the request is sent."""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from checkout_core.webhooks.addresses import UnsafeUrl, check_connected_peer, check_endpoint_url

TIMEOUT_SECONDS = 15.0
USER_AGENT = "checkout-sessions-webhooks/1"


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, timed out, unsafe address)
    retry_after: str | None = None
    error: str | None = None


def post(url: str, headers: dict[str, str], body: str, allow_private: bool) -> Answer:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        check_endpoint_url(url, allow_private)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port,
                timeout=TIMEOUT_SECONDS,
                context=ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT_SECONDS)
        try:
            connection.connect()
            assert connection.sock is not None
            check_connected_peer(connection.sock.getpeername()[0], allow_private)
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
                return Answer(None, error=f"no complete answer within {TIMEOUT_SECONDS:g} s")
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
        return Answer(None, error=f"no answer within {TIMEOUT_SECONDS:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}"[:300])
