"""A worker killed and restarted on a wiped disk recovers its ledger from the changelog."""

from __future__ import annotations

import random
import shutil
import signal

from oms_streams.adapters.config import to_location, to_rules
from oms_streams.adapters.stock import DecodedStock, decode_count, decode_movement
from oms_streams.domain.inventory import StockPosition
from oms_streams.domain.ledger import apply_commands
from oms_streams.domain.visibility import sku_availability
from oms_streams.streaming.config_publisher import load_network_config
from tests.integration.conftest import NETWORK_YAML
from tests.worker_process import Events, WorkerProcess, latest_by_key, read_topic, wait_until

SKUS = [f"SKU-{i:03d}" for i in range(25)]
LOCATIONS = ["DC-NORTH", "DC-SOUTH", "STORE-UTRECHT-01", "STORE-AMSTERDAM-01", "STORE-ROTTERDAM-01"]


def produce_random_movements(events: Events, rng: random.Random, n: int) -> None:
    sent = []
    for _ in range(n):
        kind = rng.choice(["receipt", "receipt", "sale", "transfer_out", "unsellable_in", "adjustment"])
        quantity = rng.randint(1, 9) if kind != "adjustment" else rng.choice([-2, -1, 1, 3])
        sku = rng.choice(SKUS)
        sent.append(events.movement(sku, rng.choice(LOCATIONS), kind, quantity))
        if rng.random() < 0.05:  # a resend by the source system
            dup = rng.choice(sent)
            events.movement(
                dup["sku"], dup["location_id"], dup["kind"], dup["quantity"], event_id=dup["event_id"]
            )
    events.flush()


def recompute_from_log(bootstrap: str, prefix: str) -> dict[str, dict[str, dict[str, int]]]:
    """The availability a fresh ledger computes from the whole movement and count log."""
    network = load_network_config(NETWORK_YAML)
    locations = {loc.location_id: to_location(loc) for loc in network.locations}
    assert network.visibility_rules is not None
    rules = to_rules(network.visibility_rules)
    positions: dict[str, dict[str, StockPosition]] = {}
    applied: dict[str, set[tuple[str, str]]] = {}  # per SKU, as the ledger's id store
    for topic, decode in (
        ("oms.inventory.counts.v1", decode_count),
        ("oms.inventory.movements.v1", decode_movement),
    ):
        for key, value in read_topic(bootstrap, prefix + topic):
            decoded = decode(key, value)
            if not isinstance(decoded, DecodedStock):
                continue  # dead-lettered: it changes nothing
            ledger, ids = positions.setdefault(decoded.sku, {}), applied.setdefault(decoded.sku, set())
            result = apply_commands(ledger, decoded.commands, locations, ids)
            ledger.update(result.changed)
            ids.update((location, event_id) for location, event_id, _ in result.applied_ids)
    return {
        sku: {
            view.channel: dict(view.by_location)
            for view in sku_availability(sku, ps, locations, rules).channels
        }
        for sku, ps in positions.items()
    }


def published(bootstrap: str, prefix: str) -> dict[str, dict[str, dict[str, int]]]:
    return {
        key.decode(): {channel: view["locations"] for channel, view in record["channels"].items()}
        for key, record in latest_by_key(bootstrap, prefix + "oms.availability.v1").items()
    }


def test_killed_worker_recovers_from_changelog_and_matches_a_recomputation(
    worker: WorkerProcess, events: Events
) -> None:
    rng = random.Random(42)
    # Counts first (as of an hour ago), so the movements after them all apply on top.
    for sku in SKUS[:5]:
        events.count(sku, {"DC-NORTH": 50, "STORE-UTRECHT-01": 8}, at=None)
    events.flush()
    produce_random_movements(events, rng, 300)
    wait_until(
        lambda: (
            published(worker.bootstrap, worker.prefix) == recompute_from_log(worker.bootstrap, worker.prefix)
        ),
        45,
        "availability before the kill to match the log",
    )

    # Kill it only once its offsets are committed (changelogs are flushed before a commit), so
    # every pre-kill event is either in the changelog or will be re-read, never lost in between.
    for topic in ("oms.inventory.movements.v1", "oms.inventory.counts.v1"):
        wait_until(lambda t=topic: worker.has_committed_everything(t), 30, f"{topic} offsets committed")
    worker.stop(signal.SIGKILL)
    shutil.rmtree(worker.data_dir)  # a new machine: local RocksDB is gone, only the changelog remains
    produce_random_movements(events, rng, 200)
    worker.start()

    expected = recompute_from_log(worker.bootstrap, worker.prefix)
    wait_until(
        lambda: published(worker.bootstrap, worker.prefix) == expected,
        60,
        "availability after restart to match a recomputation from the movement log",
    )
    # Only the 200 new movements were applied: whatever older events the restarted worker re-read
    # (those after its last commit) were recognised as duplicates, which only the positions and
    # journals restored from the changelog can tell. Without them they would be applied twice.
    assert worker.metric("oms_stock_events_total", verdict="applied") == 200
