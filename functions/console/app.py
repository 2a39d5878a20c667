from checkout_core.http import page_handler
from checkout_core.routes.console import router

lambda_handler = page_handler(router)
