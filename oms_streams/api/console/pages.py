"""The operator console's HTML, rendered on the server: plain functions of plain data, no I/O.

Every value that came from outside (topic payloads, keys, ids, reasons) goes through :func:`esc`, so a
dead letter carrying ``<script>`` is shown as text. Pages load htmx and its SSE extension from the
worker (vendored, see ``static/VENDORED.md``); a live region is an element with ``sse-connect`` whose
content the server replaces with a freshly rendered fragment each time its feed changes.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

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


# -- overview -----------------------------------------------------------------------------------------


def overview_page(health: Mapping[str, Any], at_risk_open: int, dead_letters: int) -> str:
    facts = [
        ("status", esc(health.get("status"))),
        ("ready", esc(health.get("ready"))),
        ("locations", esc(health.get("locations"))),
        ("rules version", esc(health.get("rules_version"))),
        ("SKUs with availability", esc(health.get("availability_records"))),
        ("orders at risk (open)", f'<a href="/console/at-risk">{at_risk_open}</a>'),
        ("dead letters (last read)", f'<a href="/console/dead-letters">{dead_letters}</a>'),
    ]
    body = table(("", ""), facts, "", "overview")
    body += lookup_form("/console/availability", "sku", "SKU")
    body += lookup_form("/console/orders", "order_id", "Order id")
    body += lookup_form("/console/returns", "return_id", "Return id")
    return layout("Overview", body, "/console")


# -- availability -------------------------------------------------------------------------------------


def availability_page(
    sku: str,
    record: Mapping[str, Any] | None,
    locations: Mapping[str, Any],
    hidden_by_rule: Sequence[tuple[str, str, str, float]],
    skus: Sequence[str],
) -> str:
    """``record`` as on ``oms.availability.v1``; ``hidden_by_rule`` the ``oms_units_hidden`` gauge
    (channel, location type, rule, units) over the SKUs this worker owns."""
    body = lookup_form("/console/availability", "sku", "SKU", sku)
    if sku and record is None:
        body += f'<p class="error">No availability published for SKU {esc(sku)}.</p>'
    if record is not None:
        body += _sku_availability(record, locations)
    hidden_rows = [
        (esc(channel), esc(location_type), esc(rule), f"{units:g}")
        for channel, location_type, rule, units in hidden_by_rule
        if units
    ]
    body += (
        "<h2>Units hidden by rule</h2><p class=note>Summed over the SKUs this worker owns "
        "(<code>oms_units_hidden</code> on <code>/metrics</code>; scrape every worker for the network). "
        "The availability record does not carry the split per SKU.</p>"
    )
    body += table(
        ("channel", "location type", "rule", "units hidden"), hidden_rows, "Nothing hidden.", "hidden"
    )
    if skus:
        links = " ".join(
            f'<a href="/console/availability?{urlencode({"sku": s})}">{esc(s)}</a>' for s in skus
        )
        body += f"<h2>SKUs</h2><p class=skus>{links}</p>"
    return layout(f"Availability {sku}" if sku else "Availability", body, "/console/availability")


def _sku_availability(record: Mapping[str, Any], locations: Mapping[str, Any]) -> str:
    channels: Mapping[str, Any] = record.get("channels", {})
    network_atp = int(record.get("network_atp", 0))
    summary = [
        (
            esc(name),
            str(channel.get("total", 0)),
            str(network_atp),
            str(network_atp - channel.get("total", 0)),
        )
        for name, channel in sorted(channels.items())
    ]
    out = (
        f"<p>Published {esc(record.get('published_at'))}, rules {esc(record.get('rules_version'))}. "
        "Hidden = network ATP minus what the channel sees (walk-in protection is out of ATP already).</p>"
    )
    out += table(("channel", "visible", "network ATP", "hidden"), summary, "No channels.", "channels")
    protected: Mapping[str, int] = record.get("protected", {})
    short: Mapping[str, int] = record.get("short", {})
    lead: Mapping[str, int] = record.get("lead_time_hours", {})
    ids = sorted(
        {lid for channel in channels.values() for lid in channel.get("locations", {})}
        | set(protected)
        | set(short)
    )
    names = sorted(channels)
    rows = []
    for location_id in ids:
        location = locations.get(location_id)
        rows.append(
            (
                esc(location_id),
                esc(getattr(location, "name", "")),
                esc(getattr(getattr(location, "type", None), "value", "")),
                *(str(channels[n].get("locations", {}).get(location_id, 0)) for n in names),
                str(protected.get(location_id, 0)),
                str(short.get(location_id, 0)),
                esc(lead.get(location_id, "")),
            )
        )
    headers = ("location", "name", "type", *names, "protected", "short (need)", "lead time h")
    return out + table(headers, rows, "No location shows this SKU.", "locations")


# -- network ------------------------------------------------------------------------------------------


TYPE_COLOURS = {"dc": "#1f5fa8", "store": "#2e8540", "third_party": "#8a5a00"}


def network_page(sku: str, locations: Sequence[Any], record: Mapping[str, Any] | None) -> str:
    """A map of the located locations (equirectangular; fine at a country's scale). With a SKU: each
    one's visible units (largest over channels) and its need (``short``), from the availability record."""
    body = lookup_form("/console/network", "sku", "SKU (stock and need)", sku)
    if sku and record is None:
        body += f'<p class="error">No availability published for SKU {esc(sku)}.</p>'
    stock: dict[str, int] = {}
    short: Mapping[str, int] = {}
    if record is not None:
        for channel in record.get("channels", {}).values():
            for location_id, units in channel.get("locations", {}).items():
                stock[location_id] = max(stock.get(location_id, 0), int(units))
        short = record.get("short", {})
    placed = [loc for loc in locations if loc.lat is not None and loc.lon is not None]
    body += _svg_map(placed, stock, short)
    rows = [
        (
            esc(loc.location_id),
            esc(loc.name),
            esc(loc.type.value),
            esc(loc.region),
            "yes" if loc.active else "no",
            f"{loc.lat:.4f}, {loc.lon:.4f}" if loc.lat is not None and loc.lon is not None else "",
            str(stock.get(loc.location_id, 0)) if record is not None else "",
            str(short.get(loc.location_id, 0)) if record is not None else "",
        )
        for loc in sorted(locations, key=lambda loc: loc.location_id)
    ]
    headers = ("location", "name", "type", "region", "active", "lat, lon", "visible units", "need")
    body += table(headers, rows, "No locations published yet.", "network")
    return layout(f"Network {sku}" if sku else "Network", body, "/console/network")


def _svg_map(placed: Sequence[Any], stock: Mapping[str, int], short: Mapping[str, int]) -> str:
    if not placed:
        return '<p class="empty">No location has coordinates.</p>'
    width, height, pad = 640.0, 480.0, 30.0
    lats = [loc.lat for loc in placed]
    lons = [loc.lon for loc in placed]
    span = max(max(lats) - min(lats), max(lons) - min(lons), 0.01)
    scale = min((width - 2 * pad) / span, (height - 2 * pad) / span)
    top = max(lats)
    left = min(lons)
    shapes = []
    biggest = max(stock.values(), default=0) or 1
    for loc in placed:
        x = pad + (loc.lon - left) * scale
        y = pad + (top - loc.lat) * scale
        units = stock.get(loc.location_id, 0)
        radius = 5 + 12 * (units / biggest) if stock else 6
        colour = TYPE_COLOURS.get(loc.type.value, "#555")
        need = short.get(loc.location_id, 0)
        ring = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius + 4:.1f}" class="need"/>' if need else ""
        tip = f"{loc.location_id} {loc.name} ({loc.type.value})" + (
            f": {units} visible, need {need}" if stock or short else ""
        )
        shapes.append(
            f'<g data-location="{esc(loc.location_id)}">{ring}'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{colour}" fill-opacity="0.8">'
            f"<title>{esc(tip)}</title></circle>"
            f'<text x="{x + radius + 2:.1f}" y="{y + 4:.1f}">{esc(loc.location_id)}</text></g>'
        )
    legend = " ".join(f'<span style="color:{c}">● {esc(t)}</span>' for t, c in TYPE_COLOURS.items())
    return (
        f'<svg class="map" viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="network map" '
        f'data-testid="map">{"".join(shapes)}</svg><p class="legend">{legend} '
        '<span class="need-legend">○ short (needs stock)</span></p>'
    )


