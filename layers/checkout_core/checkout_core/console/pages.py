"""The console's HTML for signing in, the overview, the sessions and one session. Everything shown is
escaped; every form carries the anti-forgery token."""

from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import urlencode

from checkout_core import tallies
from checkout_core.clock import from_iso
from checkout_core.console.charts import bar_chart
from checkout_core.console.layout import ConsolePage, document, hidden_token, status_badge, table
from checkout_core.console.overview import Overview
from checkout_core.models import Event, ReasonType, Session, SessionList
from checkout_core.money import format_amount
from checkout_core.transitions import SessionStatus


def sign_in_page(base: str, form_token: str, error: str | None = None, status: int = 200) -> ConsolePage:
    alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    content = (
        "<h1>Sign in to the console</h1><section>"
        f"{alert}<p>Sign in with your account's API key. It is sent once, checked, and never stored.</p>"
        f'<form method="post" action="{escape(base)}/sign-in">{hidden_token(form_token)}'
        '<label for="api_key">API key</label>'
        '<input id="api_key" name="api_key" type="password" autocomplete="off" required maxlength="256">'
        '<button type="submit">Sign in</button></form></section>'
    )
    return document("Sign in", content, base, None, "", status)


def age(since: str, now: datetime) -> str:
    seconds = max(0, int((now - from_iso(since)).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _legend() -> str:
    return (
        '<p class="legend">'
        + "".join(
            '<span><svg width="12" height="12" aria-hidden="true">'
            f'<rect class="s-{o}" width="12" height="12"/>'
            f"</svg> {o}</span>"
            for o in tallies.OUTCOMES
        )
        + "</p>"
    )


def _numbers(caption: str, labels: list[str], counts: dict[str, list[int]]) -> str:
    rows = [[escape(label), *(str(counts[o][i]) for o in tallies.OUTCOMES)] for i, label in enumerate(labels)]
    numbers = table(["", *tallies.OUTCOMES], rows, caption)
    return f"<details><summary>{escape(caption)} as numbers</summary>{numbers}</details>"


def session_link(base: str, session: Session) -> str:
    session_id = escape(session.sessionId)
    return f'<a href="{escape(base)}/sessions/{session_id}"><code>{session_id}</code></a>'


def overview_page(base: str, form_token: str, tenant: str, data: Overview, now: datetime) -> ConsolePage:
    totals_day = {o: sum(data.hours.counts[o]) for o in tallies.OUTCOMES}
    totals_week = {o: sum(data.days.counts[o]) for o in tallies.OUTCOMES}
    summary = table(
        ["", *tallies.OUTCOMES],
        [
            ["Last 24 hours", *(str(totals_day[o]) for o in tallies.OUTCOMES)],
            ["Last 7 days", *(str(totals_week[o]) for o in tallies.OUTCOMES)],
        ],
        "Sessions by outcome",
    )
    charts = (
        f"<section><h2>Sessions by outcome</h2>{summary}{_legend()}"
        f"<h3>Last 24 hours, by hour (UTC)</h3>"
        f"{bar_chart('Sessions per hour over the last 24 hours', data.hours.labels, data.hours.counts, 3)}"
        f"{_numbers('Last 24 hours', data.hours.labels, data.hours.counts)}"
        f"<h3>Last 7 days, by day (UTC)</h3>"
        f"{bar_chart('Sessions per day over the last 7 days', data.days.labels, data.days.counts)}"
        f"{_numbers('Last 7 days', data.days.labels, data.days.counts)}</section>"
    )
    pending_rows = []
    for session in data.pending:
        cancellation = session.cancellation
        requested = cancellation.requestedAt if cancellation else session.updatedAt
        finalize_by = cancellation.finalizeBy if cancellation else None
        late = finalize_by is not None and from_iso(finalize_by) <= now
        deadline = escape(finalize_by or "")
        pending_rows.append(
            [
                session_link(base, session),
                escape(session.referenceId),
                escape(age(requested, now)),
                f'<span class="late">{deadline} (passed)</span>' if late else deadline,
                str(len(cancellation.pendingTransactionIds) if cancellation else 0),
            ]
        )
    pending = (
        table(
            ["Session", "Reference", "Waiting for", "finalizeBy", "In flight"],
            pending_rows,
            "Pending cancellations",
        )
        if pending_rows
        else "<p>No cancellation is waiting.</p>"
    )
    if data.more_pending:
        everyone = f"{escape(base)}/sessions?status=PENDING_CANCELLATION"
        pending += f'<p><a href="{everyone}">All pending cancellations</a></p>'
    attention_rows = [
        [
            session_link(base, s),
            escape(s.referenceId),
            status_badge(s.status.value),
            escape(age(s.updatedAt, now)),
        ]
        for s in data.attention
    ]
    attention = (
        table(["Session", "Reference", "Status", "Last change"], attention_rows, "Sessions needing attention")
        if attention_rows
        else "<p>No session needs attention.</p>"
    )
    if data.more_attention:
        attention += f"<p>Showing the oldest {len(data.attention)}; more need attention.</p>"
    endpoint_rows = []
    for health in data.endpoints:
        rate = health.success_rate
        window = f"{health.window}{'+' if health.window_full else ''}"
        endpoint_rows.append(
            [
                f'<a href="{escape(base)}/webhooks/{escape(health.endpoint.endpointId)}">'
                f"{escape(health.endpoint.url)}</a>",
                status_badge(health.endpoint.status.value),
                "no attempts yet" if rate is None else f"{rate:.0%} of the last {window}",
                escape(age(health.oldest_undelivered, now)) + " old" if health.oldest_undelivered else "none",
            ]
        )
    endpoints = (
        table(
            ["Endpoint", "Status", "Success rate", "Oldest undelivered"], endpoint_rows, "Webhook endpoints"
        )
        if endpoint_rows
        else f'<p>No webhook endpoint. <a href="{escape(base)}/webhooks">Add one</a>.</p>'
    )
    content = (
        f"<h1>Overview</h1>{charts}"
        f"<section><h2>Cancellations pending</h2>{pending}</section>"
        f"<section><h2>Sessions needing attention</h2>{attention}</section>"
        f"<section><h2>Webhook endpoints</h2>{endpoints}</section>"
    )
    return document("Overview", content, base, form_token, tenant)


def sessions_page(
    base: str,
    form_token: str,
    tenant: str,
    page: SessionList,
    status: SessionStatus | None,
    query: str,
    notice: str | None = None,
) -> ConsolePage:
    options = '<option value="">any</option>' + "".join(
        f'<option value="{s.value}"{" selected" if s is status else ""}>{s.value}</option>'
        for s in SessionStatus
    )
    search = (
        f'<form method="get" action="{escape(base)}/sessions" class="row" role="search">'
        '<div><label for="q">Session id or reference</label>'
        f'<input id="q" name="q" type="search" value="{escape(query)}" maxlength="64"></div>'
        f'<div><label for="status">Status</label><select id="status" name="status">{options}</select></div>'
        '<div><button type="submit">Find</button></div></form>'
    )
    rows = [
        [
            session_link(base, s),
            escape(s.referenceId),
            status_badge(s.status.value),
            escape(format_amount(s.amount, s.currency)),
            escape(s.createdAt),
        ]
        for s in page.data
    ]
    listing = (
        table(["Session", "Reference", "Status", "Amount", "Created"], rows, "Sessions")
        if rows
        else '<p role="status">No session matches.</p>'
    )
    pager = ""
    if page.nextCursor:
        params = {
            "cursor": page.nextCursor,
            **({"status": status.value} if status else {}),
            **({"q": query} if query else {}),
        }
        older = f"{escape(base)}/sessions?{escape(urlencode(params))}"
        pager = f'<p class="pager"><a href="{older}">Older sessions</a></p>'
    alert = f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""
    content = f"<h1>Sessions</h1><section>{search}</section>{alert}<section>{listing}{pager}</section>"
    return document("Sessions", content, base, form_token, tenant)


NOTICES = {
    "cancelled": "The session was cancelled.",
    "pending": "The session is locked; a payment in flight will finish on its own, then it is cancelled.",
}


def session_page(
    base: str,
    form_token: str,
    tenant: str,
    session: Session,
    events: list[Event],
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> ConsolePage:
    details = [
        ("Status", status_badge(session.status.value)),
        ("Amount", escape(format_amount(session.amount, session.currency))),
        ("Reference", escape(session.referenceId)),
        ("Description", escape(session.description or "")),
        ("Customer", escape(session.customerId or "")),
        ("Created", escape(session.createdAt)),
        ("Expires", escape(session.expiresAt)),
    ]
    rows = "".join(f'<tr><th scope="row">{name}</th><td>{value}</td></tr>' for name, value in details)
    summary = f'<div class="table-wrap"><table><tbody>{rows}</tbody></table></div>'
    tx_rows = [
        [
            f"<code>{escape(tx.transactionId)}</code>",
            escape(tx.provider),
            f"<code>{escape(tx.providerReference or '')}</code>",
            status_badge(tx.status.value),
            f"<code>{escape(tx.refundId or '')}</code>",
            escape(tx.failureCode or ""),
        ]
        for tx in session.transactions
    ]
    transactions = (
        table(
            ["Transaction", "Provider", "Provider reference", "Status", "Refund", "Failure"],
            tx_rows,
            "Transactions",
        )
        if tx_rows
        else "<p>No payment attempt.</p>"
    )
    cancellation = ""
    if session.cancellation:
        c = session.cancellation
        fields = [
            ("Reason", escape(c.reason or "")),
            ("Reason type", escape(c.reasonType.value if c.reasonType else "")),
            ("Requested", escape(c.requestedAt)),
            ("finalizeBy", escape(c.finalizeBy or "")),
            ("Finalized", escape(c.finalizedAt or "")),
            ("Pending", escape(", ".join(c.pendingTransactionIds))),
            ("Cancelled at the provider", escape(", ".join(c.cancelledTransactionIds))),
            ("Settled meanwhile", escape(", ".join(c.settledTransactionIds))),
            ("Attention required", "yes" if c.attentionRequired else "no"),
        ]
        body = "".join(f'<tr><th scope="row">{n}</th><td>{v}</td></tr>' for n, v in fields)
        cancellation = (
            '<section><h2>Cancellation</h2><div class="table-wrap">'
            f"<table><tbody>{body}</tbody></table></div></section>"
        )
    cancel_form = ""
    if session.status is SessionStatus.OPEN:
        reasons = "".join(f'<option value="{r.value}">{r.value}</option>' for r in ReasonType)
        cancel_form = (
            "<section><h2>Cancel this session</h2>"
            f'<form method="post" action="{escape(base)}/sessions/{escape(session.sessionId)}/cancel">'
            f"{hidden_token(form_token)}"
            '<label for="reasonType">Reason type</label>'
            f'<select id="reasonType" name="reasonType"><option value="">none</option>{reasons}</select>'
            '<label for="reason">Reason</label><input id="reason" name="reason" type="text" maxlength="500">'
            "<fieldset><legend>If a payment is in flight</legend>"
            '<label><input type="radio" name="whenInFlight" value="WAIT" checked> '
            "wait for it to finish</label>"
            '<label><input type="radio" name="whenInFlight" value="REJECT"> do not cancel</label></fieldset>'
            '<button type="submit" class="danger">Cancel session</button></form></section>'
        )
    event_rows = [
        [
            str(e.sequence),
            escape(e.occurredAt),
            f"<code>{escape(e.type)}</code>",
            escape(e.actor),
            f"<code>{escape(_data_text(e.data))}</code>",
        ]
        for e in events
    ]
    timeline = table(["#", "When", "What", "Who", "Details"], event_rows, "Timeline")
    alert = f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""
    if error:
        alert += f'<p class="error" role="alert">{escape(error)}</p>'
    content = (
        f"<h1>Session <code>{escape(session.sessionId)}</code></h1>{alert}"
        f"<section><h2>Summary</h2>{summary}</section>"
        f"<section><h2>Transactions</h2>{transactions}</section>{cancellation}{cancel_form}"
        f'<section><h2 id="timeline">Timeline</h2>{timeline}</section>'
    )
    return document(f"Session {session.referenceId}", content, base, form_token, tenant, status)


def _data_text(data: dict[str, object]) -> str:
    return ", ".join(f"{key}={value}" for key, value in data.items() if value not in (None, [], {}))
