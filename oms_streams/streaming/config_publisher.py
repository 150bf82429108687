"""Publish the network (locations, rules, carriers, routes, promise and return policies) from a YAML
or JSON file to the compacted config topics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from confluent_kafka import Producer

from oms_streams.config import Settings
from oms_streams.schemas.config import NetworkConfig
from oms_streams.streaming.topics import (
    CARRIER_SERVICES,
    LOCATIONS,
    PROMISE_POLICY,
    RETURN_POLICY,
    ROUTES,
    VISIBILITY_RULES,
)

RULES_KEY = b"default"


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted 17:00 as the sexagesimal integer 1020; clock times must stay text."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)


def load_network_config(path: Path) -> NetworkConfig:
    """Validates the whole file before anything is published: a typo never half-updates the network."""
    data = yaml.load(path.read_text(), Loader=_ConfigLoader)  # a SafeLoader: no arbitrary objects
    # Validated as the JSON the workers will read (YAML dates become ISO text, as on the topics).
    return NetworkConfig.model_validate_json(json.dumps(data, default=str))


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
    for service in config.carrier_services:
        producer.produce(
            settings.topic(CARRIER_SERVICES.name),
            key=service.service_id.encode(),
            value=service.model_dump_json().encode(),
        )
    for route in config.routes:
        producer.produce(
            settings.topic(ROUTES.name), key=route.route_id.encode(), value=route.model_dump_json().encode()
        )
    if config.promise_policy is not None:
        producer.produce(
            settings.topic(PROMISE_POLICY.name),
            key=RULES_KEY,
            value=config.promise_policy.model_dump_json().encode(),
        )
    if config.return_policy is not None:
        producer.produce(
            settings.topic(RETURN_POLICY.name),
            key=RULES_KEY,
            value=config.return_policy.model_dump_json().encode(),
        )
    remaining = producer.flush(30)
    if remaining:
        raise OSError(f"{remaining} config records were not acknowledged by Kafka within 30 s")
    return {
        "locations": len(config.locations),
        "rules": int(config.visibility_rules is not None),
        "carrier_services": len(config.carrier_services),
        "routes": len(config.routes),
        "promise_policy": int(config.promise_policy is not None),
        "return_policy": int(config.return_policy is not None),
    }
