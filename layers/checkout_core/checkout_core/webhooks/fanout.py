"""From the bus to deliveries: each event becomes one Delivery item per matching endpoint and one message
in the delivery queue's group of that endpoint + session.

The bus promises no order, so each session's events are fanned out in `sequence` order by a watermark
(`fannedOut`) moved in the same transaction that writes the event's deliveries: an event that arrives
before its predecessors fans them out first, from the timeline; one that arrives again finds the
watermark past it and writes nothing. Messages are sent after their deliveries are written; if that send
never happens, the deliveries' `checkAt` brings the scheduled job to send them. For a tenant with no
endpoints nothing is written at all; an endpoint receives only events that occurred after it was made, so
a watermark left behind then has nothing to catch up but its own position.

A tenant's endpoints are kept from batch to batch with the tag they were read at; the transaction that
writes an event's deliveries checks that tag on the tenant's copy of the session's shard, so an endpoint
made, deleted, disabled or retyped before it commits (so before any event it did not see was committed
after) fails it, and the endpoints are read again. No read per batch, and no write of the tenant's one key."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from checkout_core.errors import ConcurrentUpdate
from checkout_core.observability import logger
from checkout_core.views import event_view
from checkout_core.webhooks.deliveries import body_of, first_message, new_delivery
from checkout_core.webhooks.queue import Message
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.store import EndpointsChanged, WatermarkMoved

TENANT_CACHE_SIZE = 10_000
_tenant_of_session: OrderedDict[str, str] = OrderedDict()  # a session's tenant never changes
# tenant -> (its endpoints tag, its endpoints): kept while the transactions that use them find the tag
# unchanged (each checks it on the tenant's copy of its session's shard)
_endpoints_of_tenant: dict[str, tuple[str, list[dict[str, Any]]]] = {}
READ_ATTEMPTS = 3


def _tenants(services: WebhookServices, session_ids: list[str]) -> dict[str, str]:
    missing = [s for s in session_ids if s not in _tenant_of_session]
    if missing:
        for session_id, tenant in services.db.tenants_of(missing).items():
            _tenant_of_session[session_id] = tenant
            while len(_tenant_of_session) > TENANT_CACHE_SIZE:
                _tenant_of_session.popitem(last=False)
    return {s: _tenant_of_session[s] for s in session_ids if s in _tenant_of_session}


def matches(endpoint: dict[str, Any], event: dict[str, Any]) -> bool:
    """The endpoint asked for this type (no types: every type), and existed when the event occurred: an
    event fanned out late (from the timeline, after a gap) never reaches an endpoint made after it."""
    types = endpoint.get("eventTypes") or []
    return (not types or event["type"] in types) and endpoint["createdAt"] <= event["occurredAt"]


class FanOut:
    """One batch of events: endpoints read once per tenant at most, messages sent once at the end."""

    def __init__(self, services: WebhookServices) -> None:
        self.services = services
        self.messages: list[Message] = []
        self._read_now: dict[str, tuple[str | None, list[dict[str, Any]]]] = {}

    def endpoints(self, tenant_id: str) -> tuple[str | None, list[dict[str, Any]]]:
        """The tenant's endpoints tag and endpoints: as this batch read them, else as kept from an earlier
        batch (the transaction that uses them checks the tag, so a change since is found there), else read
        now, strongly consistent. A tenant with no endpoints is read again in every batch: its first
        endpoint writes nothing the fan-out would check."""
        if tenant_id in self._read_now:
            return self._read_now[tenant_id]
        kept = _endpoints_of_tenant.get(tenant_id)
        if kept is not None:
            return kept
        for _ in range(READ_ATTEMPTS):
            version, tag, endpoints = self.services.db.endpoints_and_tag(tenant_id)
            if endpoints and tag is None and version is not None:
                # endpoints made before the tags: give the tenant one (lost to a change or another
                # fan-out: read again)
                tag = self.services.db.tag_endpoints(tenant_id, version)
                if tag is None:
                    continue
            if endpoints and tag is not None:
                _endpoints_of_tenant[tenant_id] = (tag, endpoints)
            else:
                _endpoints_of_tenant.pop(tenant_id, None)
            self._read_now[tenant_id] = (tag, endpoints)
            return tag, endpoints
        raise ConcurrentUpdate()

    def changed(self, tenant_id: str) -> None:
        """A transaction found the tenant's endpoints tag moved: what this fan-out knows of them is old."""
        _endpoints_of_tenant.pop(tenant_id, None)
        self._read_now.pop(tenant_id, None)

    def _check_at(self) -> tuple[int, int]:
        """Now, and when the safety net looks at a session again after this fan-out moved its watermark."""
        now = self.services.now
        return now, now + self.services.settings.webhook_requeue_grace_seconds

    def tenants(self, session_ids: list[str]) -> dict[str, str]:
        """The sessions' tenants (kept: a session's tenant never changes)."""
        return _tenants(self.services, session_ids)

    def run(self, events: list[dict[str, Any]]) -> None:
        tenants = self.tenants([event["sessionId"] for event in events])
        for event in events:
            tenant = tenants.get(event["sessionId"])
            if tenant is None:
                logger.warning("event of an unknown session", extra={"sessionId": event["sessionId"]})
                continue
            self.event(tenant, event)
        self.flush()

    def flush(self) -> None:
        if self.messages:
            self.services.messages.send(self.messages)
            self.messages = []

    def together(self, pairs: list[tuple[str, dict[str, Any]]]) -> bool:
        """The whole batch in one transaction: each session's events in it move its watermark at once. False
        when that cannot be (a session's events with a
        gap, too many items) or the transaction is refused; then the events go one by one, which sorts
        out why."""
        sessions: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        for tenant_id, event in pairs:
            sessions.setdefault(event["sessionId"], (tenant_id, []))[1].append(event)
        writes = []
        messages: list[Message] = []
        for session_id, (tenant_id, events) in sessions.items():
            sequences = [event["sequence"] for event in events]
            if sequences != list(range(sequences[0], sequences[0] + len(sequences))):
                return False
            tag, endpoints = self.endpoints(tenant_id)
            if not endpoints or tag is None:
                continue  # nothing to deliver, nothing to keep in order
            by_id = {endpoint["endpointId"]: endpoint["version"] for endpoint in endpoints}
            deliveries = []
            for event in events:
                body = body_of(event)
                for endpoint in endpoints:
                    if matches(endpoint, event):
                        deliveries.append(new_delivery(self.services, tenant_id, endpoint, event, body))
            writes.append((session_id, tenant_id, sequences[0], sequences[-1], deliveries, tag))
            messages += [
                first_message(delivery, by_id[delivery["endpointId"]])
                for delivery in deliveries
                if "checkAt" in delivery
            ]
        if writes and not self.services.db.fan_out_together(writes, self._check_at()):
            return False  # one by one: a tenant whose endpoints changed is read again there
        self.messages += messages
        return True

    def event(self, tenant_id: str, event: dict[str, Any]) -> None:
        try:
            self._write(tenant_id, event)
        except WatermarkMoved as moved:
            if moved.fanned_out >= event["sequence"]:
                return  # fanned out already
            for missed in self.services.db.events_after(event["sessionId"], moved.fanned_out):
                if missed["sequence"] > event["sequence"]:
                    break
                self._write(tenant_id, event_view(missed).model_dump(mode="json"))

    def _write(self, tenant_id: str, event: dict[str, Any]) -> None:
        body = body_of(event)
        for _ in range(READ_ATTEMPTS):
            tag, endpoints = self.endpoints(tenant_id)
            if not endpoints or tag is None:
                return  # nothing to deliver; a watermark left behind is caught up when an endpoint comes
            chosen = [e for e in endpoints if matches(e, event)]
            deliveries = [new_delivery(self.services, tenant_id, e, event, body) for e in chosen]
            try:
                self.services.db.fan_out(
                    deliveries, event["sessionId"], tenant_id, event["sequence"], self._check_at(), tag
                )
            except EndpointsChanged:
                self.changed(tenant_id)  # made, deleted, enabled, disabled, retyped since: read them again
                continue
            versions = {endpoint["endpointId"]: endpoint["version"] for endpoint in chosen}
            self.messages += [
                first_message(delivery, versions[delivery["endpointId"]])
                for delivery in deliveries
                if "checkAt" in delivery
            ]
            return
        raise ConcurrentUpdate()


def catch_up(services: WebhookServices, session_id: str) -> None:
    """Fans out whatever of the session's timeline the watermark has not reached (after a local restart
    lost the queue that carried it)."""
    fan_out = FanOut(services)
    tenants = fan_out.tenants([session_id])
    if session_id not in tenants:
        return
    done = services.db.fanned_out(session_id)
    for missed in services.db.events_after(session_id, done):
        fan_out.event(tenants[session_id], event_view(missed).model_dump(mode="json"))
    fan_out.flush()
