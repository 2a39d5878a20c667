"""The REQUEST authorizer: `Authorization: Bearer <key>` to a tenant, by SHA-256 hash lookup."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from checkout_core.api_keys import bearer_key, hash_api_key
from checkout_core.observability import logger
from checkout_core.repository import SessionRepository


class Unauthorized(Exception):
    """API Gateway answers 401 when an authorizer raises with exactly this message."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def authorize(
    event: APIGatewayAuthorizerRequestEvent, repository: SessionRepository | None = None
) -> dict[str, Any]:
    key = bearer_key(event.headers.get("Authorization") or event.headers.get("authorization"))
    if key is None:
        logger.info("authorization refused: missing or malformed")
        raise Unauthorized()
    record = (repository or SessionRepository()).get_api_key(hash_api_key(key))
    if record is None:
        logger.info("authorization refused: unknown key")
        raise Unauthorized()
    arn = event.parsed_arn
    context = {"tenantId": record["tenant"], "returnHosts": ",".join(record.get("returnHosts", []))}
    if record.get("merchantName"):
        context["merchantName"] = record["merchantName"]
    response = APIGatewayAuthorizerResponse(
        principal_id=record["tenant"],
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=context,
        # The tenant's key in the API's usage plan: API Gateway throttles each tenant on its own allowance.
        usage_identifier_key=record.get("usageKey"),
    )
    # API Gateway caches this answer per key for every route, so it must allow them all.
    response.allow_all_routes()
    logger.info("authorized", extra={"tenantId": record["tenant"]})
    return response.asdict()
