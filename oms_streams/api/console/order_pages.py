"""The console's order pages: the lookup form, and one order as ``GET /orders/{id}`` answers it (status,
risk, promise, timeline, shipments and the moves re-sourcing made, allocations, lines, cancellations,
returns). Plain functions of plain data, no I/O; values are escaped with ``markup.esc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oms_streams.api.console.markup import _minutes, esc, layout, lookup_form, return_link, table


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
