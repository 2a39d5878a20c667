from pathlib import Path

from checkout_core.http import api_handler
from checkout_core.openapi import docs_router

# `make swagger-ui` puts Swagger UI's assets here; `sam build` ships them with this function.
lambda_handler = api_handler(docs_router(Path(__file__).parent / "swagger_ui"))
