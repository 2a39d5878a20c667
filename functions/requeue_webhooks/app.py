from typing import Any

from checkout_core.observability import logger
from checkout_core.webhooks.requeue import requeue_due
from checkout_core.webhooks.safety_net import catch_up_lagging, drain_dead_letters
from checkout_core.webhooks.services import get_services


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    services = get_services()
    return {
        "requeued": requeue_due(services),
        "caughtUp": catch_up_lagging(services),
        "deadLetters": drain_dead_letters(services),
    }
