from checkout_core.http import api_handler
from checkout_core.routes.list_session_events import router

lambda_handler = api_handler(router)
