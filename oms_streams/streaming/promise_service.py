"""Promises on any worker: the availability view, the promise network, learned transit times and
courier bookings, all replicated to every worker, so ``POST /promise`` never leaves the process."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from oms_streams import clock
from oms_streams.adapters.promise import add_tokens, inbound_for, result_to_wire, stock_for
from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.promise import promise_options
from oms_streams.domain.promise_token import PromiseKeys
from oms_streams.domain.promise_types import CHANNEL_FOR_METHOD, PromiseRequest
from oms_streams.domain.transit import Lane, TransitModel
from oms_streams.metrics import Metrics
from oms_streams.schemas.orders import TransitObservation
from oms_streams.streaming.ledger_runtime import AvailabilityView
from oms_streams.streaming.network import NetworkState

log = logging.getLogger(__name__)

CHANNELS = tuple(sorted(set(CHANNEL_FOR_METHOD.values())))


class TransitLearner:
    """Follower callback over ``oms.promise.transit-observations.v1``: every carrier parcel handed
    over (in transit) and delivered teaches the model, exactly as ``oms promise backtest`` teaches
    it (``TransitModel.observe_in_transit`` / ``observe_delivery``). An observation without
    ``placed_at`` (an older producer) teaches the carrier leg only."""

    def __init__(self, model: TransitModel, metrics: Metrics) -> None:
        self.model = model
        self._metrics = metrics

    def on_records(self, records: Sequence[Any]) -> None:
        for record in records:
            try:
                seen = TransitObservation.model_validate_json(record.value or b"")
            except ValidationError:
                # Written by track_orders itself, so this is a bug or a foreign producer: count, go on.
                self._metrics.transit_observations.labels("invalid").inc()
                continue
            self._metrics.transit_observations.labels(self.learn(seen)).inc()

    def learn(self, seen: TransitObservation) -> str:
        """Teach one observation; 'learned', 'in_transit' or 'invalid'."""
        lane = Lane(seen.service_id, seen.origin_region, seen.dest_region, seen.distance_km)
        handed = epoch_ms(seen.handed_to_carrier_at)
        placed = None if seen.placed_at is None else epoch_ms(seen.placed_at)
        timezone = seen.origin_timezone or "UTC"
        if placed is not None and placed > handed:
            return "invalid"
        try:
            if seen.delivered_at is None:
                if placed is None:
                    return "invalid"
                self.model.observe_in_transit(lane, placed, timezone)
                return "in_transit"
            delivered = epoch_ms(seen.delivered_at)
            if delivered < handed:
                return "invalid"
            if placed is None:
                self.model.observe(lane, (delivered - handed) / 3_600_000, delivered)  # carrier leg only
            else:
                self.model.observe_delivery(
                    lane, placed, handed, delivered, timezone, in_transit=seen.in_transit_reported
                )
        except (ValueError, KeyError):  # an unknown time zone
            return "invalid"
        return "learned"


class CourierBookings:
    """Follower callback over the compacted bookings topic: (store, slot start ms) -> orders booked."""

    def __init__(self) -> None:
        self._orders: dict[tuple[str, int], set[str]] = {}
        self.counts: dict[tuple[str, int], int] = {}

    def on_records(self, records: Sequence[Any]) -> None:
        for record in records:
            try:
                store, slot, order = (record.key or b"").decode().split("|")
                key = (store, int(slot))
            except ValueError:
                continue
            orders = self._orders.setdefault(key, set())
            if record.value is None:
                orders.discard(order)
            else:
                orders.add(order)
            self.counts[key] = len(orders)


class PromiseService:
    def __init__(
        self,
        network: NetworkState,
        view: AvailabilityView,
        transit: TransitModel,
        bookings: CourierBookings,
        metrics: Metrics,
        keys: PromiseKeys | None = None,
    ) -> None:
        self.network = network
        self.view = view
        self.transit = transit
        self.bookings = bookings
        self.metrics = metrics
        self.keys = keys
        """Signs each option's promise token; None: options go out without one."""

    def answer(self, request: PromiseRequest, path: str) -> bytes:
        """The response body (``schemas.promise.PromiseResponse`` as JSON), measured."""
        started = time.perf_counter()
        stock = stock_for((line.sku for line in request.cart), self.view.get, CHANNELS)
        inbound = inbound_for((line.sku for line in request.cart), self.view.get)
        result = promise_options(
            request, stock, self.network.promise_network, self.transit, self.bookings.counts, inbound
        )
        answer = result_to_wire(result, self.network.generation)
        if self.keys is not None:
            signed_at = clock.now_ms()  # not asked_at (the client's): the TTL runs from now
            add_tokens(answer["options"], result.options, request.destination, self.keys, signed_at)
        wire = orjson.dumps(answer)
        self.metrics.promise_seconds.observe(time.perf_counter() - started)
        self.metrics.promise_requests.labels(path, "answered").inc()
        for option in result.options:
            self.metrics.promise_options.labels(option.method.value).inc()
        return wire
