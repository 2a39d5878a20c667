from typing import Any

from checkout_core.observability import logger, metrics, tracer
from checkout_core.service import get_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return get_service().sweep(context.get_remaining_time_in_millis).__dict__
