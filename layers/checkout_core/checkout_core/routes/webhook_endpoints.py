"""Webhook endpoints, their delivery log, resend and recover: the routes of
functions/webhook_endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from checkout_core.http import tenant_of
from checkout_core.models import (
    CreateEndpointRequest,
    Delivery,
    DeliveryList,
    DeliveryStatus,
    RecoverRequest,
    RecoverResponse,
    UpdateEndpointRequest,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointWithSecret,
)
from checkout_core.routes import error_responses, refuse_unknown_query, success

router = Router()

EndpointId = Annotated[str, Path(description="UUIDv7 of the webhook endpoint")]
DeliveryId = Annotated[str, Path(description="UUIDv7 of the delivery")]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=512)]


def _services() -> Any:
    from checkout_core.webhooks.services import get_services

    return get_services()


def _answer(model: Any, status: int) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=model.model_dump_json()
    )


@router.post(
    "/v1/webhook-endpoints",
    operation_id="createWebhookEndpoint",
    summary="Create a webhook endpoint (its secret is shown only in this answer)",
    responses={
        **success(WebhookEndpointWithSecret, 201, "Created"),
        **error_responses(400, 401, 409, 422, 503),
    },
)
def create_endpoint(body: CreateEndpointRequest) -> Response[str]:
    from checkout_core.webhooks.endpoints import create_endpoint as create

    return _answer(create(_services(), tenant_of(router), body), 201)


@router.get(
    "/v1/webhook-endpoints",
    operation_id="listWebhookEndpoints",
    summary="List webhook endpoints, newest first",
    responses={**success(WebhookEndpointList), **error_responses(400, 401)},
)
def list_endpoints(limit: Limit = 20, cursor: Cursor = None) -> WebhookEndpointList:
    refuse_unknown_query(router, {"limit", "cursor"})
    from checkout_core.webhooks.endpoints import list_endpoints as list_page

    return list_page(_services(), tenant_of(router), limit, cursor)


@router.get(
    "/v1/webhook-endpoints/<endpointId>",
    operation_id="getWebhookEndpoint",
    summary="Read one webhook endpoint (never its secret)",
    responses={**success(WebhookEndpoint), **error_responses(400, 401, 404)},
)
def get_endpoint(endpointId: EndpointId) -> WebhookEndpoint:
    from checkout_core.webhooks.endpoints import get_endpoint as read

    return read(_services(), tenant_of(router), endpointId)


@router.patch(
    "/v1/webhook-endpoints/<endpointId>",
    operation_id="updateWebhookEndpoint",
    summary="Change url, eventTypes, description or status",
    responses={**success(WebhookEndpoint), **error_responses(400, 401, 404, 503)},
)
def update_endpoint(endpointId: EndpointId, body: UpdateEndpointRequest) -> WebhookEndpoint:
    from checkout_core.webhooks.endpoints import update_endpoint as update

    return update(_services(), tenant_of(router), endpointId, body)


@router.delete(
    "/v1/webhook-endpoints/<endpointId>",
    operation_id="deleteWebhookEndpoint",
    summary="Delete a webhook endpoint; its pending deliveries are dropped",
    responses={204: {"description": "Deleted"}, **error_responses(400, 401, 404, 503)},
)
def delete_endpoint(endpointId: EndpointId) -> Response[str]:
    from checkout_core.webhooks.endpoints import delete_endpoint as delete

    delete(_services(), tenant_of(router), endpointId)
    # API Gateway would call a body without a type JSON; an empty one is not.
    return Response(status_code=204, body="", content_type=content_types.TEXT_PLAIN)


@router.post(
    "/v1/webhook-endpoints/<endpointId>/rotate-secret",
    operation_id="rotateWebhookSecret",
    summary="A new secret (shown once); each one rotated out keeps signing alongside for 24 h",
    responses={**success(WebhookEndpointWithSecret), **error_responses(400, 401, 404, 409, 422, 503)},
)
def rotate_secret(endpointId: EndpointId) -> WebhookEndpointWithSecret:
    from checkout_core.webhooks.endpoints import rotate_secret as rotate

    return rotate(_services(), tenant_of(router), endpointId)


@router.post(
    "/v1/webhook-endpoints/<endpointId>/test",
    operation_id="testWebhookEndpoint",
    summary="Deliver a webhook.test event now",
    responses={**success(Delivery, 202, "Accepted"), **error_responses(400, 401, 404, 409, 422, 503)},
)
def send_test(endpointId: EndpointId) -> Response[str]:
    from checkout_core.webhooks.endpoints import send_test as test

    return _answer(test(_services(), tenant_of(router), endpointId), 202)


@router.get(
    "/v1/webhook-endpoints/<endpointId>/deliveries",
    operation_id="listWebhookDeliveries",
    summary="The delivery log, newest first (kept 30 days)",
    responses={**success(DeliveryList), **error_responses(400, 401, 404)},
)
def list_deliveries(
    endpointId: EndpointId,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> DeliveryList:
    refuse_unknown_query(router, {"status", "limit", "cursor"})
    from checkout_core.webhooks.deliveries import list_deliveries as list_page

    return list_page(_services(), tenant_of(router), endpointId, status, limit, cursor)


@router.post(
    "/v1/webhook-endpoints/<endpointId>/deliveries/<deliveryId>/resend",
    operation_id="resendWebhookDelivery",
    summary="One more attempt of a delivery now (after the session's earlier events to this endpoint)",
    responses={**success(Delivery, 202, "Accepted"), **error_responses(400, 401, 404, 409, 422, 503)},
)
def resend(endpointId: EndpointId, deliveryId: DeliveryId) -> Response[str]:
    from checkout_core.clock import is_uuid7
    from checkout_core.errors import InvalidRequest
    from checkout_core.webhooks.deliveries import resend as resend_delivery

    if not is_uuid7(deliveryId):
        raise InvalidRequest("deliveryId must be a UUID version 7 in lowercase canonical form.", "deliveryId")
    return _answer(resend_delivery(_services(), tenant_of(router), endpointId, deliveryId), 202)


@router.post(
    "/v1/webhook-endpoints/<endpointId>/recover",
    operation_id="recoverWebhookDeliveries",
    summary="Send again the FAILED or EXHAUSTED deliveries since a time, the oldest 100 per call",
    responses={**success(RecoverResponse, 202, "Accepted"), **error_responses(400, 401, 404, 409, 422, 503)},
)
def recover(endpointId: EndpointId, body: RecoverRequest) -> Response[str]:
    from checkout_core.webhooks.deliveries import recover as recover_deliveries

    return _answer(recover_deliveries(_services(), tenant_of(router), endpointId, body.since), 202)
