"""Publish locations and visibility rules from a YAML (or JSON) file to the compacted config topics."""

from __future__ import annotations

from pathlib import Path

import yaml
from confluent_kafka import Producer

from oms_streams.config import Settings
from oms_streams.schemas.config import NetworkConfig
from oms_streams.streaming.topics import LOCATIONS, VISIBILITY_RULES

RULES_KEY = b"default"


def load_network_config(path: Path) -> NetworkConfig:
    """Validates the whole file before anything is published: a typo never half-updates the network."""
    return NetworkConfig.model_validate(yaml.safe_load(path.read_text()))


def publish_network_config(settings: Settings, path: Path) -> dict[str, int]:
    config = load_network_config(path)
    producer = Producer({**settings.confluent_config(), "enable.idempotence": True, "linger.ms": 5})
    for location in config.locations:
        producer.produce(
            settings.topic(LOCATIONS.name),
            key=location.location_id.encode(),
            value=location.model_dump_json().encode(),
        )
    if config.visibility_rules is not None:
        producer.produce(
            settings.topic(VISIBILITY_RULES.name),
            key=RULES_KEY,
            value=config.visibility_rules.model_dump_json().encode(),
        )
    remaining = producer.flush(30)
    if remaining:
        raise OSError(f"{remaining} config records were not acknowledged by Kafka within 30 s")
    return {"locations": len(config.locations), "rules": int(config.visibility_rules is not None)}
