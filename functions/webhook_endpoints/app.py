from checkout_core.http import api_handler
from checkout_core.routes.webhook_endpoints import router

lambda_handler = api_handler(router)
