"""The facts an order's lifecycle is derived from, read off its tracking and its sourcing row."""

from __future__ import annotations

from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.domain.lifecycle import Lifecycle, LifecycleFacts, lifecycle
from oms_streams.domain.retention import Finished, SagaFacts, saga_finished
from oms_streams.domain.risk import FulfilmentEvent, FulfilmentKind, OrderTracking

LEFT = frozenset(
    {
        FulfilmentKind.HANDED_TO_CARRIER,
        FulfilmentKind.ROUTE_DEPARTED,
        FulfilmentKind.COLLECTED,
        FulfilmentKind.DELIVERED,
    }
)
"""The shipment's units left its location (as sourcing fulfils its holds)."""
ARRIVED = frozenset({FulfilmentKind.DELIVERED, FulfilmentKind.COLLECTED})


def order_lifecycle(
    tracking: OrderTracking | None, sourcing: SourcingRow | None, cancelled: bool
) -> Lifecycle | None:
    """None while no placement was accepted nor refused (only fulfilment events came)."""
    if sourcing is None and tracking is None:
        return None
    return lifecycle(lifecycle_facts(tracking, sourcing, cancelled))


def lifecycle_facts(
    tracking: OrderTracking | None, sourcing: SourcingRow | None, cancelled: bool
) -> LifecycleFacts:
    events = tracking.events if tracking is not None else ()
    if sourcing is None:
        # Sourcing has not seen the placement yet: the promised shipments stand in for allocations.
        if tracking is None:
            return LifecycleFacts(sourcing=None, cancelled=cancelled)
        places = [(i, s.location_id) for i, s in enumerate(tracking.record.option.shipments)]
        pickup = tracking.record.option.pickup_store_id
        left = [p for p in places if _seen(events, LEFT, p, pickup)]
        arrived = [p for p in left if _seen(events, ARRIVED, p, pickup)]
        return LifecycleFacts(sourcing=None, left=len(left), delivered=len(arrived), cancelled=cancelled)
    pickup = sourcing.destination.get("pickup_store_id")
    fulfilled = [(a.shipment, a.location_id) for a in sourcing.allocations if a.state == "fulfilled"]
    arrived = [p for p in fulfilled if _seen(events, ARRIVED, (None, p[1]), pickup)]
    return LifecycleFacts(
        sourcing=sourcing.status,
        round=sourcing.round,
        live=sum(a.state == "live" for a in sourcing.allocations),
        backordered=bool(sourcing.backorder),
        left=len(fulfilled),
        delivered=len(arrived),
        cancelled=cancelled,
        awaiting_stock=sourcing.awaiting_stock(),
        allocated_ever=bool(sourcing.allocations),
        preordered=sourcing.preordered(),
    )


def _seen(
    events: tuple[FulfilmentEvent, ...],
    kinds: frozenset[FulfilmentKind],
    place: tuple[int | None, str],
    pickup_store: str | None,
) -> bool:
    """An event of one of ``kinds`` for the shipment (index, location); an index of None matches
    by location only (a re-sourced allocation's index is not the promise's)."""
    index, location = place
    for event in events:
        if event.kind not in kinds:
            continue
        if event.shipment is not None and index is not None:
            if event.shipment == index:
                return True
            continue
        if event.location_id in (None, location, pickup_store):
            return True
    return False


def all_cancelled(ordered_skus: list[str], cancelled: list[str] | None) -> bool:
    """Every SKU of the order was cancelled (what had not shipped of it)."""
    return bool(ordered_skus) and all(sku in (cancelled or ()) for sku in ordered_skus)


def saga_facts(row: SourcingRow) -> SagaFacts:
    """What retention needs to know of a sourcing row (``domain.retention.saga_ending``)."""
    states = [a.state for a in row.allocations]
    return SagaFacts(
        busy=row.status == "reserving" or bool(row.outstanding or row.deferred or row.parked),
        live=states.count("live"),
        fulfilled=states.count("fulfilled"),
        backordered=bool(row.backorder),
        rejected=row.status == "rejected",
        all_cancelled=all_cancelled([sku for sku, _ in row.ordered or row.lines], row.cancelled),
        awaiting_stock=row.awaiting_stock(),
    )


def saga_retention(row: SourcingRow, now_ms: int) -> Finished | None:
    """The saga's end, None while it is open; the row keeps when it was first seen finished."""
    finished = saga_finished(saga_facts(row), row.finished_at_ms, now_ms)
    row.finished_at_ms = None if finished is None else finished.at_ms
    return finished
