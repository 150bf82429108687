"""``oms report``'s page: one self-contained HTML file (plots are PNGs embedded as base64), a section
per question a planner asks, each with a line saying what it shows, and saying so when there is no
data for it."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from oms_streams.tools.report import DayReport, PlanFigures, median

NONE = "-"

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
p.what{color:#555;font-style:italic;margin-top:0}p.none{color:#a33}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f5f5f5}
img{max-width:100%;display:block;margin:.6em 0}small{color:#666}
"""


def _fmt(value: float | int | None, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return NONE
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return f"{value:,.{digits}f}{suffix}"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else NONE


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], ids: Sequence[str | None] = ()) -> str:
    out = ["<table><tr>", *(f"<th>{html.escape(h)}</th>" for h in header), "</tr>"]
    for i, row in enumerate(rows):
        row_id = ids[i] if i < len(ids) else None
        out.append(f"<tr id='{row_id}'>" if row_id else "<tr>")
        for cell in row:
            numeric = isinstance(cell, (int, float)) or (isinstance(cell, str) and _numeric(cell))
            text = _fmt(cell) if isinstance(cell, (int, float)) else html.escape(str(cell))
            out.append(f"<td class='n'>{text}</td>" if numeric else f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] in "-+") and len(text) < 24


def _facts(rows: Sequence[tuple[str, str, str]]) -> str:
    """A two-column table of figures; each value cell has an id (``fact-<key>``) for tests and tools."""
    out = ["<table>"]
    for key, label, value in rows:
        out.append(
            f"<tr><th>{html.escape(label)}</th><td class='n' id='fact-{key}'>{html.escape(value)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _section(anchor: str, title: str, what: str, body: str | None, empty: str) -> str:
    head = f"<h2 id='{anchor}'>{html.escape(title)}</h2><p class='what'>{html.escape(what)}</p>"
    return head + (body if body else f"<p class='none'>{html.escape(empty)}</p>")


class _Plots:
    """matplotlib on the Agg backend; each figure becomes an <img> with a data: URI."""

    def __init__(self) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as error:
            raise ValueError("the report needs matplotlib: pip install 'oms-streams[report]'") from error
        self.plt = plt

    def image(self, alt: str, draw: Callable[[Any], None], height: float = 3.0) -> str:
        fig, ax = self.plt.subplots(figsize=(8, height), dpi=96)
        try:
            draw(ax)
            ax.grid(True, alpha=0.3)
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
        finally:
            self.plt.close(fig)
        encoded = base64.b64encode(buffer.getvalue()).decode()
        return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{encoded}'>"

    def bars(self, alt: str, counts: Mapping[str, float], xlabel: str, top: int = 12) -> str:
        items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]

        def draw(ax: Any) -> None:
            labels = [label if len(label) <= 48 else label[:45] + "..." for label, _ in items][::-1]
            ax.barh(labels, [v for _, v in items][::-1], color="#4878a8")
            ax.set_xlabel(xlabel)

        return self.image(alt, draw, height=max(1.8, 0.35 * len(items) + 1.0))


def _orders(report: DayReport, plots: _Plots) -> str:
    o = report.orders
    if not o.orders:
        return _section(
            "parcels",
            "Parcels per order",
            "How many parcels each order became (allocations, net of cancels), and their km and CO2e.",
            None,
            "No orders were placed or allocated in this window.",
        )
    km = sum(o.km) / len(o.km) if o.km else None
    co2e = sum(o.co2e_g) / len(o.co2e_g) / 1000 if o.co2e_g else None
    facts = _facts(
        [
            ("orders", "orders placed", _fmt(o.orders)),
            ("shipped-orders", "orders with a parcel (net of cancels)", _fmt(o.shipped_orders)),
            ("parcels-per-order", "parcels per order", _fmt(o.parcels_per_order)),
            ("km-per-order", "km per order (great-circle, origin to customer)", _fmt(km, 1)),
            ("co2e-per-order", "CO2e per order (kg)", _fmt(co2e, 3)),
            ("fully-cancelled", "orders whose every allocation was cancelled", _fmt(o.fully_cancelled)),
            ("resourced", "orders sourced more than once", _fmt(o.resourced)),
        ]
    )
    outcomes = _table(["last sourcing outcome", "orders"], sorted(o.outcomes.items()))
    methods = _table(["delivery method", "orders"], sorted(o.methods.items()))
    body = facts + outcomes + methods
    if o.parcels:

        def draw(ax: Any) -> None:
            keys = sorted(o.parcels)
            ax.bar([str(k) for k in keys], [o.parcels[k] for k in keys], color="#4878a8")
            ax.set_xlabel("parcels")
            ax.set_ylabel("orders")

        body += plots.image("orders by parcels", draw)
    return _section(
        "parcels",
        "Parcels per order",
        "How many parcels each order became (allocations, net of cancels), and their km and CO2e.",
        body,
        "",
    )


