"""The network as this worker last read it from the config topics: master data and visibility rules
for the ledger, plus the promise network (calendars, carriers, routes, policy) for promises."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from oms_streams import clock
from oms_streams.adapters.config import decode_rules, to_location
from oms_streams.adapters.network import (
    NetworkConfigError,
    promise_network,
    to_route,
    to_service,
    to_site,
)
from oms_streams.domain.network import PromiseNetwork
from oms_streams.domain.visibility import DEFAULT_RULES, Location, VisibilityRules
from oms_streams.metrics import Metrics
from oms_streams.schemas.config import (
    CarrierServiceRecord,
    LocationRecord,
    PromisePolicyRecord,
    ReturnPolicyRecord,
    RouteRecord,
)

log = logging.getLogger(__name__)

DeadLetterSink = Callable[[str, Any], None]
"""(reason, consumer record) -> None"""


def _holiday_years() -> tuple[int, ...]:
    # Public holidays are resolved for last year to three years ahead: enough for any promise
    # horizon over years of uptime (the set is rebuilt on every config change anyway).
    year = clock.now().year
    return tuple(range(year - 1, year + 4))


class NetworkState:
    def __init__(
        self,
        topics: dict[str, str],
        metrics: Metrics,
        dead_letter: DeadLetterSink,
        on_change: Callable[[], None],
    ) -> None:
        """``topics`` maps each kind ('location', 'rules', 'carrier_service', 'route', 'promise_policy',
        'return_policy') to its (prefixed) topic name."""
        self.locations: dict[str, Location] = {}
        self.rules: VisibilityRules = DEFAULT_RULES
        self.generation = 0
        """Bumped on every change, so what was derived from an older network can be recognised."""
        self._location_records: dict[str, LocationRecord] = {}
        self._services: dict[str, CarrierServiceRecord] = {}
        self._routes: dict[str, RouteRecord] = {}
        self._policy: PromisePolicyRecord | None = None
        self.return_policy = ReturnPolicyRecord()
        self._promise_network: tuple[int, PromiseNetwork] | None = None
        self._kind_of_topic = {topic: kind for kind, topic in topics.items()}
        self._years = _holiday_years()
        self._metrics = metrics
        self._dead_letter = dead_letter
        self._on_change = on_change

    @property
    def promise_network(self) -> PromiseNetwork:
        """Built once per generation: every promise between two config changes shares it."""
        if self._promise_network is None or self._promise_network[0] != self.generation:
            network = promise_network(
                self._location_records.values(),
                self._services.values(),
                self._routes.values(),
                self._policy,
                self._years,
            )
            self._promise_network = (self.generation, network)
        return self._promise_network[1]

    def on_records(self, records: Sequence[Any]) -> None:
        """Follower callback: apply config records in order; a bad one is dead-lettered, the rest go on."""
        changed: set[str] = set()
        for record in records:
            kind = self._kind_of_topic.get(record.topic)
            if kind is not None and self._apply(kind, record):
                changed.add(kind)
        if changed:
            self.generation += 1
        if changed & {"location", "rules"}:  # what availability depends on: the ledger resyncs
            self._on_change()

    def _apply(self, kind: str, record: Any) -> bool:
        key = record.key.decode(errors="replace") if record.key else ""
        if record.value is None:  # tombstone: the entry leaves the network
            self._metrics.config_updates.labels(kind, "removed").inc()
            return self._remove(kind, key)
        if kind == "rules":
            rules = decode_rules(record.value)
            if isinstance(rules, str):
                return self._reject(kind, rules, record)
            self._metrics.config_updates.labels(kind, "applied").inc()
            changed = rules != self.rules
            self.rules = rules
            return changed
        models: dict[str, type[BaseModel]] = {
            "location": LocationRecord,
            "carrier_service": CarrierServiceRecord,
            "route": RouteRecord,
            "promise_policy": PromisePolicyRecord,
            "return_policy": ReturnPolicyRecord,
        }
        model = models[kind]
        try:
            parsed: Any = model.model_validate_json(record.value)
            identity = self._check(kind, parsed)
        except ValidationError as error:
            first = error.errors()[0]
            return self._reject(kind, f"invalid {kind} record: {first['msg']} at {first['loc']}", record)
        except NetworkConfigError as error:
            return self._reject(kind, f"invalid {kind} record: {error}", record)
        if record.key is not None and identity is not None and key != identity:
            return self._reject(kind, f"key {record.key!r} is not the {kind} id {identity!r}", record)
        self._metrics.config_updates.labels(kind, "applied").inc()
        return self._store(kind, parsed)

    def _check(self, kind: str, parsed: Any) -> str | None:
        """The record's id; raises NetworkConfigError when it cannot be turned into the network."""
        if kind == "location":
            to_site(parsed, self._years)
            return str(parsed.location_id)
        if kind == "carrier_service":
            to_service(parsed, self._years)
            return str(parsed.service_id)
        if kind == "route":
            to_route(parsed)
            return str(parsed.route_id)
        return None

    def _store(self, kind: str, parsed: Any) -> bool:
        changed: bool
        if kind == "location":
            changed = self._location_records.get(parsed.location_id) != parsed
            self._location_records[parsed.location_id] = parsed
            self.locations[parsed.location_id] = to_location(parsed)
            return changed
        if kind == "carrier_service":
            changed = self._services.get(parsed.service_id) != parsed
            self._services[parsed.service_id] = parsed
            return changed
        if kind == "route":
            changed = self._routes.get(parsed.route_id) != parsed
            self._routes[parsed.route_id] = parsed
            return changed
        if kind == "return_policy":
            changed = self.return_policy != parsed
            self.return_policy = parsed
            return changed
        changed = self._policy != parsed
        self._policy = parsed
        return changed

    def _remove(self, kind: str, key: str) -> bool:
        if kind == "location":
            self._location_records.pop(key, None)
            return self.locations.pop(key, None) is not None
        if kind == "rules":
            self.rules = DEFAULT_RULES
            return True
        if kind == "carrier_service":
            return self._services.pop(key, None) is not None
        if kind == "route":
            return self._routes.pop(key, None) is not None
        if kind == "return_policy":
            self.return_policy = ReturnPolicyRecord()
            return True
        self._policy = None
        return True

    def _reject(self, kind: str, reason: str, record: Any) -> bool:
        log.warning("config %s rejected: %s", kind, reason)
        self._metrics.config_updates.labels(kind, "dead_lettered").inc()
        self._dead_letter(reason, record)
        return False
