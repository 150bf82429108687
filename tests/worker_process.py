"""Run a real ``oms worker`` process against the test broker, and talk to it like a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

REPO_ROOT = Path(__file__).resolve().parent.parent
FAULTS = os.pathsep.join((str(REPO_ROOT / "tests" / "faults"), str(REPO_ROOT)))
"""PYTHONPATH of a worker under fault injection: its ``sitecustomize`` (tests/faults), which imports
oms_streams before ``-m`` puts the working directory on the path, so the repository's own code too
(not the tree an editable install of a shared virtual environment points at, e.g. from a worktree)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """One ``oms worker`` with its own topics (prefix), consumer group, data dir and HTTP port."""

    def __init__(
        self, bootstrap: str, prefix: str, data_dir: Path, extra_env: Mapping[str, str] | None = None
    ):
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "OMS_KAFKA_BOOTSTRAP": bootstrap,
            "OMS_TOPIC_PREFIX": prefix,
            "OMS_APP_ID": f"{prefix}oms",
            "OMS_INSTANCE_ID": f"{prefix}{data_dir.name}",
            "OMS_DATA_DIR": str(data_dir),
            "OMS_WEB_PORT": str(self.port),
            "OMS_PARTITIONS": "3",
            "OMS_LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    def start(self, timeout_s: float = 60) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "oms_streams.cli", "worker"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: (self.health() or {}).get("ready") is True,
            timeout_s,
            f"worker ready (log: {self.log_path})",
            self._assert_alive,
        )
        return self

    def _assert_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def wait_exit(self, timeout_s: float) -> int:
        """The exit status of a worker expected to stop by itself."""
        assert self.process is not None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout_s}s:\n{self.log_tail()}") from None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as response:
                body = response.read()
                ctype = response.headers.get("Content-Type", "")
                return response.status, json.loads(body) if "json" in ctype else body.decode()
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url(path), data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def health(self) -> dict[str, Any] | None:
        try:
            status, body = self.get("/health")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return body if status == 200 else None

    def has_committed_everything(self, topic: str) -> bool:
        """Whether the worker's consumer group has committed every offset of a topic (the ledger's
        group for the stock topics, faust's for the others)."""
        name = self.prefix + topic
        group = self.env["OMS_APP_ID"] + ("-ledger" if topic.startswith("oms.inventory.") else "")
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            committed = consumer.committed([TopicPartition(name, p) for p in partitions], timeout=10)
            ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in committed]
            return all(end == 0 or tp.offset >= end for tp, end in zip(committed, ends, strict=True))
        finally:
            consumer.close()

    def metric(self, name: str, **labels: str) -> float:
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


def restart_if_stalled(worker: WorkerProcess) -> None:
    """What a liveness probe on ``/health`` does (README, "A worker stalls")."""
    health = worker.health() or {}
    if health.get("status") == "stalled":
        print(f"worker stalled on {health['stalled_partitions']}: restarting it, as a liveness probe would")
        worker.stop()
        worker.start()


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, check: Callable[[], None] | None = None
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check is not None:
            check()
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


# --- producing and reading events -------------------------------------------------------------


