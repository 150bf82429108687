"""A worker on a SASL-secured broker: every client it makes authenticates, and the secret stays secret."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from tests.integration.conftest import NETWORK_YAML
from tests.kafka_broker import _free_port_pair, _run_script
from tests.worker_process import Events, WorkerProcess, free_port, wait_until

PASSWORD = "oms-Sup3r-secret"
ADMIN_PASSWORD = "admin-secret"

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[tuple[str, str]]:
    """(plaintext bootstrap for setup, SASL bootstrap) of a private broker with PLAIN and SCRAM users."""
    port = _free_port_pair()
    sasl_port = free_port()
    data_dir = tempfile.mkdtemp(prefix=f"oms-kafka-sasl-{port}-")
    jaas_plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{ADMIN_PASSWORD}" user_admin="{ADMIN_PASSWORD}" user_oms="{PASSWORD}";'
    )
    extra = "\n".join(
        [
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas_plain}",
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        ]
    )
    env = {"OMS_KAFKA_PORT": str(port), "OMS_KAFKA_DATA_DIR": data_dir, "OMS_KAFKA_EXTRA_PROPS": extra}
    _run_script("fetch.sh", [], env, timeout=900)
    _run_script("start.sh", [], env, timeout=300)
    try:
        plain = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": plain})
        upsert = UserScramCredentialUpsertion(
            "oms", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), PASSWORD.encode()
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)
        yield plain, f"127.0.0.1:{sasl_port}"
    finally:
        try:
            _run_script("stop.sh", ["--clean"], env, timeout=90)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "PLAIN"])
def test_worker_on_a_sasl_cluster_applies_events_and_never_logs_the_secret(
    sasl_broker: tuple[str, str], topic_prefix: str, tmp_path: Path, mechanism: str
) -> None:
    _, sasl_bootstrap = sasl_broker
    secured = {
        "OMS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "OMS_KAFKA_SASL_MECHANISM": mechanism,
        "OMS_KAFKA_SASL_USERNAME": "oms",
        "OMS_KAFKA_SASL_PASSWORD": PASSWORD,
    }
    worker = WorkerProcess(sasl_bootstrap, topic_prefix, tmp_path / "worker", extra_env=secured)
    worker.start()  # topics created by the admin client, followers and faust all over SASL
    try:
        events = Events(
            sasl_bootstrap,
            topic_prefix,
            client_config={
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": mechanism,
                "sasl.username": "oms",
                "sasl.password": PASSWORD,
            },
        )
        events.config(NETWORK_YAML, extra_env=secured)  # the CLI's producer over SASL too
        events.movement("SKU-LOCK", "DC-NORTH", "receipt", 12)
        events.flush()
        wait_until(
            lambda: worker.get("/availability/SKU-LOCK?channel=marketplace")[1].get("total") == 12,
            30,
            "availability over a SASL cluster",
        )
        _, metrics = worker.get("/metrics")
        assert PASSWORD not in metrics
    finally:
        worker.stop()
    assert PASSWORD not in worker.log_path.read_text(errors="replace")


def test_wrong_password_is_refused(sasl_broker: tuple[str, str], topic_prefix: str, tmp_path: Path) -> None:
    _, sasl_bootstrap = sasl_broker
    worker = WorkerProcess(
        sasl_bootstrap,
        topic_prefix,
        tmp_path / "worker",
        extra_env={
            "OMS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "OMS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "OMS_KAFKA_SASL_USERNAME": "oms",
            "OMS_KAFKA_SASL_PASSWORD": "wrong",
        },
    )
    with pytest.raises(AssertionError, match="worker exited"):
        worker.start(timeout_s=60)
    assert "wrong" not in worker.log_tail(200).replace("wrong password", "")
