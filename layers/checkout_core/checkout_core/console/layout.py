"""The console's document: one stylesheet pinned by its hash, no script, no asset from another host, and
the headers every console answer carries."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape

STYLE = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;
background:#f4f5f7}
*{box-sizing:border-box}
body{margin:0}
header{background:#12263f;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1rem;
align-items:center}
header .brand{font-weight:700;margin-right:auto}
header nav{display:flex;flex-wrap:wrap;gap:.25rem .75rem}
header a{color:#fff}
header form{margin:0}
header button{background:transparent;color:#fff;border:1px solid #fff;padding:.3rem .6rem}
main{max-width:64rem;margin:0 auto;padding:1rem}
section{background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0002;padding:1rem;margin:0 0 1rem}
p,td{overflow-wrap:break-word}
th,button,.status{white-space:nowrap}
h1{font-size:1.4rem;margin:.25rem 0 1rem}h2{font-size:1.1rem;margin:0 0 .75rem}
a{color:#0b57a4}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible,
summary:focus-visible{outline:3px solid #d35400;outline-offset:2px}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e5e8;vertical-align:top}
th{font-weight:600;color:#4a4a4a}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem;overflow-wrap:anywhere}
form.inline{display:inline}
label{display:block;font-weight:600;margin:.5rem 0 .2rem}
input,select,textarea{font:inherit;padding:.4rem;border:1px solid #8a8f98;border-radius:.3rem;
max-width:100%}
input[type=text],input[type=url],input[type=password],input[type=search],textarea{width:100%}
fieldset{border:1px solid #e3e5e8;border-radius:.3rem;margin:.5rem 0}
fieldset label{display:inline-block;font-weight:400;margin:.15rem 1rem .15rem 0}
button{font:inherit;font-weight:600;padding:.45rem .9rem;border-radius:.35rem;cursor:pointer;
border:2px solid #0b57a4;background:#0b57a4;color:#fff;margin:.25rem 0}
button.secondary{background:#fff;color:#0b57a4}
button.danger{background:#a4130b;border-color:#a4130b}
.row{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end}
.notice{border-left:4px solid #0b57a4;background:#eef5fc;padding:.75rem;margin:0 0 1rem}
.error{border-left:4px solid #a4130b;background:#fdeeee;padding:.75rem;margin:0 0 1rem}
.secret{border:2px dashed #b35c00;background:#fff6e5;padding:.75rem;margin:0 0 1rem}
.status{display:inline-block;padding:.05rem .45rem;border-radius:1rem;font-size:.8rem;font-weight:600;
background:#e3e5e8}
.status.OPEN,.status.ENABLED,.status.SUCCEEDED{background:#dcefdc}
.status.PENDING_CANCELLATION,.status.PENDING,.status.FAILED{background:#fff0cc}
.status.CANCELLED,.status.EXPIRED,.status.DISABLED,.status.EXHAUSTED{background:#f0dede}
.late{color:#a4130b;font-weight:600}
.chart{width:100%;height:auto;display:block}
.chart .axis{stroke:#4a4a4a}.chart .grid{stroke:#e3e5e8}
.chart .tick{font-size:10px;fill:#4a4a4a}
.s-created{fill:#0b57a4}.s-completed{fill:#2e7d32}.s-cancelled{fill:#b35c00}.s-expired{fill:#757575}
.legend{display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.85rem;margin:.25rem 0}
.legend svg{vertical-align:middle}
details summary{cursor:pointer;font-weight:600}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);
white-space:nowrap}
.pager{display:flex;gap:1rem;margin-top:.75rem}
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
POLICY = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

_DOCUMENT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Console</title><style>{style}</style></head>
<body>{header}<main id="main">{content}</main></body></html>"""


@dataclass
class ConsolePage:
    status: int
    html: str


def headers() -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": POLICY,
    }


def document(
    title: str, content: str, base: str, form_token: str | None, merchant: str, status: int = 200
) -> ConsolePage:
    """`base` is the console's own path as the browser sees it (behind a stage prefix too)."""
    header = ""
    if form_token is not None:
        header = (
            f'<header><span class="brand">{escape(merchant)} · Console</span>'
            '<nav aria-label="Console">'
            f'<a href="{escape(base)}">Overview</a>'
            f'<a href="{escape(base)}/sessions">Sessions</a>'
            f'<a href="{escape(base)}/webhooks">Webhook endpoints</a></nav>'
            f'<form method="post" action="{escape(base)}/sign-out">{hidden_token(form_token)}'
            '<button type="submit">Sign out</button></form></header>'
        )
    html = _DOCUMENT.format(title=escape(title), style=STYLE, header=header, content=content)
    return ConsolePage(status, html)


def hidden_token(form_token: str) -> str:
    return f'<input type="hidden" name="form_token" value="{escape(form_token)}">'


def status_badge(status: str) -> str:
    return f'<span class="status {escape(status)}">{escape(status)}</span>'


def table(heads: list[str], rows: list[list[str]], caption: str | None = None) -> str:
    """Cells are HTML already escaped by the caller."""
    cap = f'<caption class="visually-hidden">{escape(caption)}</caption>' if caption else ""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def message(
    status: int, title: str, text: str, base: str, form_token: str | None, merchant: str
) -> ConsolePage:
    content = (
        f"<h1>{escape(title)}</h1><section><p>{escape(text)}</p>"
        f'<p><a href="{escape(base)}">Back to the overview</a></p></section>'
    )
    return document(title, content, base, form_token, merchant, status)
