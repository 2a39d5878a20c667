from checkout_core.api import create_session_router
from checkout_core.http import api_handler

lambda_handler = api_handler(create_session_router)
