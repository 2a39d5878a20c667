from typing import Any

from checkout_core.observability import logger
from checkout_core.outbox import events_from_stream


@logger.inject_lambda_context
def lambda_handler(event: list[dict[str, Any]], context: Any) -> list[dict[str, Any]]:
    return events_from_stream(event)
