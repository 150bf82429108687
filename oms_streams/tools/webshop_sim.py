"""The demo's webshop and its customers, through the public HTTP API and topics only.

A cart over the network's SKUs asks ``POST /promise``; the customer picks one of the options offered
(home standard most, then click & collect, green, ship-from-store, courier), and the order is placed
on ``oms.orders.placed.v1`` with the option exactly as the promise returned it and its promise
token. Some customers cancel (``POST /orders/{id}/cancellations``) before their order ships; some
bring items back to a store (``oms.returns.received.v1``) or send them by parcel
(``oms.returns.requested.v1``, then received where ``oms.returns.routed.v1`` sent them).
"""

from __future__ import annotations

import json
import math
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oms_streams.clock import now as business_now
from oms_streams.domain.visibility import haversine_km
from oms_streams.schemas.config import NetworkConfig
from oms_streams.schemas.orders import OrderPlaced
from oms_streams.schemas.promise import CartLineModel, DeliveryOptionModel, DestinationModel
from oms_streams.schemas.returns import Origin, ReceivedItem, RequestedLine, ReturnReceived, ReturnRequested

METHOD_WEIGHTS: dict[str, int] = {
    "standard": 50,
    "click_and_collect": 20,
    "green": 12,
    "ship_from_store": 10,
    "courier": 8,
}
HOMES: tuple[tuple[str, float, float, str], ...] = (
    # (postal code, lat, lon, region): customers around the demo network's stores and DCs.
    ("3511 AB", 52.0894, 5.1100, "NL-UT"),
    ("3581 KA", 52.0860, 5.1380, "NL-UT"),
    ("3452 AA", 52.1030, 5.0370, "NL-UT"),
    ("1012 JS", 52.3730, 4.8930, "NL-NH"),
    ("1077 XX", 52.3400, 4.8720, "NL-NH"),
    ("3011 AD", 51.9220, 4.4810, "NL-ZH"),
    ("2511 CV", 52.0790, 4.3130, "NL-ZH"),
    ("8011 CW", 52.5120, 6.0930, "NL-OV"),
    ("5611 AZ", 51.4400, 5.4780, "NL-NB"),
)
GRADES = ("as_new", "resellable", "resellable", "damaged", "defective")
HOME_RADIUS_KM = 60.0
"""The curated homes serve a network when three of them live this close to one of its stores (the
NL demo network); another network (a US state) gets homes around its own stores."""
HOMES_PER_STORE = 3
FIRST_METHOD = "click_and_collect"
"""Until one order of this method is placed, a customer offered it takes it: such an order (picked
from the store's shelf) must start picking at once, so the demo's first late pick shows early."""

Home = tuple[str, float, float, str]


def homes_for(network: NetworkConfig, seed: int = 7) -> tuple[Home, ...]:
    """The curated homes, or for a network elsewhere homes 2-8 km around each of its stores."""
    stores = [loc for loc in network.locations if loc.type == "store" and loc.lat is not None]
    near = [
        home
        for home in HOMES
        if any(haversine_km(home[1], home[2], s.lat or 0, s.lon or 0) <= HOME_RADIUS_KM for s in stores)
    ]
    if len(near) >= 3 or not stores:
        return HOMES
    rng = random.Random(seed)
    homes: list[Home] = []
    for store in stores:
        for _ in range(HOMES_PER_STORE):
            km, bearing = rng.uniform(2, 8), rng.uniform(0, 2 * math.pi)
            lat = (store.lat or 0) + km * math.cos(bearing) / 111.0
            lon = (store.lon or 0) + km * math.sin(bearing) / (111.0 * math.cos(math.radians(lat)))
            homes.append(("", round(lat, 5), round(lon, 5), store.region))
    return tuple(homes)


class ApiError(OSError):
    """The worker answered with an error status, or not at all."""


