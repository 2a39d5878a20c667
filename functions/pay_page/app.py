from checkout_core.api import pay_page_router
from checkout_core.http import api_handler

lambda_handler = api_handler(pay_page_router)
