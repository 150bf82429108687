"""Fixtures for the real-broker tiers: an isolated worker process and an event producer per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.worker_process import Events, WorkerProcess

NETWORK_YAML = Path(__file__).resolve().parent.parent / "fixtures" / "network.yaml"


@pytest.fixture
def events(kafka_bootstrap: str, topic_prefix: str) -> Events:
    return Events(kafka_bootstrap, topic_prefix)


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Extra environment of the ``worker`` fixture's process: a test module overrides it."""
    return {}


@pytest.fixture
def worker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events, worker_env: dict[str, str]
) -> Iterator[WorkerProcess]:
    """A started worker whose network is tests/fixtures/network.yaml (published before it starts)."""
    process = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "worker", worker_env)
    # The worker creates its topics on start; publish the network right after so it is there
    # before the first stock event (the worker also catches up on unknown locations by itself).
    process.start()
    events.config(NETWORK_YAML)
    try:
        yield process
    finally:
        process.stop()