def _saving(engine: float, baseline: float) -> str:
    return f"{100 * (baseline - engine) / baseline:+.1f} %" if baseline else NONE


def _baselines(report: DayReport, plots: _Plots) -> str:
    b = report.baselines
    what = (
        "The engine's first plan per home-delivery order against two simple rules on the same stock: "
        "'everything from the nearest DC' and 'each line from the nearest location holding it'. "
        "Derived from each order's decision trace (the candidates, the units each held at that moment "
        "and their km); baseline CO2e uses the order's own g per parcel-km."
    )
    skipped = (
        "<p><small>Not compared: "
        + html.escape(", ".join(f"{n} {reason}" for reason, n in sorted(b.skipped.items())))
        + "</small></p>"
        if b.skipped
        else ""
    )
    if not b.engine.orders:
        return (
            _section(
                "baselines", "Against the baselines", what, None, "No home-delivery order could be compared."
            )
            + skipped
        )
    plans: list[tuple[PlanFigures, str]] = [
        (b.engine, "engine"),
        (b.nearest_dc, "nearest-dc"),
        (b.per_line, "per-line"),
    ]
    rows = []
    for figures, _ in plans:
        rows.append(
            [
                figures.name,
                figures.orders,
                _fmt(figures.per_order(figures.parcels)),
                _fmt(figures.per_order(figures.km), 1),
                _fmt(figures.per_order(figures.co2e_g / 1000), 3),
            ]
        )
    table = _table(
        ["plan", "orders", "parcels / order", "km / order", "CO2e kg / order"],
        rows,
        [f"plan-{key}" for _, key in plans],
    )
    savings = _facts(
        [
            (
                "parcels-vs-nearest-dc",
                "parcels saved vs nearest DC",
                _saving(b.engine.parcels, b.nearest_dc.parcels),
            ),
            ("km-vs-nearest-dc", "km saved vs nearest DC", _saving(b.engine.km, b.nearest_dc.km)),
            ("co2e-vs-nearest-dc", "CO2e saved vs nearest DC", _saving(b.engine.co2e_g, b.nearest_dc.co2e_g)),
            (
                "parcels-vs-per-line",
                "parcels saved vs per-line nearest",
                _saving(b.engine.parcels, b.per_line.parcels),
            ),
            ("km-vs-per-line", "km saved vs per-line nearest", _saving(b.engine.km, b.per_line.km)),
            (
                "co2e-vs-per-line",
                "CO2e saved vs per-line nearest",
                _saving(b.engine.co2e_g, b.per_line.co2e_g),
            ),
        ]
    )

    def draw(ax: Any) -> None:
        metrics = ("parcels", "km", "co2e_g")
        labels = ("parcels", "km", "CO2e")
        width = 0.27
        for i, (figures, _) in enumerate(plans):
            base = [max(getattr(b.nearest_dc, m), 1e-9) for m in metrics]
            values = [100 * getattr(figures, m) / base[j] for j, m in enumerate(metrics)]
            ax.bar([j + (i - 1) * width for j in range(3)], values, width, label=figures.name)
        ax.set_xticks(range(3), labels)
        ax.set_ylabel("% of nearest DC")
        top = max(
            100 * getattr(f, m) / max(getattr(b.nearest_dc, m), 1e-9) for f, _ in plans for m in metrics
        )
        ax.set_ylim(0, top * 1.35)
        ax.legend(fontsize=8, loc="upper center", ncol=3)

    notes = ""
    if b.truncated_traces:
        notes = (
            f"<p><small>{b.truncated_traces} compared order(s) had more candidates than their trace "
            "lists (25, the cheapest): their baselines use the listed ones.</small></p>"
        )
    savings += "<p><small>Saved: how much less the engine used; negative: it used more.</small></p>"
    body = table + savings + plots.image("engine against the baselines", draw) + notes + skipped
    return _section("baselines", "Against the baselines", what, body, "")


