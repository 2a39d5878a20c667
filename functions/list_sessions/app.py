from checkout_core.api import list_sessions_router
from checkout_core.http import api_handler

lambda_handler = api_handler(list_sessions_router)
