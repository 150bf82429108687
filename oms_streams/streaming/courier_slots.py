"""Courier capacity at placement: a placed courier order books its slot with the slot's one owner.

A promise reads the bookings every worker follows, so two checkouts can both see a slot's last
place free. At placement the order's owner (``source_orders``) asks the owner of the store's slots
(the worker owning the store id's partition of ``oms.orders.courier-slots.v1``, which reads it in
order) to ``book`` the chosen slot: that owner checks the capacity and books in the same step
(``domain.promise_courier.book_slot``), or books the next free slot of that day, or refuses with
the reason, and answers the order's owner. Only then is the order's stock sourced (a refused slot
rejects the order: nothing was reserved). The owner publishes every booking on the bookings topic
(and a tombstone when it is given back), which promises read.

A request carries a deterministic id and a repeat is answered as the first time (an order that
holds a slot keeps it); the order's owner asks again while its row says ``asking``: after a
rebalance, and when no answer came within the reply timeout (a lost request or answer). A cancelled
or rejected order gives its slot back (``release``).
"""

from __future__ import annotations

from typing import Any

from oms_streams.adapters.courier_slots import (
    SlotMessage,
    booking_key,
    booking_record,
    decode_store_slots,
    encode_store_slots,
    slot_record,
)
from oms_streams.adapters.lifecycle import all_cancelled
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.domain.calendar import MS_PER_MINUTE
from oms_streams.domain.promise_courier import book_slot, day_slots
from oms_streams.metrics import Metrics
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.outbox import Outbox
from oms_streams.streaming.table_context import in_partition_of


class CourierSlots:
    def __init__(
        self,
        table: Any,
        network: NetworkState,
        outbox: Outbox,
        topic: str,
        bookings_topic: str,
        metrics: Metrics,
        ask_again_ms: int = 30_000,
    ) -> None:
        self.table = table
        """Store id -> its booked slots (``adapters.courier_slots``), in the store id's partition."""
        self.network = network
        self.outbox = outbox
        self.topic = topic
        self.bookings_topic = bookings_topic
        self.metrics = metrics
        self.ask_again_ms = ask_again_ms
        self._asking: dict[str, int] = {}
        """Order id -> when to ask again if no answer came (this worker's orders only, in memory:
        a reload asks for every row that says ``asking``)."""

    # --- the order's owner ------------------------------------------------------------------------

    def ask(self, row: SourcingRow, now: int) -> None:
        """Ask the slots' owner for the slot the placement chose; the row waits for the answer."""
        if row.courier is None:
            store = row.courier_store_id or ""
            row.courier = {"store": store, "requested_ms": row.window_start_ms, "status": "asking"}
        courier = row.courier
        record = slot_record("book", row.order_id, courier["store"], courier["requested_ms"], now)
        self.outbox.add(self.topic, courier["store"].encode(), record)
        self._asking[row.order_id] = now + self.ask_again_ms

    def overdue(self, now: int) -> list[str]:
        """The orders whose slot answer is overdue (each is asked again by the reply timer)."""
        return [order_id for order_id, due in self._asking.items() if due <= now]

    def stop_asking(self, order_id: str) -> None:
        self._asking.pop(order_id, None)

    def forget(self) -> None:
        self._asking.clear()

    def settle(self, row: SourcingRow, answer: SlotMessage) -> bool:
        """The owner's answer, into the row (the order's window follows a moved slot); False when
        the row awaits no answer (a repeat)."""
        courier = row.courier
        if courier is None or courier["status"] != "asking" or answer.requested_ms != courier["requested_ms"]:
            return False
        self.stop_asking(row.order_id)
        self.metrics.courier_slots.labels(answer.kind).inc()
        if answer.kind == "refused" or answer.slot_ms is None:
            courier["status"] = "refused"
            courier["reason"] = answer.reason
            return True
        length = row.promised_by_ms - row.window_start_ms
        courier.update(status="booked", slot_ms=answer.slot_ms, slot_end_ms=answer.slot_ms + length)
        row.window_start_ms, row.promised_by_ms = answer.slot_ms, answer.slot_ms + length
        return True

    def give_back(self, row: SourcingRow, now: int) -> None:
        """A booked slot of an order that will not be delivered (every line cancelled, or rejected
        with nothing allocated) goes back to the slots' owner."""
        courier = row.courier
        if courier is None or courier["status"] != "booked":
            return
        cancelled = all_cancelled([sku for sku, _ in row.ordered or row.lines], row.cancelled)
        live = any(a.state in ("live", "fulfilled") for a in row.allocations)
        if not cancelled and (row.status != "rejected" or live):
            return
        courier["status"] = "released"
        record = slot_record("release", row.order_id, courier["store"], courier["requested_ms"], now)
        self.outbox.add(self.topic, courier["store"].encode(), record)

    # --- the slots' owner -------------------------------------------------------------------------

    def decide(self, request: SlotMessage, event: Any, now: int) -> str:
        """Book (or give back) a slot of a store this worker owns; answer a booking."""
        store = request.store_id
        slots = decode_store_slots(self.table.get(store))
        if request.kind == "release":
            freed = [slot for slot, orders in slots.items() if request.order_id in orders]
            for slot in freed:
                slots[slot].remove(request.order_id)
                self.outbox.add(self.bookings_topic, booking_key(store, slot, request.order_id), None)
            self._store(store, slots, event, now)
            return "applied" if freed else "duplicate"
        site = self.network.promise_network.sites.get(store)
        profile = site.courier if site is not None else None
        if site is None or profile is None:
            self._answer(request, "refused", None, f"{store} makes no courier deliveries", now)
            return "applied"
        day = day_slots(site.calendar, profile.slot_minutes, request.requested_ms)
        booking = book_slot(slots, request.order_id, request.requested_ms, day, profile.slot_capacity)
        length = profile.slot_minutes * MS_PER_MINUTE
        window = None if booking.slot_ms is None else (booking.slot_ms, booking.slot_ms + length)
        if booking.slot_ms is not None and request.order_id not in slots.get(booking.slot_ms, []):
            slots.setdefault(booking.slot_ms, []).append(request.order_id)
            self._store(store, slots, event, now)
        if booking.slot_ms is not None:  # again on a repeat: the booking may not have left before
            order, at = request.order_id, booking.slot_ms
            self.outbox.add(
                self.bookings_topic, booking_key(store, at, order), booking_record(store, at, order)
            )
        self._answer(request, booking.status, window, booking.reason, now)
        return "applied"

    def _answer(
        self, request: SlotMessage, kind: str, slot: tuple[int, int] | None, reason: str, now: int
    ) -> None:
        record = slot_record(
            kind, request.order_id, request.store_id, request.requested_ms, now, slot=slot, reason=reason
        )
        self.outbox.add(self.topic, request.order_id.encode(), record)

    def _store(self, store: str, slots: dict[int, list[str]], event: Any, now: int) -> None:
        with in_partition_of(event):
            self.table[store] = encode_store_slots(slots, now)
