"""The console's HTML for webhook endpoints: the list and the create form, one endpoint with its edit form,
actions and delivery log. A secret appears once, on the answer to the create or rotate that made it."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from checkout_core.console.layout import ConsolePage, document, hidden_token, status_badge, table
from checkout_core.models import DeliveryList, DeliveryStatus, EventType, WebhookEndpoint


def _event_types(chosen: list[str]) -> str:
    boxes = "".join(
        f'<label><input type="checkbox" name="eventTypes" value="{t.value}"'
        f"{' checked' if t.value in chosen else ''}> <code>{t.value}</code></label>"
        for t in EventType
    )
    return f"<fieldset><legend>Event types (none ticked: every type)</legend>{boxes}</fieldset>"


def _alerts(notice: str | None, error: str | None, secret: str | None) -> str:
    html = f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""
    if error:
        html += f'<p class="error" role="alert">{escape(error)}</p>'
    if secret:
        html += (
            '<div class="secret" role="alert"><p><strong>Signing secret, shown only now:</strong> '
            "copy it into "
            f'your receiver.</p><p><code id="secret">{escape(secret)}</code></p></div>'
        )
    return html


def endpoints_page(
    base: str,
    form_token: str,
    tenant: str,
    endpoints: list[WebhookEndpoint],
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> ConsolePage:
    rows = [
        [
            f'<a href="{escape(base)}/webhooks/{escape(e.endpointId)}">{escape(e.url)}</a>',
            status_badge(e.status.value) + (f" ({escape(e.disabledReason)})" if e.disabledReason else ""),
            escape(", ".join(e.eventTypes) or "every type"),
            escape(e.description or ""),
        ]
        for e in endpoints
    ]
    listing = (
        table(["URL", "Status", "Event types", "Description"], rows, "Webhook endpoints")
        if rows
        else "<p>No webhook endpoint yet.</p>"
    )
    create = (
        f'<form method="post" action="{escape(base)}/webhooks">{hidden_token(form_token)}'
        '<label for="url">URL</label><input id="url" name="url" type="url" required maxlength="2048">'
        '<label for="description">Description</label>'
        '<input id="description" name="description" type="text" maxlength="1000">'
        f'{_event_types([])}<button type="submit">Add endpoint</button></form>'
    )
    content = (
        f"<h1>Webhook endpoints</h1>{_alerts(notice, error, None)}"
        f"<section>{listing}</section><section><h2>Add an endpoint</h2>{create}</section>"
    )
    return document("Webhook endpoints", content, base, form_token, tenant, status)


def endpoint_page(
    base: str,
    form_token: str,
    tenant: str,
    endpoint: WebhookEndpoint,
    deliveries: DeliveryList,
    status_filter: DeliveryStatus | None,
    notice: str | None = None,
    error: str | None = None,
    secret: str | None = None,
    status: int = 200,
) -> ConsolePage:
    here = f"{base}/webhooks/{endpoint.endpointId}"
    token = hidden_token(form_token)
    details = table(
        ["URL", "Status", "Event types", "Created", "Updated"],
        [
            [
                f"<code>{escape(endpoint.url)}</code>",
                status_badge(endpoint.status.value)
                + (f" ({escape(endpoint.disabledReason)})" if endpoint.disabledReason else ""),
                escape(", ".join(endpoint.eventTypes) or "every type"),
                escape(endpoint.createdAt),
                escape(endpoint.updatedAt),
            ]
        ],
        "Endpoint",
    )
    toggle = "DISABLED" if endpoint.status.value == "ENABLED" else "ENABLED"
    actions = (
        f'<div class="row">'
        f'<form method="post" action="{escape(here)}/status">{token}'
        f'<input type="hidden" name="status" value="{toggle}">'
        f'<button type="submit" class="secondary">{"Disable" if toggle == "DISABLED" else "Enable"}'
        "</button></form>"
        f'<form method="post" action="{escape(here)}/test">{token}'
        '<button type="submit" class="secondary">Send a test event</button></form>'
        f'<form method="post" action="{escape(here)}/rotate-secret">{token}'
        '<button type="submit" class="secondary">Rotate the secret</button></form>'
        f'<form method="post" action="{escape(here)}/delete">{token}'
        '<button type="submit" class="danger">Delete endpoint</button></form></div>'
    )
    edit = (
        f'<form method="post" action="{escape(here)}">{token}'
        f'<label for="url">URL</label><input id="url" name="url" type="url" required maxlength="2048" '
        f'value="{escape(endpoint.url)}">'
        '<label for="description">Description</label>'
        f'<input id="description" name="description" type="text" maxlength="1000" '
        f'value="{escape(endpoint.description or "")}">'
        f'{_event_types(endpoint.eventTypes)}<button type="submit">Save changes</button></form>'
    )
    options = '<option value="">any</option>' + "".join(
        f'<option value="{s.value}"{" selected" if s is status_filter else ""}>{s.value}</option>'
        for s in DeliveryStatus
    )
    log_filter = (
        f'<form method="get" action="{escape(here)}" class="row">'
        '<div><label for="delivery-status">Status</label>'
        f'<select id="delivery-status" name="status">{options}</select></div>'
        '<div><button type="submit" class="secondary">Show</button></div></form>'
    )
    rows = []
    for d in deliveries.data:
        resend = (
            f'<form method="post" action="{escape(here)}/deliveries/{escape(d.deliveryId)}/resend">{token}'
            '<button type="submit" class="secondary" '
            f'aria-label="Resend {escape(d.type)} {escape(d.deliveryId)}">'
            "Resend</button></form>"
        )
        rows.append(
            [
                escape(d.createdAt),
                f"<code>{escape(d.type)}</code>",
                status_badge(d.status.value),
                str(d.attempts),
                escape(str(d.lastResponseStatus or "")),
                escape(d.lastError or ""),
                escape(d.nextAttemptAt or ""),
                resend,
            ]
        )
    log = (
        table(
            ["Created", "Event", "Status", "Attempts", "Last response", "Last error", "Next attempt", ""],
            rows,
            "Delivery log",
        )
        if rows
        else "<p>No delivery.</p>"
    )
    if deliveries.nextCursor:
        params = {
            "cursor": deliveries.nextCursor,
            **({"status": status_filter.value} if status_filter else {}),
        }
        log += (
            f'<p class="pager"><a href="{escape(here)}?{escape(urlencode(params))}">Older deliveries</a></p>'
        )
    recover = (
        f'<form method="post" action="{escape(here)}/recover" class="row">{token}'
        '<div><label for="since">Since (UTC)</label>'
        '<input id="since" name="since" type="datetime-local" required></div>'
        '<div><button type="submit" class="secondary">Send failed deliveries again</button></div></form>'
    )
    content = (
        f"<h1>Webhook endpoint</h1>{_alerts(notice, error, secret)}"
        f"<section>{details}{actions}</section>"
        f"<section><h2>Delivery log</h2>{log_filter}{log}</section>"
        f"<section><h2>Recover</h2>{recover}</section>"
        f"<section><h2>Edit</h2>{edit}</section>"
    )
    return document("Webhook endpoint", content, base, form_token, tenant, status)
