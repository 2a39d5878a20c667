"""Every route of the API, for the OpenAPI document."""

from __future__ import annotations

from checkout_core.routes import (
    cancel_session,
    create_session,
    create_transaction,
    get_session,
    list_session_events,
    list_sessions,
    pay_page,
    provider_events,
    webhook_endpoints,
)

ALL_ROUTERS = [
    create_session.router,
    get_session.router,
    list_sessions.router,
    create_transaction.router,
    cancel_session.router,
    list_session_events.router,
    provider_events.router,
    pay_page.router,
    webhook_endpoints.router,
]
