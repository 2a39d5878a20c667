from typing import Any

from checkout_core.observability import logger, metrics
from checkout_core.webhooks.consumers import deliver_batch
from checkout_core.webhooks.services import get_services


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return deliver_batch(get_services(), event["Records"], context)
