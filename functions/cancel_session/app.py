from checkout_core.api import cancel_session_router
from checkout_core.http import api_handler

lambda_handler = api_handler(cancel_session_router)