def _promise(report: DayReport, plots: _Plots) -> str:
    p = report.promise
    what = (
        "Whether orders arrived within the promised window (delivered or collected by its end), and "
        "how long they took from placement, against how long was promised."
    )
    if not p.promised:
        return _section(
            "promise", "Promise kept", what, None, "No order was placed with a promise in this window."
        )
    facts = _facts(
        [
            ("promised", "orders placed with a promise", _fmt(p.promised)),
            ("completed", "delivered or collected", _fmt(p.completed)),
            ("on-time-rate", "on time", _pct(p.on_time, p.completed)),
            ("open", "not delivered yet", _fmt(p.open_orders)),
            ("open-past-window", "not delivered and past the window", _fmt(p.open_past_window)),
            ("not-shipping", "cancelled whole or rejected (not scored)", _fmt(p.not_shipping)),
            ("lead-median", "median lead time (h)", _fmt(median(p.lead_hours), 1)),
            ("promised-median", "median promised lead time (h)", _fmt(median(p.promised_hours), 1)),
            (
                "confidence",
                "mean promised confidence",
                _fmt(sum(p.confidences) / len(p.confidences)) if p.confidences else NONE,
            ),
        ]
    )
    methods = _table(
        ["method", "completed", "on time", "rate"],
        [[m, c, t, _pct(t, c)] for m, (c, t) in sorted(p.by_method.items())],
    )
    body = facts + (methods if p.by_method else "")

    def draw(ax: Any) -> None:
        bins = 20
        ax.hist(p.promised_hours, bins=bins, alpha=0.5, label="promised (placed → window end)")
        if p.lead_hours:
            ax.hist(p.lead_hours, bins=bins, alpha=0.7, label="actual (placed → delivered/collected)")
        ax.set_xlabel("hours")
        ax.set_ylabel("orders")
        ax.legend(fontsize=8)

    body += plots.image("lead times", draw)
    return _section("promise", "Promise kept", what, body, "")


def _risk(report: DayReport, plots: _Plots) -> str:
    r = report.risk
    what = (
        "Orders put at risk by a missed milestone or trouble in fulfilment, by cause, and what was suggested."
    )
    if not r.events and not r.cleared:
        return _section("risk", "Orders at risk", what, None, "No order was at risk in this window.")
    facts = _facts(
        [
            ("at-risk-orders", "orders at risk", _fmt(r.orders)),
            ("at-risk-events", "at-risk transitions", _fmt(sum(r.events.values()))),
            ("cleared", "cleared (back on track)", _fmt(r.cleared)),
            ("delay-median", "median expected delay (min)", _fmt(median(r.delays_minutes), 0)),
        ]
    )
    body = facts + _table(["cause", "transitions"], r.events.most_common())
    body += _table(["suggested action", "transitions"], r.actions.most_common())
    if r.events:
        body += plots.bars("at-risk causes", r.events, "transitions")
    return _section("risk", "Orders at risk", what, body, "")


def _cancellations(report: DayReport, plots: _Plots) -> str:
    c = report.cancellations
    what = "Cancellation requests and what became of them (before shipment; a shipped line is refused)."
    if not c.outcomes:
        return _section(
            "cancellations", "Cancellations", what, None, "No cancellation was requested in this window."
        )
    facts = _facts(
        [
            ("cancellation-requests", "requests answered", _fmt(sum(c.outcomes.values()))),
            ("orders-cancelled", "orders cancelled whole", _fmt(c.orders_cancelled)),
            ("units-cancelled", "units cancelled", _fmt(c.units_cancelled)),
            ("units-refused", "units refused (already shipped)", _fmt(c.units_refused)),
        ]
    )
    body = facts + _table(["outcome", "requests"], sorted(c.outcomes.items()))
    body += plots.bars("cancellation outcomes", c.outcomes, "requests")
    return _section("cancellations", "Cancellations", what, body, "")


