"""Schemathesis hooks: what a merchant's account has configured, which no schema can say.

A return or cancel URL must name a host in the account's allowlist (a setting of the account, not a
shape): a URL the generator made to the document's pattern has its host replaced by an allowed one (over
https: the pattern's http to loopback is for the local runtime's own allowlist), so
valid requests stay valid and invalid ones (not https, credentials, a fragment) stay invalid.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import schemathesis

from checkout_core.models import RETURN_URL_PATTERN

ALLOWED_HOST = "example.com"
_URL = re.compile(RETURN_URL_PATTERN)


def _allowed(url: Any) -> Any:
    if not isinstance(url, str) or not _URL.match(url):
        return url
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(scheme="https", netloc=f"{ALLOWED_HOST}{port}"))


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if isinstance(case.body, dict):
        for field in ("returnUrl", "cancelUrl"):
            if field in case.body:
                case.body[field] = _allowed(case.body[field])
    return case
