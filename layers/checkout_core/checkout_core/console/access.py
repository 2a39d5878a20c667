"""Who is signed in to the console: sign-in with the tenant's API key, a server-side sign-in behind an
HttpOnly, SameSite=Strict cookie for 12 hours, sign-out that revokes it, and the anti-forgery token of
every form.

The API key arrives only in a form post, is compared by its hash, and is never stored, logged or shown.
The cookie holds a random value; the table holds only its hash with the tenant. A form's token is an HMAC
keyed by that value (before sign-in: by a nonce in its own SameSite=Strict cookie), so another site can
neither read nor forge it, the same construction as the hosted page's."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl

from checkout_core.api_keys import hash_api_key, hash_secret
from checkout_core.console.store import ConsoleStore
from checkout_core.context import Context
from checkout_core.hosted.checkout import FormRefused, new_form_nonce
from checkout_core.models import Tenant
from checkout_core.observability import logger

SESSION_COOKIE = "console_session"
FORM_COOKIE = "console_form"
SIGN_IN_SECONDS = 12 * 3600
FORM_COOKIE_SECONDS = 3600
MAX_KEY_LENGTH = 256
MAX_FORM_FIELDS = 40
_SIGNED_IN_PURPOSE = "console"
_SIGN_IN_PURPOSE = "console-sign-in"

__all__ = ["FormRefused", "SignedIn", "new_form_nonce"]


@dataclass(frozen=True)
class SignedIn:
    tenant: Tenant
    cookie_value: str

    @property
    def form_token(self) -> str:
        return form_token(self.cookie_value, _SIGNED_IN_PURPOSE)


def _store(ctx: Context) -> ConsoleStore:
    return ConsoleStore(ctx.settings.table_name)


def sign_in(ctx: Context, api_key: str) -> SignedIn | None:
    """A new sign-in for the key's tenant, or None for a key that names none."""
    if not api_key or len(api_key) > MAX_KEY_LENGTH or not api_key.isascii() or not api_key.isprintable():
        return None
    record = ctx.repository.get_api_key(hash_api_key(api_key.strip()))
    if record is None:
        logger.info("console sign-in refused: unknown key")
        return None
    value = secrets.token_urlsafe(32)
    expires_at = int(ctx.clock().timestamp()) + SIGN_IN_SECONDS
    hosts = list(record.get("returnHosts", []))
    _store(ctx).put(hash_secret(value), record["tenant"], hosts, expires_at)
    logger.info("console signed in", extra={"tenantId": record["tenant"]})
    return SignedIn(Tenant(record["tenant"], frozenset(h.lower() for h in hosts)), value)


def signed_in(ctx: Context, cookie_value: str | None) -> SignedIn | None:
    """The sign-in behind a cookie value, while it lasts and has not been revoked."""
    if not cookie_value or len(cookie_value) > 128:
        return None
    item = _store(ctx).get(hash_secret(cookie_value))
    if item is None or int(item["expiresAt"]) <= int(ctx.clock().timestamp()):
        return None  # TTL deletes late: the expiry is checked, not assumed
    hosts = frozenset(h.lower() for h in item.get("returnHosts", []))
    return SignedIn(Tenant(item["tenant"], hosts), cookie_value)


def sign_out(ctx: Context, signed: SignedIn) -> None:
    _store(ctx).delete(hash_secret(signed.cookie_value))
    logger.info("console signed out", extra={"tenantId": signed.tenant.tenant_id})


def check_signed_in_form(signed: SignedIn, fields: dict[str, list[str]]) -> None:
    check_form(signed.cookie_value, _SIGNED_IN_PURPOSE, _single(fields, "form_token"))


def sign_in_form_token(nonce: str) -> str:
    return form_token(nonce, _SIGN_IN_PURPOSE)


def check_sign_in_form(nonce: str | None, fields: dict[str, list[str]]) -> None:
    if not nonce:
        raise FormRefused("This page has expired; open the console again.")
    check_form(nonce, _SIGN_IN_PURPOSE, _single(fields, "form_token"))


def form_token(key: str, purpose: str) -> str:
    """The token of the console's forms: an HMAC keyed by the sign-in's (or the sign-in page's) secret."""
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def check_form(key: str, purpose: str, fields: dict[str, str]) -> None:
    sent = fields.get("form_token", "")
    if not hmac.compare_digest(sent.encode(), form_token(key, purpose).encode()):
        raise FormRefused("This page has expired; open the console again.")


def _single(fields: dict[str, list[str]], name: str) -> dict[str, str]:
    values = fields.get(name) or [""]
    return {name: values[0]}


def parse_form(body: str) -> dict[str, list[str]]:
    try:
        pairs = parse_qsl(
            body, keep_blank_values=True, strict_parsing=bool(body), max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError as exc:
        raise FormRefused("The form could not be read.") from exc
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


def cookie_value(header: str | None, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header or "")
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None
