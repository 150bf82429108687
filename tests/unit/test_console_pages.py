"""The console's pages and feeds without a worker: escaping, the at-risk book, the dead-letter log, SSE."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from oms_streams.api.console import markup, order_pages, pages
from oms_streams.api.console.feeds import DISPLAY_CHARS, MAX_LETTERS, ConsoleFeeds
from oms_streams.api.console.views import sse_message

HOSTILE = '{"order_id": "<script>alert(1)</script>", "note": "a & b \\"q\\" \'s\'"}'


def record(topic: str, value: bytes | None, partition: int = 0, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, key=None, value=value)


def letter(payload: str | None, **fields: object) -> bytes:
    return json.dumps(
        {
            "reason": "schema violation <b>bold</b>",
            "source_topic": "oms.orders.placed.v1",
            "source_partition": 2,
            "source_offset": 17,
            "key": "<img src=x onerror=alert(1)>",
            "key_encoding": "utf-8",
            "payload": payload,
            "payload_encoding": "utf-8",
            "failed_at": "2026-01-01T00:00:00+00:00",
            **fields,
        }
    ).encode()


def test_a_dead_letter_payload_with_markup_is_shown_as_text() -> None:
    feeds = ConsoleFeeds("oms.orders.at-risk.v1", "oms.dlq.v1")
    feeds.on_records([record("oms.dlq.v1", letter(HOSTILE), partition=1, offset=5)])
    html = pages.dead_letters_fragment(feeds.dead_letters.matching())
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&amp; b &quot;q&quot; &#x27;s&#x27;" in html.replace("\\&quot;", "&quot;")
    assert "oms.orders.placed.v1" in html and "p2 @17" in html and "p1 @5" in html
    page = pages.dead_letters_page(html, '"><script>', "", ["oms.orders.placed.v1"])
    assert page.count("<script") == 2  # the two vendored script tags, nothing else
    assert 'src="/console/static/htmx-2.0.11.min.js"' in page


def test_the_dead_letter_log_is_bounded_cuts_long_payloads_and_filters() -> None:
    feeds = ConsoleFeeds("risk", "dlq")
    long = "x" * (DISPLAY_CHARS + 10)
    feeds.on_records([record("dlq", letter(long), offset=i) for i in range(MAX_LETTERS + 3)])
    feeds.on_records(
        [record("dlq", b"not json {", offset=999), record("dlq", letter(None, source_topic="t2"))]
    )
    letters = feeds.dead_letters.letters
    assert len(letters) == MAX_LETTERS
    first = letters[0]
    assert first["source_topic"] == "t2" and first["payload"] is None
    assert letters[1]["payload"] == "not json {" and "unreadable" in letters[1]["reason"]
    cut = letters[2]
    assert len(cut["payload"]) == DISPLAY_CHARS and cut["payload_cut_for_display"] == DISPLAY_CHARS + 10
    assert f"first {DISPLAY_CHARS} of {DISPLAY_CHARS + 10} characters" in pages.dead_letters_fragment([cut])
    assert [letter["source_topic"] for letter in feeds.dead_letters.matching(topic="t2")] == ["t2"]
    assert len(feeds.dead_letters.matching(reason="SCHEMA")) == MAX_LETTERS - 1


def at_risk(order_id: str, status: str = "at_risk", **fields: object) -> bytes:
    return json.dumps(
        {
            "order_id": order_id,
            "status": status,
            "reason": "pick_not_started",
            "suggested_action": "expedite",
            "occurred_at": "2026-01-01T00:00:00+00:00",
            **fields,
        }
    ).encode()


def test_the_at_risk_book_keeps_the_latest_state_per_order_newest_first() -> None:
    feeds = ConsoleFeeds("risk", "dlq")
    feeds.on_records([record("risk", at_risk("A")), record("risk", at_risk("B")), record("risk", b"{")])
    feeds.on_records(
        [record("risk", at_risk("A", "cleared")), record("risk", at_risk("C", reason="<i>x</i>"))]
    )
    book = feeds.at_risk
    assert [e["order_id"] for e in book.newest_first()] == ["C", "B"]
    assert [e["order_id"] for e in book.cleared] == ["A"] and book.unreadable == 1
    html = pages.at_risk_fragment(book.newest_first(), list(book.cleared))
    assert "2 order(s) at risk" in html and "&lt;i&gt;x&lt;/i&gt;" in html and "<i>" not in html
    assert '<a href="/console/orders/C">C</a>' in html and "Cleared lately" in html
    assert "No order is at risk" in pages.at_risk_fragment([], [])


def test_an_order_link_escapes_and_quotes_the_id() -> None:
    assert markup.order_link('a/"b') == '<a href="/console/orders/a%2F%22b">a/&quot;b</a>'


def test_an_order_page_renders_the_timeline_in_time_order_and_escapes_it() -> None:
    view = {
        "order_id": "O<1>",
        "status": "at_risk",
        "promise": {"version": 2, "placed_at": "2026-01-01T10:00:00+00:00", "option": {"method": "standard"}},
        "milestones": [
            {"kind": "delivered", "due": "2026-01-03T10:00:00+00:00", "location_id": "DC", "shipment": 0},
            {"kind": "pick_start", "due": "2026-01-01T12:00:00+00:00", "location_id": "DC", "shipment": 0},
        ],
        "events": [{"kind": "picked", "occurred_at": "2026-01-01T11:00:00+00:00", "location_id": "DC"}],
        "risk": {"reason": "carrier_delay", "suggested_action": "inform_customer", "location_id": "DC"},
        "sourcing": {"status": "allocated", "round": 1, "allocations": [], "backorder": []},
        "returns": [{"return_id": "R1", "processed_at": "2026-01-05T00:00:00+00:00", "items": []}],
        "lines": [],
        "cancellations": [],
    }
    html = order_pages.order_page(view)
    assert "O&lt;1&gt;" in html and "<1>" not in html
    order = [html.index(what) for what in ("placed", "picked", "milestone pick_start", "milestone delivered")]
    assert order == sorted(order)
    assert "inform_customer" in html and '<a href="/console/returns/R1">R1</a>' in html


def test_a_server_sent_event_carries_every_line_of_its_fragment() -> None:
    assert sse_message("at-risk", "a\nb\r\nc") == b"event: at-risk\ndata: a\ndata: b\ndata: c\n\n"


async def test_open_pages_wake_on_a_change_and_on_close() -> None:
    feeds = ConsoleFeeds("risk", "dlq")
    seen = feeds.changes.version
    waiting = asyncio.ensure_future(feeds.changes.wait(seen, 5.0))
    await asyncio.sleep(0)
    feeds.on_records([record("risk", at_risk("A"))])
    assert await asyncio.wait_for(waiting, 1.0) == seen + 1
    assert await feeds.changes.wait(seen + 1, 0.01) == seen + 1  # a timeout: nothing new
    feeds.changes.close()
    assert feeds.changes.closed and await feeds.changes.wait(seen + 2, 5.0) == seen + 2


def test_an_order_page_shows_where_it_ships_from_as_allocated_and_each_move() -> None:
    view = {
        "order_id": "O1",
        "status": "on_track",
        "shipments": [
            {
                "shipment": 0,
                "location_id": "DC-NORTH",
                "lines": [{"sku": "SKU-TENT", "quantity": 1}],
                "service_id": "POSTNL-STANDARD",
                "arrives_at": "2026-01-03T10:00:00+00:00",
                "round": 0,
                "state": "withdrawn",
                "late_minutes": None,
            },
            {
                "shipment": 1,
                "location_id": "DC-SOUTH",
                "lines": [{"sku": "SKU-TENT", "quantity": 1}],
                "service_id": "POSTNL-STANDARD",
                "arrives_at": "2026-01-03T12:00:00+00:00",
                "round": 2,
                "state": "current",
                "late_minutes": 120,
            },
        ],
        "moves": [
            {
                "round": 2,
                "shipment": 0,
                "from_location_id": "DC-NORTH",
                "to": [{"shipment": 1, "location_id": "DC-SOUTH"}],
                "lines": [{"sku": "SKU-TENT", "quantity": 1}],
                "withdrawn": True,
                "reason": "short_pick at DC-NORTH: <not> on the shelf",
                "at": "2026-01-01T10:30:00+00:00",
            }
        ],
    }
    html = order_pages.order_page(view)
    shipments = html[html.index('data-testid="shipments"') : html.index("<h2>Moves</h2>")]
    assert "DC-NORTH" in shipments and "withdrawn" in shipments and "current, 120 min late" in shipments
    moves = html[html.index("<h2>Moves</h2>") :]
    assert "0 at DC-NORTH" in moves and "1 at DC-SOUTH" in moves and "SKU-TENT x 1" in moves
    assert "&lt;not&gt;" in moves and "<not>" not in moves
    assert "<h2>Shipments</h2>" not in order_pages.order_page({"order_id": "O2", "status": "placed"})