# -- orders -------------------------------------------------------------------------------------------


def order_lookup_page(order_id: str = "", error: str = "") -> str:
    body = lookup_form("/console/orders", "order_id", "Order id", order_id)
    if error:
        body += f'<p class="error">{esc(error)}</p>'
    return layout("Orders", body, "/console/orders")


def order_page(view: Mapping[str, Any]) -> str:
    """``view`` is what ``GET /orders/{id}`` answers."""
    order_id = str(view.get("order_id", ""))
    status = str(view.get("status", ""))
    body = lookup_form("/console/orders", "order_id", "Order id", order_id)
    body += (
        f'<p>Status <span class="status {esc(status)}" data-testid="order-status">{esc(status)}</span></p>'
    )
    risk = view.get("risk")
    if risk:
        body += (
            f'<p class="risk">At risk: <strong>{esc(risk.get("reason"))}</strong> at milestone '
            f"{esc(risk.get('milestone'))} ({esc(risk.get('location_id'))}, "
            f"shipment {esc(risk.get('shipment'))}); "
            f"expected delay {esc(_minutes(risk.get('expected_delay_minutes')))}; suggested action "
            f"<strong>{esc(risk.get('suggested_action'))}</strong></p>"
        )
    promise = view.get("promise")
    if promise:
        option = promise.get("option", {})
        body += (
            f"<h2>Promise</h2><p>Version {esc(promise.get('version'))}, "
            f"placed {esc(promise.get('placed_at'))}: "
            f"{esc(option.get('method'))} {esc(option.get('option_id'))}, window "
            f"{esc(option.get('window_start'))} to {esc(option.get('window_end'))}, "
            f"{esc(option.get('parcels'))} parcel(s)</p>"
        )
    body += "<h2>Timeline</h2>" + table(
        ("time", "what", "detail"), _timeline(view), "Nothing yet.", "timeline"
    )
    body += _shipments(view)
    sourcing = view.get("sourcing")
    if sourcing:
        body += (
            f"<h2>Allocations</h2><p>Sourcing {esc(sourcing.get('status'))}, "
            f"round {esc(sourcing.get('round'))}"
            f"{', ' + esc(sourcing.get('reason')) if sourcing.get('reason') else ''}</p>"
        )
        rows: list[tuple[str, ...]] = [
            (
                esc(a.get("allocation_id")),
                esc(a.get("location_id")),
                esc(", ".join(f"{line.get('sku')} x {line.get('quantity')}" for line in a.get("lines", []))),
                esc(a.get("state")),
            )
            for a in sourcing.get("allocations", [])
        ]
        body += table(("allocation", "location", "lines", "state"), rows, "No allocations.", "allocations")
        backorder = sourcing.get("backorder") or []
        if backorder:
            body += "<p>Backorder: " + esc(
                ", ".join(f"{b.get('sku')} x {b.get('quantity')}" for b in backorder)
            )
            body += "</p>"
    lines = view.get("lines") or []
    if lines:
        rows = [
            tuple(esc(line.get(k)) for k in ("sku", "quantity", "state", "allocated", "shipped", "cancelled"))
            for line in lines
        ]
        body += "<h2>Lines</h2>" + table(
            ("sku", "ordered", "state", "allocated", "shipped", "cancelled"), rows, "", "lines"
        )
    cancellations = view.get("cancellations") or []
    if cancellations:
        rows = [
            (esc(c.get("request_id") or c.get("event_id")), esc(c.get("outcome")), esc(c.get("reason", "")))
            for c in cancellations
        ]
        body += "<h2>Cancellations</h2>" + table(("request", "outcome", "reason"), rows, "", "cancellations")
    returns = view.get("returns") or []
    if returns:
        rows = [
            (
                return_link(r.get("return_id")),
                esc(r.get("location_id")),
                esc(r.get("handling")),
                esc(
                    ", ".join(
                        f"{i.get('sku')} x {i.get('quantity')} {i.get('grade')} → {i.get('disposition')}"
                        for i in r.get("items", [])
                    )
                ),
                esc(r.get("processed_at")),
            )
            for r in returns
        ]
        body += "<h2>Returns</h2>" + table(
            ("return", "location", "handling", "items", "processed"), rows, "", "returns"
        )
    return layout(f"Order {order_id}", body, "/console/orders")


