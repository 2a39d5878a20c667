"""The console's webhook endpoint pages: every operation of the API's webhook routes, through the same
capability code (webhooks.endpoints, webhooks.deliveries)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ValidationError

from checkout_core import errors
from checkout_core.clock import is_uuid7, to_iso
from checkout_core.console import access
from checkout_core.models import DeliveryStatus, Tenant
from checkout_core.routes.console_web import (
    action,
    answer,
    base,
    field,
    page,
    query,
    see_other,
    services,
)

router = Router()


def _endpoints(tenant: Tenant) -> list[Any]:
    """Every endpoint of the tenant (at most 16: one page of the API's own list)."""
    from checkout_core.webhooks.endpoints import list_endpoints
    from checkout_core.webhooks.store import MAX_ENDPOINTS

    return list(list_endpoints(services(), tenant, MAX_ENDPOINTS, None).data)


def _endpoints_answer(
    signed: access.SignedIn, notice: str | None = None, error: str | None = None, status: int = 200
) -> Response[str]:
    from checkout_core.console.webhook_pages import endpoints_page

    shown = endpoints_page(
        base(), signed.form_token, signed.tenant.tenant_id, _endpoints(signed.tenant), notice, error, status
    )
    return answer(shown)


@router.get("/console/webhooks", include_in_schema=False)
def webhooks() -> Response[str]:
    notices = {"deleted": "The endpoint was deleted; its pending deliveries were dropped."}
    return page(lambda signed: _endpoints_answer(signed, notices.get(query("done"))))


def _endpoint_request(fields: dict[str, list[str]], model: Any) -> Any:
    body: dict[str, Any] = {"url": field(fields, "url"), "eventTypes": fields.get("eventTypes", [])}
    description = field(fields, "description")
    body["description"] = description or None
    return model.model_validate_json(json.dumps(body))


def _invalid(exc: ValidationError) -> str:
    from checkout_core.routes import invalid

    return invalid(exc).message


@router.post("/console/webhooks", include_in_schema=False)
def create_endpoint() -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.models import CreateEndpointRequest
        from checkout_core.webhooks.endpoints import create_endpoint as create

        try:
            request = _endpoint_request(fields, CreateEndpointRequest)
        except ValidationError as exc:
            return _endpoints_answer(signed, error=f"Not added: {_invalid(exc)}", status=400)
        try:
            created = create(services(), signed.tenant, request)
        except (errors.InvalidRequest, errors.EndpointLimitReached) as exc:
            return _endpoints_answer(signed, error=f"Not added: {exc.message}", status=400)
        return _endpoint_answer(
            signed, created.endpointId, notice="The endpoint was added.", secret=created.secret, status=201
        )

    return action(act)


def _endpoint_answer(
    signed: access.SignedIn,
    endpoint_id: str,
    notice: str | None = None,
    error: str | None = None,
    secret: str | None = None,
    status: int = 200,
) -> Response[str]:
    from checkout_core.console.webhook_pages import endpoint_page
    from checkout_core.webhooks.deliveries import list_deliveries
    from checkout_core.webhooks.endpoints import get_endpoint

    webhooks = services()
    endpoint = get_endpoint(webhooks, signed.tenant, endpoint_id)
    wanted = query("status") if router.current_event.http_method == "GET" else ""
    status_filter = DeliveryStatus(wanted) if wanted in DeliveryStatus.__members__ else None
    cursor = (query("cursor")[:512] or None) if router.current_event.http_method == "GET" else None
    try:
        deliveries = list_deliveries(webhooks, signed.tenant, endpoint_id, status_filter, 20, cursor)
    except errors.InvalidRequest:
        deliveries = list_deliveries(webhooks, signed.tenant, endpoint_id, status_filter, 20, None)
    shown = endpoint_page(
        base(),
        signed.form_token,
        signed.tenant.tenant_id,
        endpoint,
        deliveries,
        status_filter,
        notice,
        error,
        secret,
        status,
    )
    return answer(shown)


def _endpoint_id(endpoint_id: str) -> str:
    if not is_uuid7(endpoint_id):
        raise errors.EndpointNotFound(endpoint_id)
    return endpoint_id


_ENDPOINT_NOTICES = {
    "saved": "The endpoint was saved.",
    "status": "The endpoint's status was changed.",
    "test": "A webhook.test event was queued; it appears in the log below.",
    "resent": "The delivery was queued for one more attempt.",
}


@router.get("/console/webhooks/<endpointId>", include_in_schema=False)
def endpoint(endpointId: str) -> Response[str]:
    return page(
        lambda signed: _endpoint_answer(
            signed, _endpoint_id(endpointId), _ENDPOINT_NOTICES.get(query("done"))
        )
    )


def _back(endpoint_id: str, done: str) -> Response[str]:
    return see_other(f"{base()}/webhooks/{endpoint_id}?done={done}")


@router.post("/console/webhooks/<endpointId>", include_in_schema=False)
def update_endpoint(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.models import UpdateEndpointRequest
        from checkout_core.webhooks.endpoints import update_endpoint as update

        endpoint_id = _endpoint_id(endpointId)
        try:
            request = _endpoint_request(fields, UpdateEndpointRequest)
        except ValidationError as exc:
            return _endpoint_answer(signed, endpoint_id, error=f"Not saved: {_invalid(exc)}", status=400)
        try:
            update(services(), signed.tenant, endpoint_id, request)
        except errors.InvalidRequest as exc:
            return _endpoint_answer(signed, endpoint_id, error=f"Not saved: {exc.message}", status=400)
        return _back(endpoint_id, "saved")

    return action(act)


@router.post("/console/webhooks/<endpointId>/status", include_in_schema=False)
def set_status(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.models import UpdateEndpointRequest
        from checkout_core.webhooks.endpoints import update_endpoint as update

        endpoint_id = _endpoint_id(endpointId)
        try:
            request = UpdateEndpointRequest.model_validate_json(
                json.dumps({"status": field(fields, "status")})
            )
        except ValidationError:
            return _endpoint_answer(signed, endpoint_id, error="Unknown status.", status=400)
        update(services(), signed.tenant, endpoint_id, request)
        return _back(endpoint_id, "status")

    return action(act)


@router.post("/console/webhooks/<endpointId>/rotate-secret", include_in_schema=False)
def rotate(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.endpoints import rotate_secret

        endpoint_id = _endpoint_id(endpointId)
        rotated = rotate_secret(services(), signed.tenant, endpoint_id)
        notice = "A new secret signs from now on; the old one keeps signing alongside for 24 hours."
        return _endpoint_answer(signed, endpoint_id, notice=notice, secret=rotated.secret)

    return action(act)


@router.post("/console/webhooks/<endpointId>/delete", include_in_schema=False)
def delete(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.endpoints import delete_endpoint

        delete_endpoint(services(), signed.tenant, _endpoint_id(endpointId))
        return see_other(f"{base()}/webhooks?done=deleted")

    return action(act)


@router.post("/console/webhooks/<endpointId>/test", include_in_schema=False)
def test(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.endpoints import send_test

        endpoint_id = _endpoint_id(endpointId)
        send_test(services(), signed.tenant, endpoint_id)
        return _back(endpoint_id, "test")

    return action(act)


@router.post("/console/webhooks/<endpointId>/deliveries/<deliveryId>/resend", include_in_schema=False)
def resend(endpointId: str, deliveryId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.deliveries import resend as resend_delivery

        endpoint_id = _endpoint_id(endpointId)
        if not is_uuid7(deliveryId):
            raise errors.DeliveryNotFound(deliveryId)
        resend_delivery(services(), signed.tenant, endpoint_id, deliveryId)
        return _back(endpoint_id, "resent")

    return action(act)


@router.post("/console/webhooks/<endpointId>/recover", include_in_schema=False)
def recover(endpointId: str) -> Response[str]:
    def act(signed: access.SignedIn, fields: dict[str, list[str]]) -> Response[str]:
        from checkout_core.webhooks.deliveries import recover as recover_deliveries

        endpoint_id = _endpoint_id(endpointId)
        since = _since(field(fields, "since"))
        if since is None:
            return _endpoint_answer(signed, endpoint_id, error="Give the time to recover from.", status=400)
        recovered = recover_deliveries(services(), signed.tenant, endpoint_id, since)
        return _endpoint_answer(signed, endpoint_id, notice=f"{recovered.recovered} deliveries queued again.")

    return action(act)


def _since(text: str) -> str | None:
    """A datetime-local value (no zone; the form says UTC) as the API's time."""
    for shape in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return to_iso(datetime.strptime(text, shape).replace(tzinfo=UTC))
        except ValueError:
            continue
    return None
