"""HTTP edge: the resolver factory, the ONE mapping from domain errors to the API's error
bodies, the request id on every response, and Idempotency-Key handling for POSTs."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from checkout_core import errors
from checkout_core.models import Tenant
from checkout_core.observability import logger

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
_LOCATION_PREFIXES = ("body", "query", "path", "header")


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    code: str


# The one table from domain errors to the API's status and code. Order matters: first match wins.
ERROR_TABLE: list[tuple[type[errors.DomainError], ErrorSpec]] = [
    (errors.InvalidRequest, ErrorSpec(400, "invalid_request")),
    (errors.InvalidApiKey, ErrorSpec(401, "invalid_api_key")),
    (errors.InvalidSignature, ErrorSpec(401, "invalid_signature")),
    (errors.PaymentDeclined, ErrorSpec(402, "payment_declined")),
    (errors.SessionNotFound, ErrorSpec(404, "session_not_found")),
    (errors.TransactionNotFound, ErrorSpec(404, "transaction_not_found")),
    (errors.EndpointNotFound, ErrorSpec(404, "endpoint_not_found")),
    (errors.DeliveryNotFound, ErrorSpec(404, "delivery_not_found")),
    (errors.EndpointLimitReached, ErrorSpec(409, "endpoint_limit_reached")),
    (errors.SessionNotCancellable, ErrorSpec(409, "session_not_cancellable")),
    (errors.SessionExpired, ErrorSpec(409, "session_expired")),
    (errors.SessionNotOpen, ErrorSpec(409, "session_not_open")),
    (errors.TransactionsInFlight, ErrorSpec(409, "transactions_in_flight")),
    (errors.TransactionLimitReached, ErrorSpec(409, "transaction_limit_reached")),
    (errors.IdempotencyInProgress, ErrorSpec(409, "idempotency_in_progress")),
    (errors.IdempotencyKeyReused, ErrorSpec(422, "idempotency_key_reused")),
    (errors.ConcurrentUpdate, ErrorSpec(503, "service_unavailable")),
    (errors.ServiceUnavailable, ErrorSpec(503, "service_unavailable")),
]


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str | None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[str]:
    body = {
        "code": code,
        "message": message,
        "param": extra.pop("param", None),
        **extra,
        "requestId": request_id,
    }
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": body}),
        headers=headers or {},
    )


def domain_error_response(exc: errors.DomainError, request_id: str | None) -> Response[str]:
    spec = next((spec for error_type, spec in ERROR_TABLE if isinstance(exc, error_type)), None)
    if spec is None:
        return internal_error_response(request_id)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, errors.InvalidRequest):
        extra["param"] = exc.param
    if isinstance(exc, errors.StateConflict):
        extra["currentStatus"] = exc.current_status
    if isinstance(exc, errors.TransactionsInFlight):
        extra["pendingTransactionIds"] = exc.pending_transaction_ids
    if isinstance(exc, errors.PaymentDeclined):
        extra.update(transactionId=exc.transaction_id, failureCode=exc.failure_code)
    if isinstance(exc, errors.ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if isinstance(exc, errors.ConcurrentUpdate):
        headers["Retry-After"] = "1"
    return error_response(spec.status, spec.code, exc.message, request_id, headers, **extra)


def internal_error_response(request_id: str | None) -> Response[str]:
    return error_response(500, "internal_error", "An unexpected error occurred.", request_id)


def param_of(location: tuple[Any, ...] | list[Any]) -> str | None:
    """The dotted path of the offending field; None for the body as a whole. pydantic's `[key]` segment
    (a dict key failed its own rule) is dropped: the key is already named."""
    parts = [str(part) for part in location if part != "[key]"]
    if parts and parts[0] in _LOCATION_PREFIXES:
        parts = parts[1:]
    return ".".join(parts) if parts else None


def validation_message(kind: str, param: str | None, detail: str) -> str:
    if kind == "extra_forbidden":
        return f"Unknown field {json.dumps(param)}."
    if kind == "missing":
        return "A JSON body is required." if param is None else f"{param} is required."
    return f"{param or 'body'}: {detail}."


def validation_error_response(exc: RequestValidationError, request_id: str | None) -> Response[str]:
    details = list(exc.errors())
    first = details[0] if details else {}
    location = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return error_response(400, "invalid_request", "The body is not valid JSON.", request_id, param=None)
    param = param_of(location)
    message = validation_message(first.get("type", ""), param, first.get("msg", "is invalid"))
    return error_response(400, "invalid_request", message, request_id, param=param)


def request_id_of(app: APIGatewayRestResolver) -> str | None:
    return app.current_event.request_context.request_id


def create_app() -> APIGatewayRestResolver:
    """A resolver with validation on and every error answered in the API's error shape."""
    app = APIGatewayRestResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[str]:
        return validation_error_response(exc, request_id_of(app))

    @app.exception_handler(errors.DomainError)
    def _domain(exc: errors.DomainError) -> Response[str]:
        if isinstance(exc, errors.ServiceUnavailable | errors.ConcurrentUpdate):
            logger.warning("answered 503", extra={"error": type(exc).__name__})
        return domain_error_response(exc, request_id_of(app))

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response[str]:
        return error_response(404, "not_found", "No such route.", request_id_of(app))

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return internal_error_response(request_id_of(app))

    return app