def _returns(report: DayReport, plots: _Plots) -> str:
    r = report.returns
    what = (
        "Returns received, what became of the items, and the transport avoided against sending every "
        "return to the central DC (km per item)."
    )
    if not r.receipts:
        return _section("returns", "Returns", what, None, "No return was received in this window.")
    facts = _facts(
        [
            ("return-receipts", "receipts", _fmt(r.receipts)),
            ("km-avoided", "km avoided", _fmt(r.km_avoided, 1)),
        ]
    )
    handling = _table(
        ["handling", "receipts", "km avoided"],
        [[h, int(n), _fmt(km, 1)] for h, (n, km) in sorted(r.by_handling.items())],
    )
    body = facts + handling + _table(["disposition", "units"], sorted(r.units.items()))
    if r.units:
        body += plots.bars("returned units by disposition", r.units, "units")
    return _section("returns", "Returns", what, body, "")


def _protection(report: DayReport, plots: _Plots) -> str:
    p = report.protection
    what = (
        "Units stores keep for their walk-in shoppers until their next replenishment (hidden from every "
        "online channel), over the window and per store at its end."
    )
    if not p.series or not p.peak:
        return _section(
            "protection", "Store protection", what, None, "No store protected any units in this window."
        )
    facts = _facts(
        [
            ("protected-now", "units protected at the end", _fmt(sum(p.per_store.values()))),
            ("protected-peak", "peak units protected", _fmt(p.peak)),
            ("protected-skus", "SKUs protected at the end", _fmt(p.skus)),
        ]
    )
    body = facts + _table(["store", "units protected"], sorted(p.per_store.items()))

    def draw(ax: Any) -> None:
        ax.step([t for t, _ in p.series], [u for _, u in p.series], where="post", color="#4878a8")
        ax.set_ylabel("units protected")
        ax.set_xlabel("UTC")
        ax.figure.autofmt_xdate()

    body += plots.image("units protected over time", draw)
    if p.per_store:
        body += plots.bars("units protected per store", p.per_store, "units", top=20)
    return _section("protection", "Store protection", what, body, "")


def _dead_letters(report: DayReport, plots: _Plots) -> str:
    d = report.dead_letters
    what = (
        "Input the worker could not apply, by reason and by the topic it came from (each can be fixed "
        "and re-sent)."
    )
    if not d.reasons:
        return _section("dlq", "Dead letters", what, None, "No dead letters in this window.")
    body = _facts([("dead-letters", "dead letters", _fmt(sum(d.reasons.values())))])
    body += _table(["reason", "records"], d.reasons.most_common(20))
    body += _table(["source topic", "records"], d.topics.most_common())
    body += plots.bars("dead letters by reason", d.reasons, "records")
    return _section("dlq", "Dead letters", what, body, "")


def _read(report: DayReport) -> str:
    rows = []
    for topic, count in sorted(report.records.items()):
        bad = report.undecodable.get(topic, Counter())
        reasons = "; ".join(f"{n} {reason}" for reason, n in bad.most_common(3))
        rows.append([topic, count, sum(bad.values()), reasons])
    body = _table(["topic", "records", "not decoded", "why"], rows) if rows else ""
    if report.missing:
        body += f"<p>Topics not on the cluster: {html.escape(', '.join(report.missing))}</p>"
    return _section(
        "read",
        "What was read",
        "Records read per topic, and those that could not be decoded.",
        body,
        "No records were read.",
    )


def render_html(report: DayReport) -> str:
    plots = _Plots()
    sections = [
        _orders(report, plots),
        _baselines(report, plots),
        _promise(report, plots),
        _risk(report, plots),
        _cancellations(report, plots),
        _returns(report, plots),
        _protection(report, plots),
        _dead_letters(report, plots),
        _read(report),
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>oms day report</title>"
        f"<style>{STYLE}</style></head><body><h1>Day report</h1>"
        f"<p>Read from the public topics: {html.escape(report.window.text())}.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )
