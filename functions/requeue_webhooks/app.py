from typing import Any

from checkout_core.observability import logger
from checkout_core.webhooks.requeue import requeue_due
from checkout_core.webhooks.services import get_services


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"requeued": requeue_due(get_services())}
