"""The network's master data and visibility rules as this worker last read them from the config topics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from oms_streams.adapters.config import decode_location, decode_rules
from oms_streams.domain.visibility import DEFAULT_RULES, Location, VisibilityRules
from oms_streams.metrics import Metrics

log = logging.getLogger(__name__)

DeadLetterSink = Callable[[str, Any], None]
"""(reason, consumer record) -> None"""


class NetworkState:
    def __init__(
        self,
        locations_topic: str,
        rules_topic: str,
        metrics: Metrics,
        dead_letter: DeadLetterSink,
        on_change: Callable[[], None],
    ) -> None:
        self.locations: dict[str, Location] = {}
        self.rules: VisibilityRules = DEFAULT_RULES
        self.generation = 0
        """Bumped on every change, so what was derived from an older network can be recognised."""
        self._locations_topic = locations_topic
        self._rules_topic = rules_topic
        self._metrics = metrics
        self._dead_letter = dead_letter
        self._on_change = on_change

    def on_records(self, records: Sequence[Any]) -> None:
        """Follower callback: apply config records in order; a bad one is dead-lettered, the rest go on."""
        changed = False
        for record in records:
            if record.topic == self._locations_topic:
                changed |= self._apply_location(record)
            elif record.topic == self._rules_topic:
                changed |= self._apply_rules(record)
        if changed:
            self.generation += 1
            self._on_change()

    def _apply_location(self, record: Any) -> bool:
        if record.value is None:  # tombstone: the location leaves the network
            removed = self.locations.pop(record.key.decode(errors="replace") if record.key else "", None)
            self._metrics.config_updates.labels("location", "removed").inc()
            return removed is not None
        location = decode_location(record.value)
        if isinstance(location, str):
            self._reject("location", location, record)
            return False
        if record.key is not None and record.key != location.location_id.encode():
            self._reject(
                "location", f"key {record.key!r} is not the location id {location.location_id!r}", record
            )
            return False
        self._metrics.config_updates.labels("location", "applied").inc()
        changed = self.locations.get(location.location_id) != location
        self.locations[location.location_id] = location
        return changed

    def _apply_rules(self, record: Any) -> bool:
        if record.value is None:
            self.rules = DEFAULT_RULES
            self._metrics.config_updates.labels("rules", "removed").inc()
            return True
        rules = decode_rules(record.value)
        if isinstance(rules, str):
            self._reject("rules", rules, record)
            return False
        self._metrics.config_updates.labels("rules", "applied").inc()
        changed = rules != self.rules
        self.rules = rules
        return changed

    def _reject(self, kind: str, reason: str, record: Any) -> None:
        log.warning("config %s rejected: %s", kind, reason)
        self._metrics.config_updates.labels(kind, "dead_lettered").inc()
        self._dead_letter(reason, record)
