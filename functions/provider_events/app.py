from checkout_core.api import provider_events_router
from checkout_core.http import api_handler

lambda_handler = api_handler(provider_events_router)
