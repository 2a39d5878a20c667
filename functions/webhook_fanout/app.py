from typing import Any

from checkout_core.observability import logger
from checkout_core.webhooks.consumers import fan_out_batch
from checkout_core.webhooks.services import get_services


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return fan_out_batch(get_services(), event["Records"])