def tenant_of(app: Any) -> Tenant:
    """The tenant the authorizer resolved from the API key."""
    authorizer = app.current_event.request_context.authorizer.raw_event or {}
    tenant_id = authorizer.get("tenantId")
    if not tenant_id:
        raise errors.InvalidApiKey()
    hosts = authorizer.get("returnHosts") or ""
    return Tenant(
        tenant_id=tenant_id,
        return_hosts=frozenset(h.strip().lower() for h in hosts.split(",") if h),
        merchant_name=authorizer.get("merchantName") or None,
    )


def public_base_url(app: Any, configured: str) -> str:
    """PUBLIC_BASE_URL, or the API's own URL as the caller reached it."""
    if configured:
        return configured
    event = app.current_event
    host = event.headers.get("Host") or event.headers.get("host") or "localhost"
    scheme = event.headers.get("X-Forwarded-Proto") or event.headers.get("x-forwarded-proto") or "https"
    stage = event.request_context.stage
    prefix = f"/{stage}" if stage and ".execute-api." in host else ""
    return f"{scheme}://{host}{prefix}"


# -- the Lambda side -----------------------------------------------------------------------------------


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def set_header(response: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    """Sets a header on a resolved proxy answer, whichever header map the resolver used."""
    if response.get("multiValueHeaders") is not None:
        response["multiValueHeaders"] = {**response["multiValueHeaders"], name: [value]}
    else:
        response["headers"] = {**(response.get("headers") or {}), name: value}
    return response


def _with_request_id(response: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    return set_header(response, "X-Request-Id", request_id) if request_id else response


def _error_dict(response: Response[str]) -> dict[str, Any]:
    return {
        "statusCode": response.status_code,
        "headers": {
            "Content-Type": content_types.APPLICATION_JSON,
            **{k: str(v) for k, v in response.headers.items()},
        },
        "body": response.body,
        "isBase64Encoded": False,
    }


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _is_utf8(event: dict[str, Any]) -> bool:
    """API Gateway hands over a body that is not UTF-8 text base64-encoded."""
    if not event.get("isBase64Encoded"):
        return True
    try:
        base64.b64decode(event["body"], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _is_json_object_or_invalid(body: str) -> bool:
    """False only for valid JSON that is neither an object nor null; invalid JSON is the route's to report."""
    try:
        return isinstance(json.loads(body), dict | None)
    except ValueError:
        return True


def valid_idempotency_key(key: str) -> bool:
    return 1 <= len(key) <= 255 and all(0x20 <= ord(ch) <= 0x7E for ch in key)


class _DoNotStore(Exception):
    """Carries a 5xx answer out of the idempotent call so that it is not stored and a retry can succeed."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__("server error answered")
        self.response = response


def handle(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Resolves one API Gateway event: Idempotency-Key for POSTs, X-Request-Id on every answer."""
    request_id = request_id_of_event(event)
    if event.get("body") and not _is_utf8(event):
        not_text = error_response(
            400, "invalid_request", "The body is not valid UTF-8.", request_id, param=None
        )
        return _with_request_id(_error_dict(not_text), request_id)
    if event.get("body") and not _is_json(_header(event, "Content-Type")):
        wrong_type = error_response(
            400,
            "invalid_request",
            "Bodies must be JSON with Content-Type: application/json.",
            request_id,
            param="Content-Type",
        )
        return _with_request_id(_error_dict(wrong_type), request_id)
    if event.get("body") and not _is_json_object_or_invalid(event["body"]):
        # Powertools would take a one-element array for the object inside it; every body here is an object.
        not_object = error_response(
            400, "invalid_request", "The body must be a JSON object.", request_id, param=None
        )
        return _with_request_id(_error_dict(not_object), request_id)
    key = _header(event, "Idempotency-Key")
    tenant = ((event.get("requestContext") or {}).get("authorizer") or {}).get("tenantId")
    # Keys are scoped per tenant; unauthenticated routes (provider events, pages) dedupe by other means.
    if event.get("httpMethod") != "POST" or key is None or not tenant:
        return _with_request_id(app.resolve(event, context), request_id)
    if not valid_idempotency_key(key):
        invalid = error_response(
            400,
            "invalid_request",
            "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            request_id,
            param="Idempotency-Key",
        )
        return _with_request_id(_error_dict(invalid), request_id)
    try:
        response = _restamp_error(_resolve_idempotently(app, event, context, key), request_id)
    except _DoNotStore as not_stored:
        response = not_stored.response
    except errors.DomainError as exc:
        response = _error_dict(domain_error_response(exc, request_id))
    return _with_request_id(response, request_id)


def _resolve_idempotently(
    app: APIGatewayRestResolver, event: dict[str, Any], context: Any, key: str
) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    from checkout_core.sealing import SealBroken, open_sealed, seal

    tenant = event["requestContext"]["authorizer"]["tenantId"]
    body = event.get("body") or ""
    try:
        parsed_body: Any = json.loads(body) if body else None
    except ValueError:
        parsed_body = body
    from checkout_core.server_key import keyed_digest

    # Powertools names the record after a digest of `scope`: keyed, so a key cannot be guessed and checked.
    request = {
        "scope": keyed_digest("idempotency record", f"{tenant} {event.get('resource')} {key}"),
        "fingerprint": {"path": event.get("path"), "body": parsed_body},
    }

    material = f"{tenant} {event.get('resource')} {key}"

    def resolve(request: dict[str, Any]) -> dict[str, Any]:
        response = app.resolve(event, context)
        if response["statusCode"] >= 500:
            raise _DoNotStore(response)
        # What the store keeps is sealed under the Idempotency-Key and the server key (see sealing.py).
        return {**response, "body": seal(response.get("body") or "", material), "sealed": True}

    resolve_once: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument="request",
        persistence_store=_persistence(),
        config=_idempotency_config(context),
    )(resolve)
    try:
        answer = resolve_once(request=request)
        if answer.pop("sealed", False):
            answer["body"] = open_sealed(answer["body"], material)
        return answer
    except SealBroken as exc:
        raise errors.IdempotencyKeyReused() from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise errors.IdempotencyInProgress() from exc
    except IdempotencyValidationError as exc:
        raise errors.IdempotencyKeyReused() from exc
    except IdempotencyPersistenceLayerError as exc:
        raise errors.ServiceUnavailable() from exc


def _restamp_error(response: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    """A replayed error answer names the request that got it, not the one it was first given to."""
    if response.get("statusCode", 200) < 400 or not request_id:
        return response
    try:
        body = json.loads(response.get("body") or "")
    except ValueError:
        return response
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"]["requestId"] = request_id
        response = {**response, "body": json.dumps(body)}
    return response


def _mark_replayed(response: Any, record: Any) -> Any:
    return set_header(response, "Idempotent-Replayed", "true") if isinstance(response, dict) else response


def _idempotency_config(context: Any) -> Any:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    config = IdempotencyConfig(
        event_key_jmespath="scope",
        payload_validation_jmespath="fingerprint",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
        response_hook=cast(Any, _mark_replayed),
    )
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        config.register_lambda_context(context)
    return config


_persistence_layer: Any = None


def _persistence() -> Any:
    global _persistence_layer
    if _persistence_layer is None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        from checkout_core.aws import client
        from checkout_core.settings import get_settings

        _persistence_layer = DynamoDBPersistenceLayer(
            table_name=get_settings().idempotency_table_name, boto3_client=client("dynamodb")
        )
    return _persistence_layer


def api_handler(*routers: Any) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler of one API function: its routes under the Powertools decorators."""
    return _lambda_handler(routers, handle)


def page_handler(*routers: Any) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler of the hosted pages: HTML forms in, HTML out; no API key, no Idempotency-Key."""

    def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return _with_request_id(app.resolve(event, context), request_id_of_event(event))

    return _lambda_handler(routers, resolve)


def request_id_of_event(event: dict[str, Any]) -> str | None:
    return (event.get("requestContext") or {}).get("requestId")


def _lambda_handler(
    routers: tuple[Any, ...],
    resolve: Callable[[APIGatewayRestResolver, dict[str, Any], Any], dict[str, Any]],
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from aws_lambda_powertools.logging import correlation_paths

    from checkout_core.observability import metrics, tracer

    app = create_app()
    for router in routers:
        app.include_router(router)

    # Answers carry secrets (a create's pay link) and customers' data (metadata): never copied into traces.
    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return resolve(app, event, context)

    lambda_handler.app = app
    return lambda_handler
