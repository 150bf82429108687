"""Cluster settings: SASL and TLS reach every client, and secrets never show in logs or dumps."""

from __future__ import annotations

import logging

import pytest

from oms_streams.config import Settings

SECRET = "s3cr3t-Pa55"


@pytest.fixture
def sasl_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("OMS_KAFKA_BOOTSTRAP", "broker-1:9094,broker-2:9094")
    monkeypatch.setenv("OMS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("OMS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("OMS_KAFKA_SASL_USERNAME", "oms")
    monkeypatch.setenv("OMS_KAFKA_SASL_PASSWORD", SECRET)
    return Settings()


def test_sasl_settings_reach_confluent_and_aiokafka_clients(sasl_settings: Settings) -> None:
    confluent = sasl_settings.confluent_config()
    assert confluent["sasl.mechanism"] == "SCRAM-SHA-512" and confluent["sasl.password"] == SECRET
    aio = sasl_settings.aiokafka_config()
    assert aio["sasl_mechanism"] == "SCRAM-SHA-512" and aio["sasl_plain_password"] == SECRET
    assert aio["bootstrap_servers"] == "broker-1:9094,broker-2:9094"


def test_faust_worker_gets_sasl_credentials(sasl_settings: Settings) -> None:
    from oms_streams.streaming.worker_kafka import _credentials

    credentials = _credentials(sasl_settings)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.username == "oms"


def test_secrets_never_appear_in_repr_dump_or_logs(
    sasl_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert SECRET not in repr(sasl_settings)
    assert SECRET not in str(sasl_settings)
    assert SECRET not in sasl_settings.model_dump_json()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("oms").info("settings: %s", sasl_settings)
    assert SECRET not in caplog.text


def test_topic_overrides_set_partitions_and_replication_per_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    from oms_streams.streaming.topics import AVAILABILITY, LOCATIONS, MOVEMENTS

    monkeypatch.setenv("OMS_PARTITIONS", "12")
    monkeypatch.setenv("OMS_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("OMS_TOPIC_OVERRIDES", '{"oms.availability.v1": {"partitions": 24}}')
    settings = Settings()
    assert MOVEMENTS.partitions(settings) == 12
    assert AVAILABILITY.partitions(settings) == 24
    assert LOCATIONS.partitions(settings) == 1
    assert AVAILABILITY.replication_factor(settings) == 3
