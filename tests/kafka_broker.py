"""Pytest plugin: a real Kafka broker for tests marked ``@pytest.mark.kafka``.

Register from ``tests/conftest.py`` with ``pytest_plugins = ["tests.kafka_broker"]``.

Fixtures
    kafka_bootstrap (session) -> "host:port"
        ``$OMS_KAFKA_BOOTSTRAP`` if set (external broker: CI-started, testcontainers, ...).
        Otherwise, lazily on first use, resolves the Kafka jars (deploy/kafka/fetch.sh) and starts a
        private single-node KRaft broker on a free loopback port with its own temp data dir
        (deploy/kafka/start.sh); it is stopped and its data dir deleted at session end
        (deploy/kafka/stop.sh --clean). Pure unit-test runs never touch Java.
    topic_prefix (function) -> "t<8 hex>."
        Unique per test; prefix topic names and group ids with it so tests never share data.

Helpers
    private_broker() -> context manager of a PrivateBroker (bootstrap, data_dir, pid)
        A broker of the test's own, for tests that freeze or stop it.
    make_topics(bootstrap, names, partitions=1, config=None) -> list[str]
        Creates topics with confluent_kafka's AdminClient and waits until every partition has a
        leader. Topics that already exist are accepted.

Any test that uses ``kafka_bootstrap`` is marked ``kafka`` automatically, so ``-m "not kafka"``
deselects it. A ``kafka`` test FAILS (never skips) when no broker can be had: no
``OMS_KAFKA_BOOTSTRAP`` and no Java -- CI must not go green by silently skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_DEPLOY = REPO_ROOT / "deploy" / "kafka"
BOOTSTRAP_ENV = "OMS_KAFKA_BOOTSTRAP"
KAFKA_MARKER = "kafka"


# ----------------------------------------------------------------------------------------- hooks
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{KAFKA_MARKER}: needs a real Kafka broker (started by the session fixture or {BOOTSTRAP_ENV})",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            KAFKA_MARKER
        ):
            item.add_marker(KAFKA_MARKER)


def _find_java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK):
        return os.path.join(java_home, "bin", "java")
    return shutil.which("java")


def _no_broker_reason() -> str | None:
    """Why no broker can be provided, or None if one can (external, or Java to start our own)."""
    if os.environ.get(BOOTSTRAP_ENV):
        return None
    if _find_java() is None:
        return (
            f"this test needs a Kafka broker, but {BOOTSTRAP_ENV} is not set and no Java runtime "
            "(17+) was found on PATH/JAVA_HOME to start one. Install a JDK (and Maven, to fetch the "
            f"broker jars), or point {BOOTSTRAP_ENV}=host:port at a running broker. "
            'Deselect with -m "not kafka" to run without a broker.'
        )
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(KAFKA_MARKER) is not None:
        reason = _no_broker_reason()
        if reason is not None:
            pytest.fail(reason, pytrace=False)


# ------------------------------------------------------------------------------------- the broker
def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port_pair() -> int:
    """A loopback port p with p+1 also free (client + controller listener)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65535 and _port_free(port) and _port_free(port + 1):
            return port
    raise RuntimeError("could not find two adjacent free loopback ports")


def _run_script(script: str, args: list[str], env: Mapping[str, str], timeout: float) -> str:
    proc = subprocess.run(
        [str(KAFKA_DEPLOY / script), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"deploy/kafka/{script} failed (exit {proc.returncode}):\n{proc.stdout}")
    return proc.stdout


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    if os.environ.get("OMS_KAFKA_TESTCONTAINERS") == "1":
        yield from _testcontainers_broker()
        return

    reason = _no_broker_reason()
    if reason is not None:
        pytest.fail(reason, pytrace=False)
    with private_broker() as broker:
        yield broker.bootstrap


class PrivateBroker:
    """A broker process of one's own (its data dir holds ``broker.pid``): tests that freeze or stop
    a broker use one so no other test sees it."""

    def __init__(self, bootstrap: str, data_dir: str) -> None:
        self.bootstrap = bootstrap
        self.data_dir = data_dir

    @property
    def pid(self) -> int:
        return int(Path(self.data_dir, "broker.pid").read_text().strip())


@contextmanager
def private_broker() -> Iterator[PrivateBroker]:
    """Resolve the Kafka jars, start a single-node KRaft broker on free loopback ports with its own
    temp data dir, and stop it and delete its data dir on exit."""
    port = _free_port_pair()
    data_dir = tempfile.mkdtemp(prefix=f"oms-kafka-{port}-")
    env = {"OMS_KAFKA_PORT": str(port), "OMS_KAFKA_DATA_DIR": data_dir}
    try:
        # First use on a fresh machine resolves ~45 jars with Maven: allow for it.
        _run_script("fetch.sh", [], env, timeout=900)
        out = _run_script("start.sh", [], env, timeout=300)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        try:
            _run_script("stop.sh", ["--clean"], env, timeout=60)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        pytest.fail(f"could not start a private Kafka broker: {exc}", pytrace=False)

    bootstrap = f"127.0.0.1:{port}"
    for line in out.splitlines():
        if line.startswith("bootstrap="):
            bootstrap = line.split("=", 1)[1].strip()
    try:
        yield PrivateBroker(bootstrap, data_dir)
    finally:
        try:
            _run_script("stop.sh", ["--clean"], env, timeout=90)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def _testcontainers_broker() -> Iterator[str]:
    """Where Docker runs (laptops): the apache/kafka image in KRaft mode via testcontainers.

    Opt-in with OMS_KAFKA_TESTCONTAINERS=1 and ``pip install -e '.[docker]'``; CI never uses it.
    """
    from testcontainers.kafka import KafkaContainer

    image = os.environ.get("OMS_KAFKA_IMAGE", "apache/kafka:4.1.1")
    with KafkaContainer(image).with_kraft() as container:
        yield container.get_bootstrap_server()


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    yield prefix
    # After the test's workers have stopped (they were set up after this fixture): its topics go. A
    # broker keeps a file open per partition, and a whole run creates thousands of partitions; the
    # CI machine allows 20,000 open files, and a local broker reused across runs reached that.
    if "kafka_bootstrap" in request.fixturenames:
        delete_topics_with_prefix(request.getfixturevalue("kafka_bootstrap"), prefix)


def delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        for future in admin.delete_topics(names, operation_timeout=10).values() if names else ():
            future.result(30)
    except Exception as error:  # a test that deleted its own topics, a broker gone: nothing to clean
        print(f"topics {prefix}* not deleted: {error}")


# ---------------------------------------------------------------------------------------- helpers
def make_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    *,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create ``names`` (idempotently) and wait until all their partitions have a leader."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    names = list(names)
    if not names:
        return names
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [
        NewTopic(
            n, num_partitions=partitions, replication_factor=replication_factor, config=dict(config or {})
        )
        for n in names
    ]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating topic {name!r} failed: {exc}") from exc

    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=min(5.0, timeout))
        ready = all(
            n in md.topics
            and md.topics[n].error is None
            and md.topics[n].partitions
            and all(p.leader >= 0 for p in md.topics[n].partitions.values())
            for n in names
        )
        if ready:
            return names
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {names} not ready (leaders) after {timeout}s")
        time.sleep(0.1)
