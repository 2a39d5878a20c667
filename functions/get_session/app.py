from checkout_core.api import get_session_router
from checkout_core.http import api_handler

lambda_handler = api_handler(get_session_router)
