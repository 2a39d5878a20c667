"""Sessions: create one, read one, list a tenant's, read a timeline, find the session behind a pay link."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from checkout_core import tallies
from checkout_core.api_keys import hash_secret
from checkout_core.changes import attempts, epoch, new_event, owned_session
from checkout_core.clock import from_epoch, to_iso, uuid7
from checkout_core.context import Context
from checkout_core.errors import ConcurrentUpdate, InvalidRequest, WriteConflict
from checkout_core.models import CreateSessionRequest, Event, Session, SessionList, Tenant
from checkout_core.observability import count_transition, logger
from checkout_core.repository import encode_cursor, reference_cursor, reference_partition, shard_of
from checkout_core.transitions import SessionStatus, effective_status
from checkout_core.views import event_view, session_view

# Lambda's answer limit is 6 MB; what is left is for headers and the page's own envelope.
LIST_ANSWER_BUDGET_BYTES = 5_000_000


def get_session(ctx: Context, tenant: Tenant, session_id: str) -> Session:
    return session_view(owned_session(ctx.repository, tenant, session_id), ctx.clock())


def list_sessions(
    ctx: Context,
    tenant: Tenant,
    status: SessionStatus | None,
    limit: int,
    cursor: str | None,
    reference_id: str | None = None,
) -> SessionList:
    if reference_id is not None:
        items, next_cursor = _by_reference(ctx, tenant, reference_id, status, limit, cursor)
        partition = reference_partition(tenant.tenant_id, reference_id)
        return _page_of(ctx, items, next_cursor, lambda item: reference_cursor(item, partition))
    now = epoch(ctx.clock())

    def has_status(item: dict[str, Any]) -> bool:
        # The effective status: an OPEN session past expiresAt with nothing in flight is EXPIRED.
        return effective_status(item["status"], item["expiresAt"], item.get("inFlight", 0), now) is status

    keep = has_status if status is not None else None
    items, next_cursor = ctx.repository.list_sessions(tenant.tenant_id, limit, cursor, keep)
    return _page_of(ctx, items, next_cursor, encode_cursor)


def _by_reference(
    ctx: Context,
    tenant: Tenant,
    reference_id: str,
    status: SessionStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Sessions with exactly this referenceId: few per reference, so the status (the effective one)
    is checked on the sessions read rather than in the index."""
    now = epoch(ctx.clock())

    def wanted(item: dict[str, Any]) -> bool:
        effective = effective_status(item["status"], item["expiresAt"], item.get("inFlight", 0), now)
        return status is None or effective is status

    return ctx.repository.list_sessions_by_reference(tenant.tenant_id, reference_id, limit, cursor, wanted)


def _page_of(
    ctx: Context,
    items: list[dict[str, Any]],
    next_cursor: str | None,
    resume_after: Callable[[dict[str, Any]], str],
) -> SessionList:
    moment = ctx.clock()
    page: list[Session] = []
    size = 0
    for index, item in enumerate(items):
        view = session_view(item, moment)
        size += _answer_bytes(view)
        if page and size > LIST_ANSWER_BUDGET_BYTES:
            # Lambda refuses an answer over 6 MB: the page ends here and the cursor resumes after it.
            return SessionList(data=page, nextCursor=resume_after(items[index - 1]))
        page.append(view)
    return SessionList(data=page, nextCursor=next_cursor)


def _answer_bytes(view: Session) -> int:
    """What a session adds to the Lambda answer: its JSON (non-ASCII escaped, as the resolver writes it),
    itself escaped again inside the proxy answer's body string."""
    return len(json.dumps(json.dumps(view.model_dump(mode="json"))))


def list_events(ctx: Context, tenant: Tenant, session_id: str) -> list[Event]:
    owned_session(ctx.repository, tenant, session_id)
    return [event_view(item) for item in ctx.repository.list_events(session_id)]


def create_session(
    ctx: Context, tenant: Tenant, request: CreateSessionRequest, public_base_url: str
) -> Session:
    settings = ctx.settings
    ttl = request.expiresInSeconds
    if ttl is None:
        ttl = settings.session_ttl_default_seconds
    if not settings.session_ttl_min_seconds <= ttl <= settings.session_ttl_max_seconds:
        raise InvalidRequest(
            f"expiresInSeconds must be between {settings.session_ttl_min_seconds} and "
            f"{settings.session_ttl_max_seconds}.",
            "expiresInSeconds",
        )
    for field, url in (("returnUrl", request.returnUrl), ("cancelUrl", request.cancelUrl)):
        if url is None:
            continue
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" and not settings.local_runtime:
            raise InvalidRequest(f"{field} must use https (http to {host} is accepted locally only).", field)
        if host not in tenant.return_hosts:
            extend = (
                "LOCAL_RETURN_HOSTS (comma separated; restart make run)"
                if settings.local_runtime
                else "make api-key --return-hosts"
            )
            raise InvalidRequest(
                f"{field} host {host} is not in this account's allowlist; add it with {extend}.", field
            )
    now = ctx.clock()
    session_id = uuid7()
    token = secrets.token_urlsafe(24)
    expires_at = math.ceil((now + timedelta(seconds=ttl)).timestamp())
    item: dict[str, Any] = {
        "pk": f"SESSION#{session_id}",
        "sk": "SESSION",
        "entity": "SESSION",
        "sessionId": session_id,
        "tenantId": tenant.tenant_id,
        "status": SessionStatus.OPEN.value,
        "amount": request.amount,
        "currency": request.currency,
        "referenceId": request.referenceId,
        "metadata": dict(request.metadata),
        "returnUrl": request.returnUrl,
        "createdAt": to_iso(now),
        "updatedAt": to_iso(now),
        "expiresAt": expires_at,
        "version": 1,
        "seq": 1,
        "inFlight": 0,
        "txCount": 0,
        "transactions": {},
        "openShard": f"OPEN#{shard_of(session_id)}",
        "tenantReference": reference_partition(tenant.tenant_id, request.referenceId),
        # The counter item its outcomes move; the finaliser's own write reads it from here.
        "statsKey": tallies.counter_pk(tenant.tenant_id, tallies.tally_shard(session_id)),
    }
    if request.customerId is not None:
        item["customerId"] = request.customerId
    if request.description is not None:
        item["description"] = request.description
    if request.cancelUrl is not None:
        item["cancelUrl"] = request.cancelUrl
    if tenant.merchant_name:
        item["merchantName"] = tenant.merchant_name  # as the hosted page names the merchant
    event = new_event(
        "session.created",
        "api",
        now,
        {
            "amount": request.amount,
            "currency": request.currency,
            "referenceId": request.referenceId,
            "expiresAt": to_iso(from_epoch(expires_at)),
        },
    )
    token_hash = hash_secret(token)
    for attempt in attempts():
        try:
            ctx.repository.create_session(item, token_hash, event, attempt)
            break
        except WriteConflict as conflict:
            # The session is new: only another write of the same counter item can have been in the way.
            if not conflict.part.startswith("counter:"):
                raise
    else:
        raise ConcurrentUpdate()
    count_transition("SessionCreated")
    logger.info("session created", extra={"sessionId": session_id, "tenantId": tenant.tenant_id})
    return session_view(item, now, url=f"{public_base_url.rstrip('/')}/pay/{token}")
