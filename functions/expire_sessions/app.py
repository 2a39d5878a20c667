from typing import Any

from checkout_core.context import get_context
from checkout_core.expiry import sweep
from checkout_core.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return sweep(get_context(), context.get_remaining_time_in_millis).__dict__
