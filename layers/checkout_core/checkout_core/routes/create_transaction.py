"""Create transaction: the route of functions/create_transaction."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from checkout_core.http import public_base_url, tenant_of
from checkout_core.models import (
    CaptureMethod,
    CreateTransactionRequest,
    Transaction,
)
from checkout_core.routes import (
    SessionId,
    created,
    error_responses,
    get_context,
)

router = Router()


@router.post(
    "/v1/sessions/<sessionId>/transactions",
    operation_id="createTransaction",
    summary="Start a payment attempt",
    responses={
        201: {"description": "Created", "content": {"application/json": {"model": Transaction}}},
        **error_responses(400, 401, 402, 404, 409, 422, 503),
    },
)
def create_transaction(sessionId: SessionId, body: CreateTransactionRequest) -> Response[str]:
    from checkout_core.payments import create_transaction as create

    key = router.current_event.headers.get("Idempotency-Key")
    context = get_context()
    transaction = create(
        context,
        tenant_of(router),
        sessionId,
        body.provider,
        key,
        payment_method=body.paymentMethod,
        capture_manually=body.captureMethod is CaptureMethod.MANUAL,
        public_base_url=public_base_url(router, context.settings.public_base_url),
    )
    return created(transaction)