class Events:
    """Builds and produces wire events the way ERP, POS and suppliers do (confluent-kafka)."""

    def __init__(self, bootstrap: str, prefix: str, client_config: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix
        self.bootstrap = bootstrap
        # murmur2 like the Java clients (and faust): GET /orders/{id} routes to the owner by that hash.
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 2,
                "partitioner": "murmur2_random",
                **(client_config or {}),
            }
        )
        self._seq = 0

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self.prefix}ev-{self._seq}"

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.produce(self.prefix + topic, key=key, value=value)

    def flush(self) -> None:
        assert self.producer.flush(15) == 0

    def movement(
        self,
        sku: str,
        location: str,
        kind: str,
        quantity: int,
        *,
        at: datetime | None = None,
        event_id: str | None = None,
        source: str = "erp",
    ) -> dict[str, Any]:
        event = {
            "event_id": event_id or self._next_id(),
            "occurred_at": (at or datetime.now(UTC)).isoformat(),
            "source": source,
            "sku": sku,
            "location_id": location,
            "kind": kind,
            "quantity": quantity,
        }
        self.send("oms.inventory.movements.v1", sku.encode(), json.dumps(event).encode())
        return event

    def count(self, sku: str, positions: dict[str, int], *, at: datetime | None = None) -> dict[str, Any]:
        event = {
            "event_id": self._next_id(),
            "occurred_at": (at or datetime.now(UTC)).isoformat(),
            "source": "erp",
            "sku": sku,
            "positions": [{"location_id": loc, "on_hand": q} for loc, q in positions.items()],
        }
        self.send("oms.inventory.counts.v1", sku.encode(), json.dumps(event).encode())
        return event

    def supplier_stock(self, sku: str, location: str, quantity: int, lead_time_hours: int) -> dict[str, Any]:
        event = {
            "event_id": self._next_id(),
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "supplier",
            "sku": sku,
            "location_id": location,
            "quantity": quantity,
            "lead_time_hours": lead_time_hours,
        }
        self.send("oms.inventory.supplier-stock.v1", sku.encode(), json.dumps(event).encode())
        return event

    def promise_request(self, request_id: str, cart: dict[str, int], destination: dict[str, Any]) -> None:
        event = {
            "event_id": self._next_id(),
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "webshop",
            "request_id": request_id,
            "cart": [{"sku": sku, "quantity": q} for sku, q in cart.items()],
            "destination": destination,
        }
        self.send("oms.promise.requests.v1", request_id.encode(), json.dumps(event).encode())

    def order_placed(
        self,
        order_id: str,
        option: dict[str, Any],
        destination: dict[str, Any],
        event_id: str | None = None,
        hold_id: str | None = None,
        promise_token: str | None = None,
    ) -> dict[str, Any]:
        cart: dict[str, int] = {}
        for shipment in option["shipments"]:
            for line in shipment["lines"]:
                cart[line["sku"]] = cart.get(line["sku"], 0) + line["quantity"]
        event = {
            "event_id": event_id or self._next_id(),
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "webshop",
            "order_id": order_id,
            "cart": [{"sku": sku, "quantity": q} for sku, q in cart.items()],
            "destination": destination,
            "option": option,
            **({"hold_id": hold_id} if hold_id else {}),
            **({"promise_token": promise_token} if promise_token else {}),
        }
        self.send("oms.orders.placed.v1", order_id.encode(), json.dumps(event).encode())
        return event

    def fulfilment(self, order_id: str, kind: str, **fields: Any) -> dict[str, Any]:
        event = {
            "event_id": self._next_id(),
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "store-app",
            "order_id": order_id,
            "kind": kind,
            **fields,
        }
        self.send("oms.fulfilment.events.v1", order_id.encode(), json.dumps(event).encode())
        return event

    def return_requested(
        self, return_id: str, lines: dict[str, int], origin: dict[str, float], **fields: Any
    ) -> dict[str, Any]:
        """A customer announces a shipped return of ``lines`` (SKU -> units; line ids are the SKUs)."""
        event = {
            "event_id": self._next_id(),
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "webshop",
            "return_id": return_id,
            "origin": origin,
            "lines": [{"line_id": sku, "sku": sku, "quantity": q} for sku, q in lines.items()],
            **fields,
        }
        self.send("oms.returns.requested.v1", return_id.encode(), json.dumps(event).encode())
        return event

    def return_received(
        self,
        return_id: str,
        location: str,
        items: list[tuple[str, int, str]],
        *,
        event_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A till or returns desk registers items as (SKU, units, grade)."""
        event = {
            "event_id": event_id or self._next_id(),
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": f"pos:{location}",
            "return_id": return_id,
            "location_id": location,
            "items": [{"sku": sku, "quantity": q, "grade": grade} for sku, q, grade in items],
            **fields,
        }
        self.send("oms.returns.received.v1", return_id.encode(), json.dumps(event).encode())
        return event

    def config(self, network_yaml: Path, extra_env: Mapping[str, str] | None = None) -> None:
        env = {
            **os.environ,
            "OMS_KAFKA_BOOTSTRAP": self.bootstrap,
            "OMS_TOPIC_PREFIX": self.prefix,
            **(extra_env or {}),
        }
        subprocess.run(
            [sys.executable, "-m", "oms_streams.cli", "config", "publish", str(network_yaml)],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
        )


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 15.0
) -> list[tuple[bytes | None, bytes | None]]:
    """Every record on a topic from the beginning up to its current end (no consumer group)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = {p for p, end in ends.items() if end > 0}
        records: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            records.append((message.key(), message.value()))
            if message.offset() + 1 >= ends[message.partition()]:
                pending.discard(message.partition())
        assert not pending, f"could not read {topic} to its end within {timeout_s}s"
        return records
    finally:
        consumer.close()


def latest_by_key(bootstrap: str, topic: str) -> dict[bytes, Any]:
    latest: dict[bytes, Any] = {}
    for key, value in read_topic(bootstrap, topic):
        if key is not None and value is not None:
            latest[key] = json.loads(value)
    return latest
