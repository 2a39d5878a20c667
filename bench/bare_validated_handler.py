"""bare_handler.py with Powertools request validation on (pydantic), as the service's resolver has it.
Not the baseline of the import measure: it shows how much of the gap the validation feature alone makes."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)


@app.post("/v1/sessions/<sessionId>/cancel")
def cancel(sessionId: str) -> dict[str, Any]:
    return {"sessionId": sessionId, "status": "CANCELLED"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
