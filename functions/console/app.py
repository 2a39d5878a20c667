from checkout_core.http import page_handler
from checkout_core.routes import console, console_webhooks

lambda_handler = page_handler(console.router, console_webhooks.router)
