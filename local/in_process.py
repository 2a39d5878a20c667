"""The runtime's own AWS calls (its queue pollers, pipe readers and scheduler), answered by moto's server
application in this process instead of over a socket to it.

Each call still goes through botocore (its parameters checked and serialised) and through moto's server
application as a request from an execution environment does; only the HTTP in between is left out: the
client's connection pool, the socket, and the server's thread and header parsing for each request. Those
were about a third of the cost of each call in the runtime's one busy process, and the pollers and readers
make several calls for every event a handler commits.
"""

from __future__ import annotations

import functools
import logging
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("local.in_process")


def attach(client: Any, app: Any) -> None:
    """Sends `client`'s requests to the WSGI application `app` (moto's server application)."""
    client.meta.events.register_first(
        "before-send", functools.partial(_send, app), unique_id="local-in-process"
    )


def _send(app: Any, request: Any, **_: Any) -> Any:
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    url = urlsplit(request.url)
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    headers = {
        name: value.decode("utf-8") if isinstance(value, bytes) else str(value)
        for name, value in request.headers.items()
    }
    builder = EnvironBuilder(
        path=url.path or "/",
        query_string=url.query,
        method=request.method,
        headers=headers,
        data=body or b"",
        base_url=f"{url.scheme}://{url.netloc}",
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    try:
        answer, status, answer_headers = run_wsgi_app(app, environ, buffered=True)  # read and closed
    except Exception:
        # What moto's server answers for an error it does not catch itself: a 500, which botocore retries.
        log.exception("moto failed on %s %s", request.method, url.path)
        return AWSResponse(request.url, 500, {}, MockRawResponse(b""))
    return AWSResponse(
        request.url,
        int(status.split(" ", 1)[0]),
        dict(answer_headers.items()),
        MockRawResponse(b"".join(answer)),
    )