def _lines_text(lines: Any) -> str:
    return ", ".join(f"{line.get('sku')} x {line.get('quantity')}" for line in lines or [])


def _shipments(view: Mapping[str, Any]) -> str:
    """Where the order ships from as allocated (the promise's shipments, then those sourcing added),
    and each move a re-sourcing made: from where, to which shipments, what and why."""
    shipments = view.get("shipments") or []
    if not shipments:
        return ""
    rows: list[tuple[str, ...]] = [
        (
            esc(s.get("shipment")),
            esc(s.get("location_id")),
            esc(_lines_text(s.get("lines"))),
            esc(s.get("service_id") or s.get("route_id") or ""),
            esc(s.get("arrives_at") or ""),
            esc(s.get("round")),
            esc(s.get("state") + (f", {s['late_minutes']} min late" if s.get("late_minutes") else "")),
        )
        for s in shipments
    ]
    html = "<h2>Shipments</h2>" + table(
        ("shipment", "location", "lines", "service / route", "arrives", "round", "state"),
        rows,
        "",
        "shipments",
    )
    moves = view.get("moves") or []
    if moves:
        rows = [
            (
                esc(m.get("at") or ""),
                esc(m.get("round")),
                esc(f"{m.get('shipment')} at {m.get('from_location_id')}"),
                esc(
                    ", ".join(f"{t.get('shipment')} at {t.get('location_id')}" for t in m.get("to", []))
                    or "nowhere"
                ),
                esc(_lines_text(m.get("lines"))),
                esc(m.get("reason") or ""),
            )
            for m in moves
        ]
        html += "<h2>Moves</h2>" + table(("at", "round", "from", "to", "lines", "why"), rows, "", "moves")
    return html


