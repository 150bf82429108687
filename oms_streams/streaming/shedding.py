"""The ledger's side of stock that disappears under a hold (``domain.shortfall``).

After a SKU's stock events are applied, the locations they changed are checked; the holds shed are
written with the positions in the same batch (so a re-read event finds nothing left to shed), and
their owners are told in that batch too: an order's owner gets a ``shed`` reply on the reservation
replies topic (it re-sources the allocation), a cart hold's row ends and ``oms.holds.v1`` says
``released`` with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from oms_streams.adapters.reservations import shed_reply
from oms_streams.domain.inventory import (
    Count,
    Movement,
    StockPosition,
    Verdict,
    available_to_promise,
)
from oms_streams.domain.ledger import StockCommand
from oms_streams.domain.reservations import is_cart_hold
from oms_streams.domain.shortfall import ShedHold, shed_shortfalls, shortfall
from oms_streams.metrics import Metrics
from oms_streams.streaming.holds import HoldKeeper
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.outbox import PartitionBatches


def causes(commands: Sequence[StockCommand], verdicts: Sequence[tuple[Verdict, str]]) -> dict[str, str]:
    """Location -> what last changed its stock in the batch (for the reason)."""
    found: dict[str, str] = {}
    for command, (verdict, _) in zip(commands, verdicts, strict=True):
        if verdict is not Verdict.APPLIED:
            continue
        event = command.event
        if isinstance(event, Movement):
            found[command.location_id] = event.kind.value
        elif isinstance(event, Count):
            found[command.location_id] = "count"
        else:
            found[command.location_id] = "supplier feed"
    return found


class HoldShedder:
    def __init__(
        self, network: NetworkState, replies: PartitionBatches, holds: HoldKeeper, metrics: Metrics
    ) -> None:
        self.network, self.replies, self.holds, self.metrics = network, replies, holds, metrics

    def after_stock(
        self,
        sku: str,
        positions: Mapping[str, StockPosition],
        changed: Iterable[str],
        commands: Sequence[StockCommand],
        verdicts: Sequence[tuple[Verdict, str]],
        now_ms: int,
    ) -> dict[str, StockPosition]:
        """The positions that shed holds (the caller stores them); owners are told. ``changed``: the
        locations the batch's stock events changed (``positions`` holds their new state)."""
        for location_id in changed:  # the hot path: one comparison per changed position
            position = positions[location_id]
            if position.reserved > 0 and shortfall(position):
                break
        else:
            return {}
        changed_by = causes(commands, verdicts)
        shedding = shed_shortfalls(positions, changed_by)
        carts: dict[str, list[ShedHold]] = {}
        for hold in shedding.shed:
            if is_cart_hold(hold.reservation_id):
                carts.setdefault(hold.reservation_id, []).append(hold)
            else:
                self._tell_order(sku, hold, shedding.changed[hold.location_id], now_ms)
            self._count(hold)
        for hold_id, shed in carts.items():
            lines = [(h.location_id, h.units) for h in shed]
            self.holds.shed(sku, hold_id, lines, shed[0].reason, now_ms)
        return shedding.changed

    def _tell_order(self, sku: str, hold: ShedHold, after: StockPosition, now_ms: int) -> None:
        order_id = hold.reservation_id.rsplit("/", 1)[0]  # '<order id>/<attempt>'
        line = (hold.location_id, hold.units, available_to_promise(after))
        self.replies.add(order_id, shed_reply(order_id, sku, hold.reservation_id, line, hold.reason, now_ms))

    def _count(self, hold: ShedHold) -> None:
        location = self.network.locations.get(hold.location_id)
        kind = location.type.value if location is not None else "unknown"
        owner = "cart" if is_cart_hold(hold.reservation_id) else "order"
        self.metrics.holds_shed.labels(kind, owner).inc()
