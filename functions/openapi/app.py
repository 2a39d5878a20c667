from checkout_core.http import api_handler
from checkout_core.openapi import openapi_router

lambda_handler = api_handler(openapi_router)
