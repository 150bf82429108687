"""The chaos load's preorders (``bench.chaos_load``), without a broker: what it sends is what the
worker reads as a preorder (an announcement with an ETA covering the cart at one DC, then a
placement with a ``preorder`` option there). ``bench.chaos`` itself runs on a broker with workers
(``tests/integration/test_chaos.py``, ``python -m bench.chaos --preorders 0.1``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.chaos_load import MOVEMENTS, SKUS, ChaosLoad
from oms_streams.adapters.orders import Placement, decode_placement
from oms_streams.adapters.stock import DecodedStock, decode_movement
from tests.worker_process import Events


class Captured(Events):
    """Events that keep what they would produce."""

    def __init__(self) -> None:
        self.prefix, self.bootstrap, self._seq = "chaos-test.", "unused", 0
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        pass


def test_a_preorder_of_the_load_announces_its_cart_as_inbound_with_an_eta_then_places_a_preorder() -> None:
    events = Captured()
    load = ChaosLoad(events, lambda: [], seed=7, preorder_share=1.0)
    cart = {SKUS[0]: 2, SKUS[3]: 1}
    before = datetime.now(UTC)
    load._preorder("CHAOS-P00001", cart)

    *announced, (topic, key, value) = events.sent
    placement = decode_placement(key, value)
    assert topic == "oms.orders.placed.v1" and isinstance(placement, Placement), placement
    option = placement.option
    assert option.preorder and option.option_id.startswith("preorder:")
    [shipment] = option.shipments
    assert {line.sku: line.quantity for line in shipment.lines} == cart

    movements: dict[str, Any] = {}
    for sent_to, sku_key, announcement in announced:
        assert sent_to == MOVEMENTS
        decoded = decode_movement(sku_key, announcement)
        assert isinstance(decoded, DecodedStock), decoded
        [command] = decoded.commands
        assert decoded.kind == "inbound_announced" and command.location_id == shipment.location_id
        movements[decoded.sku] = command.event
    assert {sku: m.quantity for sku, m in movements.items()} == cart
    etas = {m.expected_at_ms for m in movements.values()}
    assert len(etas) == 1 and etas.pop() > before.timestamp() * 1000  # one ETA, ahead
    assert load.figures.as_dict()["preorders"] == 1 and load.figures.announced == 2
    assert load.placed == ["CHAOS-P00001"]
    assert placement.order_id == "CHAOS-P00001"


def test_without_a_preorder_share_the_load_places_no_preorder() -> None:
    events = Captured()
    load = ChaosLoad(events, lambda: [], seed=7)
    load._place("CHAOS-00001", {SKUS[0]: 1})
    [(_, key, value)] = events.sent
    placement = decode_placement(key, value)
    assert isinstance(placement, Placement) and not placement.option.preorder