def http_json(method: str, url: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise ApiError(f"{method} {url}: {error}") from error


@dataclass
class PlacedOrder:
    order_id: str
    method: str
    home: Origin
    placed_at: datetime
    cart: dict[str, int]


class Webshop:
    """Carts, choices and placements; ``rng`` makes a run repeatable up to the worker's answers."""

    def __init__(
        self,
        network: NetworkConfig,
        skus: tuple[tuple[str, int], ...],
        base_url: str,
        rng: random.Random,
        first_method: str | None = FIRST_METHOD,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.rng = rng
        self.skus = skus
        self.homes = homes_for(network)
        self.first_method = first_method
        self.return_stores = [
            loc for loc in network.locations if loc.type == "store" and "accepts_returns" in loc.capabilities
        ]

    def cart(self) -> list[dict[str, Any]]:
        lines = self.rng.choices((1, 2, 3), weights=(60, 30, 10))[0]
        names = [sku for sku, _ in self.skus]
        chosen: dict[str, int] = {}
        for sku in self.rng.choices(names, weights=[w for _, w in self.skus], k=lines):
            chosen[sku] = self.rng.choices((1, 2), weights=(85, 15))[0]
        return [{"sku": sku, "quantity": q} for sku, q in chosen.items()]

    def home(self) -> dict[str, Any]:
        postal, lat, lon, region = self.rng.choice(self.homes)
        jitter = self.rng.uniform(-0.01, 0.01)
        return {
            "postal_code": postal,
            "lat": round(lat + jitter, 5),
            "lon": round(lon - jitter, 5),
            "region": region,
        }

    def promise(self, cart: list[dict[str, Any]], home: dict[str, Any]) -> list[dict[str, Any]]:
        status, body = http_json("POST", f"{self.base_url}/promise", {"cart": cart, "destination": home})
        if status != 200:
            raise ApiError(f"POST /promise answered {status}: {body}")
        options: list[dict[str, Any]] = body.get("options", [])
        return options

    def choose(self, options: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The customer's pick: a method by its popularity among those offered, then (mostly) its
        first option (the nearest store for click & collect). The first customer offered
        ``first_method`` takes it, at the store where it is ready soonest."""
        methods = sorted({o["method"] for o in options if o["method"] in METHOD_WEIGHTS})
        if not methods:
            return None
        method = self.rng.choices(methods, weights=[METHOD_WEIGHTS[m] for m in methods])[0]
        if self.first_method in methods:  # the demo's first such customer wants it soonest
            method, self.first_method = self.first_method, None
            return min(
                (o for o in options if o["method"] == method),
                key=lambda o: datetime.fromisoformat(o["window_start"]),
            )
        of_method = [o for o in options if o["method"] == method]
        return of_method[0] if self.rng.random() < 0.7 else self.rng.choice(of_method)

    def placement(
        self, order_id: str, event_id: str, option: dict[str, Any], home: dict[str, Any]
    ) -> OrderPlaced:
        chosen = DeliveryOptionModel.model_validate_json(json.dumps(option))  # strict: dates as JSON
        cart: dict[str, int] = {}
        for shipment in chosen.shipments:
            for line in shipment.lines:
                cart[line.sku] = cart.get(line.sku, 0) + line.quantity
        pickup = chosen.pickup_store_id
        destination = (
            DestinationModel(pickup_store_id=pickup) if pickup else DestinationModel.model_validate(home)
        )
        return OrderPlaced(
            event_id=event_id,
            occurred_at=business_now(),
            source="webshop",
            order_id=order_id,
            cart=[CartLineModel(sku=sku, quantity=q) for sku, q in cart.items()],
            destination=destination,
            option=chosen,
            # Back to the OMS, which signed the option: without it a worker with a signing key refuses.
            promise_token=chosen.promise_token,
        )

    def cancel(self, order: PlacedOrder, request_id: str) -> tuple[int, Any]:
        """The whole order, or one of its lines."""
        body: dict[str, Any] = {"reason": "customer changed their mind", "request_id": request_id}
        if len(order.cart) > 1 and self.rng.random() < 0.5:
            body["lines"] = [{"sku": self.rng.choice(sorted(order.cart))}]
        return http_json("POST", f"{self.base_url}/orders/{order.order_id}/cancellations", body)

    def store_return(self, order: PlacedOrder, lines: dict[str, int], event_id: str) -> ReturnReceived:
        """Items brought back to the nearest store that takes returns, graded at the till."""
        store = min(
            self.return_stores,
            key=lambda s: ((s.lat or 0) - order.home.lat) ** 2 + ((s.lon or 0) - order.home.lon) ** 2,
        )
        return self._received(
            order, lines, store.location_id, f"RET-{order.order_id}-S", event_id, f"pos:{store.location_id}"
        )

    def parcel_return(self, order: PlacedOrder, lines: dict[str, int], event_id: str) -> ReturnRequested:
        return ReturnRequested(
            event_id=event_id,
            occurred_at=business_now(),
            source="webshop",
            return_id=f"RET-{order.order_id}-P",
            order_id=order.order_id,
            channel="webshop",
            origin=order.home,
            lines=[
                RequestedLine(line_id=sku, sku=sku, quantity=q, reason="does not fit")
                for sku, q in lines.items()
            ],
        )

    def parcel_received(
        self, order: PlacedOrder, return_id: str, location_id: str, lines: dict[str, int], event_id: str
    ) -> ReturnReceived:
        source = "erp" if location_id.startswith("DC-") else f"pos:{location_id}"
        return self._received(order, lines, location_id, return_id, event_id, source)

    def _received(
        self,
        order: PlacedOrder,
        lines: dict[str, int],
        location_id: str,
        return_id: str,
        event_id: str,
        source: str,
    ) -> ReturnReceived:
        items = [ReceivedItem(sku=sku, quantity=q, grade=self.rng.choice(GRADES)) for sku, q in lines.items()]  # type: ignore[arg-type]
        return ReturnReceived(
            event_id=event_id,
            occurred_at=business_now(),
            source=source,
            return_id=return_id,
            location_id=location_id,
            order_id=order.order_id,
            channel="webshop",
            sold_at=order.placed_at,
            items=items,
        )

    def returned_lines(self, shipped: list[CartLineModel]) -> dict[str, int]:
        """One line of what was delivered, one unit of it."""
        line = self.rng.choice(shipped)
        return {line.sku: 1}
