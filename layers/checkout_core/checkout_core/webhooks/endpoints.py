"""A tenant's webhook endpoints (at most 16): create (the secret shown once, kept only sealed: secret_box.py),
list, read, update, delete, rotate the secret (each one rotated out signs alongside for 24 h) and send a
test ping."""

from __future__ import annotations

from typing import Any

from checkout_core.clock import is_uuid7, to_iso, uuid7
from checkout_core.errors import ConcurrentUpdate, EndpointNotFound, InvalidRequest
from checkout_core.models import (
    CreateEndpointRequest,
    Delivery,
    Tenant,
    UpdateEndpointRequest,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointWithSecret,
)
from checkout_core.webhooks.addresses import UnsafeUrl, check_endpoint_url
from checkout_core.webhooks.deliveries import body_of, delivery_view, first_message, new_delivery
from checkout_core.webhooks.secret_box import open_secret, seal_secret
from checkout_core.webhooks.services import WebhookServices
from checkout_core.webhooks.signing import new_secret
from checkout_core.webhooks.store import Stale, endpoint_key

ROTATION_OVERLAP_SECONDS = 24 * 3600
UPDATE_ATTEMPTS = 5


def endpoint_view(item: dict[str, Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        endpointId=item["endpointId"],
        url=item["url"],
        eventTypes=item.get("eventTypes") or [],
        description=item.get("description"),
        status=item["status"],
        disabledReason=item.get("disabledReason"),
        createdAt=item["createdAt"],
        updatedAt=item["updatedAt"],
    )


def signing_secrets(endpoint: dict[str, Any], now: int) -> list[str]:
    """The current secret, and each one rotated out in the last 24 h (each for 24 h from its rotation)."""
    endpoint_id = endpoint["endpointId"]
    secrets = [open_secret(endpoint["secret"], endpoint_id)]
    for previous in endpoint.get("previousSecrets") or []:
        if int(previous["until"]) > now:
            secrets.append(open_secret(previous["secret"], endpoint_id))
    return secrets


def expired_secrets(endpoint: dict[str, Any], now: int) -> bool:
    """Whether the endpoint still keeps a rotated-out secret whose 24 h are over."""
    return any(int(previous["until"]) <= now for previous in endpoint.get("previousSecrets") or [])


def without_expired_secrets(endpoint: dict[str, Any], now: int) -> list[dict[str, Any]]:
    return [p for p in endpoint.get("previousSecrets") or [] if int(p["until"]) > now]


def _checked_url(services: WebhookServices, url: str) -> str:
    try:
        return check_endpoint_url(url, services.settings.webhook_allow_private_urls)
    except UnsafeUrl as exc:
        raise InvalidRequest(f"{exc}.", "url") from exc


def owned_endpoint(services: WebhookServices, tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    if not is_uuid7(endpoint_id):
        raise InvalidRequest("endpointId must be a UUID version 7 in lowercase canonical form.", "endpointId")
    item = services.db.get_endpoint(tenant.tenant_id, endpoint_id)
    if item is None:
        raise EndpointNotFound(endpoint_id)
    return item


def create_endpoint(
    services: WebhookServices, tenant: Tenant, request: CreateEndpointRequest
) -> WebhookEndpointWithSecret:
    url = _checked_url(services, request.url)
    endpoint_id = uuid7()
    now = to_iso(services.clock())
    item = {
        **endpoint_key(tenant.tenant_id, endpoint_id),
        "entity": "ENDPOINT",
        "tenantId": tenant.tenant_id,
        "endpointId": endpoint_id,
        "url": url,
        "eventTypes": [event_type.value for event_type in request.eventTypes],
        "status": "ENABLED",
        "version": 1,
        "createdAt": now,
        "updatedAt": now,
    }
    if request.description is not None:
        item["description"] = request.description
    secret = new_secret()
    item["secret"] = seal_secret(secret, endpoint_id)  # shown once, here; kept only sealed
    services.db.create_endpoint(item)
    return WebhookEndpointWithSecret(**endpoint_view(item).model_dump(), secret=secret)


def get_endpoint(services: WebhookServices, tenant: Tenant, endpoint_id: str) -> WebhookEndpoint:
    return endpoint_view(owned_endpoint(services, tenant, endpoint_id))


def list_endpoints(
    services: WebhookServices, tenant: Tenant, limit: int, cursor: str | None
) -> WebhookEndpointList:
    items, next_cursor = services.db.list_endpoints(tenant.tenant_id, limit, cursor)
    return WebhookEndpointList(data=[endpoint_view(item) for item in items], nextCursor=next_cursor)


def update_endpoint(
    services: WebhookServices, tenant: Tenant, endpoint_id: str, request: UpdateEndpointRequest
) -> WebhookEndpoint:
    given = request.model_fields_set
    changes: dict[str, Any] = {}
    remove: list[str] = []
    if request.url is not None:
        changes["url"] = _checked_url(services, request.url)
    if request.eventTypes is not None:
        changes["eventTypes"] = [event_type.value for event_type in request.eventTypes]
    if "description" in given:
        if request.description is None:
            remove.append("description")
        else:
            changes["description"] = request.description
    if request.status is not None:
        changes["status"] = request.status.value
        if request.status.value == "ENABLED":
            remove += ["disabledReason", "failingSince"]
        else:
            changes["disabledReason"] = "MANUAL"
    return endpoint_view(_change(services, tenant, endpoint_id, lambda item: (changes, remove)))


def _change(services: WebhookServices, tenant: Tenant, endpoint_id: str, decide: Any) -> dict[str, Any]:
    """Applies `decide(item) -> (set, remove)` to the endpoint as read, retrying when it changed meanwhile."""
    for _ in range(UPDATE_ATTEMPTS):
        item = owned_endpoint(services, tenant, endpoint_id)
        changes, remove = decide(item)
        if item.get("status") == "DISABLED" and changes.get("status") == "DISABLED":
            changes = {k: v for k, v in changes.items() if k != "disabledReason"}  # keep why it was disabled
        try:
            return services.db.update_endpoint(
                item, {**changes, "updatedAt": to_iso(services.clock())}, remove, bump_tenant=True
            )
        except Stale:
            continue
    raise ConcurrentUpdate()


def delete_endpoint(services: WebhookServices, tenant: Tenant, endpoint_id: str) -> None:
    owned_endpoint(services, tenant, endpoint_id)
    if not services.db.delete_endpoint(tenant.tenant_id, endpoint_id):
        raise EndpointNotFound(endpoint_id)


def rotate_secret(services: WebhookServices, tenant: Tenant, endpoint_id: str) -> WebhookEndpointWithSecret:
    secret = new_secret()
    sealed = seal_secret(secret, endpoint_id)

    def decide(item: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        # Every secret rotated out signs for its own 24 h, however many rotations follow; older ones go.
        now = services.now
        rotated_out = {"secret": item["secret"], "until": now + ROTATION_OVERLAP_SECONDS}
        return {"secret": sealed, "previousSecrets": [*without_expired_secrets(item, now), rotated_out]}, []

    item = _change(services, tenant, endpoint_id, decide)
    return WebhookEndpointWithSecret(**endpoint_view(item).model_dump(), secret=secret)


def send_test(services: WebhookServices, tenant: Tenant, endpoint_id: str) -> Delivery:
    """A `webhook.test` event to this endpoint now, whatever its eventTypes; logged like any delivery."""
    endpoint = owned_endpoint(services, tenant, endpoint_id)
    event = {
        "eventId": uuid7(),
        "type": "webhook.test",
        "sessionId": None,
        "sequence": 0,
        "occurredAt": to_iso(services.clock()),
        "actor": "api",
        "data": {"endpointId": endpoint_id},
    }
    delivery = new_delivery(services, tenant.tenant_id, endpoint, event, body_of(event))
    services.db.put_delivery(delivery)
    if "checkAt" in delivery:
        services.messages.send([first_message(delivery, endpoint["version"])])
    return delivery_view(delivery)
