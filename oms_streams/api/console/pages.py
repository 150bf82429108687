"""The operator console's pages, rendered on the server: plain functions of plain data, no I/O.

The overview, availability, the network map, orders at risk, dead letters and returns. The order page
is in ``order_pages``; the building blocks (escaping, layout, tables, live regions) in ``markup``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from oms_streams.api.console.markup import _live, _minutes, esc, layout, lookup_form, order_link, table

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
