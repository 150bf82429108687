"""The console's HTML building blocks: escaping, the page layout with its navigation, tables, lookup
forms, links to an order or a return, live regions.

Every value that came from outside (topic payloads, keys, ids, reasons) goes through :func:`esc`, so a
dead letter carrying ``<script>`` is shown as text. Pages load htmx and its SSE extension from the
worker (vendored, see ``static/VENDORED.md``); a live region is an element with ``sse-connect`` whose
content the server replaces with a freshly rendered fragment each time its feed changes.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from oms_streams.api.console.static import HTMX, HTMX_SSE

NAV = (
    ("/console", "Overview"),
    ("/console/network", "Network"),
    ("/console/availability", "Availability"),
    ("/console/orders", "Orders"),
    ("/console/at-risk", "At risk"),
    ("/console/returns", "Returns"),
    ("/console/dead-letters", "Dead letters"),
)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def path_part(value: str) -> str:
    return quote(value, safe="")


def layout(title: str, body: str, active: str = "") -> str:
    links = " ".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{esc(label)}</a>' for href, label in NAV
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · OMS console</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        f'<script src="/console/static/{HTMX}"></script>'
        f'<script src="/console/static/{HTMX_SSE}"></script>'
        f"</head><body><nav><strong>OMS console</strong> {links}</nav><main><h1>{esc(title)}</h1>{body}"
        "</main></body></html>"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str, test_id: str = "") -> str:
    """Cells are HTML already (escape what goes in); ``test_id`` names the table for tests and scripts."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty"{_tid(test_id)}>{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table{_tid(test_id)}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tid(test_id: str) -> str:
    return f' data-testid="{esc(test_id)}"' if test_id else ""


def lookup_form(action: str, name: str, label: str, value: str = "") -> str:
    return (
        f'<form class="lookup" method="get" action="{esc(action)}">'
        f'<label>{esc(label)} <input name="{esc(name)}" value="{esc(value)}" required></label>'
        '<button type="submit">Show</button></form>'
    )


def order_link(order_id: Any) -> str:
    return f'<a href="/console/orders/{esc(path_part(str(order_id)))}">{esc(order_id)}</a>'


def return_link(return_id: Any) -> str:
    return f'<a href="/console/returns/{esc(path_part(str(return_id)))}">{esc(return_id)}</a>'


def _live(url: str, event: str, inner: str, test_id: str) -> str:
    """A region the server re-renders: htmx's SSE extension swaps in each ``event`` it sends."""
    return (
        f'<div hx-ext="sse" sse-connect="{esc(url)}" sse-swap="{esc(event)}" hx-swap="innerHTML"'
        f"{_tid(test_id)}>{inner}</div>"
    )


def _minutes(value: Any) -> str:
    return "unknown" if value is None else f"{value} min"