def _minutes(value: Any) -> str:
    return "unknown" if value is None else f"{value} min"


def _timeline(view: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    entries: list[tuple[str, str, str]] = []
    promise = view.get("promise")
    if promise:
        entries.append(
            (str(promise.get("placed_at", "")), "placed", f"promise version {promise.get('version')}")
        )
    for m in view.get("milestones", []):
        state = "reached" if m.get("reached") else "due"
        entries.append(
            (
                str(m.get("due", "")),
                f"milestone {m.get('kind')} ({state})",
                f"{m.get('location_id')}, shipment {m.get('shipment')}",
            )
        )
    events = view.get("events")
    for e in events if isinstance(events, list) else []:
        entries.append((str(e.get("occurred_at", "")), str(e.get("kind")), str(e.get("location_id") or "")))
    for r in view.get("returns") or []:
        entries.append(
            (
                str(r.get("processed_at", "")),
                "return processed",
                f"{r.get('return_id')} at {r.get('location_id')}",
            )
        )
    entries.sort(key=lambda entry: entry[0])
    return [(esc(when), esc(what), esc(detail)) for when, what, detail in entries]


# -- at risk ------------------------------------------------------------------------------------------


AT_RISK_STREAM = "/console/at-risk/stream"


def at_risk_fragment(open_orders: Sequence[Mapping[str, Any]], cleared: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (
            order_link(e.get("order_id")),
            esc(e.get("reason")),
            f'<strong class="action">{esc(e.get("suggested_action"))}</strong>',
            esc(e.get("milestone")),
            esc(e.get("location_id")),
            esc(_minutes(e.get("expected_delay_minutes"))),
            esc(e.get("promised_by")),
            esc(e.get("occurred_at")),
        )
        for e in open_orders
    ]
    headers = (
        "order",
        "reason",
        "suggested action",
        "milestone",
        "location",
        "expected delay",
        "promised by",
        "since",
    )
    out = f"<p>{len(rows)} order(s) at risk.</p>" + table(headers, rows, "No order is at risk.", "at-risk")
    recent = [(order_link(e.get("order_id")), esc(e.get("occurred_at"))) for e in cleared]
    if recent:
        out += "<h2>Cleared lately</h2>" + table(("order", "cleared at"), recent, "", "cleared")
    return out


def at_risk_page(fragment: str) -> str:
    body = (
        "<p class=note>From <code>oms.orders.at-risk.v1</code>; updates live (server-sent events).</p>"
        + _live(AT_RISK_STREAM, "at-risk", fragment, "at-risk-live")
    )
    return layout("Orders at risk", body, "/console/at-risk")


# -- dead letters -------------------------------------------------------------------------------------


def dead_letters_fragment(letters: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for letter in letters:
        payload = letter.get("payload")
        cut = letter.get("payload_cut_for_display")
        note = f" (first {len(payload or '')} of {cut} characters shown)" if cut else ""
        if letter.get("truncated"):
            note += f" (letter truncated: input had {letter.get('payload_bytes')} bytes)"
        rows.append(
            (
                esc(letter.get("failed_at")),
                esc(letter.get("reason")),
                f"{esc(letter.get('source_topic'))}<br>p{esc(letter.get('source_partition'))} "
                f"@{esc(letter.get('source_offset'))}",
                f"<code>{esc(letter.get('key'))}</code>"
                + (f" ({esc(letter.get('key_encoding'))})" if letter.get("key_encoding") == "base64" else ""),
                f"<details><summary>{esc(letter.get('payload_encoding') or 'payload')}{esc(note)}</summary>"
                f'<pre class="payload">{esc(payload)}</pre></details>',
                f"p{esc(letter.get('dlq_partition'))} @{esc(letter.get('dlq_offset'))}",
            )
        )
    headers = ("failed at", "reason", "source topic / partition / offset", "key", "payload", "on oms.dlq.v1")
    return f"<p>{len(rows)} dead letter(s).</p>" + table(headers, rows, "No dead letters.", "dead-letters")


def dead_letters_page(fragment: str, topic: str, reason: str, topics: Sequence[str]) -> str:
    options = "".join(
        f'<option value="{esc(t)}"{" selected" if t == topic else ""}>{esc(t)}</option>'
        for t in ["", *topics]
    )
    query = urlencode({k: v for k, v in (("topic", topic), ("reason", reason)) if v})
    body = (
        '<form class="lookup" method="get" action="/console/dead-letters">'
        f'<label>Source topic <select name="topic">{options}</select></label> '
        f'<label>Reason contains <input name="reason" value="{esc(reason)}"></label>'
        '<button type="submit">Filter</button></form>'
        "<p class=note>The last dead letters on <code>oms.dlq.v1</code>, newest first; updates live.</p>"
        + _live(
            f"/console/dead-letters/stream{'?' + query if query else ''}",
            "dead-letters",
            fragment,
            "dlq-live",
        )
    )
    return layout("Dead letters", body, "/console/dead-letters")


# -- returns ------------------------------------------------------------------------------------------


def return_lookup_page(return_id: str = "", error: str = "") -> str:
    body = lookup_form("/console/returns", "return_id", "Return id", return_id)
    if error:
        body += f'<p class="error">{esc(error)}</p>'
    return layout("Returns", body, "/console/returns")


def return_page(row: Mapping[str, Any]) -> str:
    """``row`` is what ``GET /returns/{id}`` answers."""
    return_id = str(row.get("return_id", ""))
    body = lookup_form("/console/returns", "return_id", "Return id", return_id)
    order_id = row.get("order_id")
    body += f"<p>Order {order_link(order_id) if order_id else 'none'}, channel {esc(row.get('channel'))}</p>"
    routing = row.get("routing") or {}
    rows: list[tuple[str, ...]] = [
        (
            esc(line.get("line_id")),
            esc(line.get("sku")),
            esc(line.get("quantity")),
            esc(line.get("location_id") or "nowhere"),
            esc(line.get("km")),
            esc(line.get("central_location")),
            esc(line.get("central_km")),
            esc(line.get("need_covered")),
            esc(line.get("refused_reason") or line.get("reason")),
        )
        for line in routing.get("lines", [])
    ]
    body += "<h2>Routing</h2>" + table(
        ("line", "sku", "units", "routed to", "km", "central DC", "central km", "need covered", "why"),
        rows,
        "Not routed.",
        "routing",
    )
    receipts = row.get("receipts") or {}
    rows = [
        (
            esc(event_id),
            esc(receipt.get("location_id")),
            esc(receipt.get("handling")),
            esc(receipt.get("km_avoided")),
            esc(
                ", ".join(
                    f"{i.get('sku')} x {i.get('quantity')} {i.get('grade')} → {i.get('disposition')}"
                    for i in receipt.get("items", [])
                )
            ),
        )
        for event_id, receipt in receipts.items()
    ]
    body += "<h2>Receipts</h2>" + table(
        ("receipt", "location", "handling", "km avoided", "items"), rows, "Nothing received yet.", "receipts"
    )
    return layout(f"Return {return_id}", body, "/console/returns")
