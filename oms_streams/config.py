"""Settings: one frozen object read from the environment (prefix ``OMS_``), built once and passed down."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TopicOverride(BaseSettings):
    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMS_", frozen=True, env_nested_delimiter="__")

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None

    # --- Topics --------------------------------------------------------------------------------
    topic_prefix: str = Field(default="", description="Prepended to every topic name (tenancy, tests).")
    partitions: int = Field(default=6, ge=1, description="Default for every topic keyed by SKU.")
    replication_factor: int = Field(default=1, ge=1)
    topic_overrides: dict[str, TopicOverride] = Field(
        default={}, description="Per topic name (without prefix): partitions / replication_factor."
    )

    # --- Worker --------------------------------------------------------------------------------
    app_id: str = "oms-streams"
    instance_id: str | None = Field(
        default=None,
        description="Static group membership: a worker restarted with the same id takes its partitions "
        "back at once instead of waiting for the session timeout. Unique per running worker.",
    )
    session_timeout_s: float = Field(
        default=15.0, gt=0, description="A silent worker is replaced after this."
    )
    data_dir: Path = Path(".run/worker")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    batch_max: int = Field(default=5000, ge=1, description="Stock events applied per batch.")
    batch_within_s: float = Field(default=0.02, gt=0, description="Longest wait to fill a batch.")
    ledger_cache_positions: int = Field(
        default=500_000,
        ge=1,
        description="Stock positions the ledger keeps decoded in memory (least recently used SKUs go "
        "first); every position is in RocksDB.",
    )
    stall_after_s: float = Field(
        default=60.0, gt=0, description="Lag without progress for this long marks a partition stalled."
    )
    risk_check_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="How often overdue milestones are looked for."
    )
    sourcing_reply_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A reservation command (or a release, a fulfil) a ledger has not answered after this "
        "long is sent again (same ids: the ledger answers a repeat as the first copy).",
    )
    sourcing_max_sends: int = Field(
        default=3,
        ge=1,
        description="Sends of a reserve without an answer before its attempt is given up: what it may hold "
        "is released and the order is planned again (a new attempt).",
    )
    backorder_horizon_h: float = Field(
        default=72,
        ge=0,
        le=24 * 90,
        description="Backordered lines (an order partially allocated, or rejected for lack of stock) are "
        "sourced again when the availability shows stock for them until this many hours after "
        "placement; then the backorder is final and the order's outcome says so. 0: never again.",
    )
    preorder_grace_h: float = Field(
        default=24,
        ge=0,
        le=24 * 90,
        description="A preorder whose announced inbound has not arrived this many hours after its ETA is "
        "given up: its holds are released and the order is rejected with the reason (docs/preorders.md).",
    )
    backorder_check_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="How often a worker looks for stock for its orders' backorders (at most 500 orders a "
        "look, each at most once per look).",
    )
    backorder_retry_s: float = Field(
        default=300.0,
        gt=0,
        description="Least time between the starts of two rounds that source one order's backorder again; "
        "it doubles with each round, up to an hour: an order whose stock others keep taking does not loop.",
    )
    protection_quantile: float = Field(
        default=0.9,
        ge=0,
        lt=1,
        description="Stores keep this quantile of their walk-in demand until the next replenishment "
        "out of online channels (0 turns forecast protection off).",
    )
    protection_default_days: int = Field(
        default=7, ge=1, le=60, description="Days protected at a store that no replenishment route serves."
    )
    dedupe_window_days: float = Field(
        default=7,
        gt=0,
        le=365,
        description="A stock movement re-sent within this many days of its first copy is a duplicate, "
        "however many movements came in between (its id is kept that long).",
    )
    dedupe_sweep_interval_s: float = Field(
        default=3600.0, gt=0, description="How often ids older than the dedupe window are deleted."
    )
    protection_refresh_s: float = Field(
        default=3600.0, gt=0, description="How often protection is recomputed as the days go by."
    )
    hold_ttl_s: int = Field(
        default=900, ge=1, le=86_400, description="How long a cart hold lasts unless the request says."
    )
    hold_ttl_by_channel_s: dict[str, int] = Field(
        default={}, description='Per channel hold TTLs, overriding hold_ttl_s (JSON: {"store-app": 300}).'
    )
    hold_expiry_check_s: float = Field(
        default=5.0, gt=0, description="How often a ledger releases its cart holds that expired."
    )
    hold_answer_wait_s: float = Field(
        default=3.0, ge=0, description="How long POST /holds waits for the ledgers' answers before 202."
    )
    max_order_lines: int = Field(
        default=100,
        ge=1,
        le=100,
        description="Most lines (distinct SKUs) a placed order may have; more is rejected at placement "
        "(the wire schema allows 100).",
    )
    max_line_quantity: int = Field(
        default=1_000,
        ge=1,
        le=10_000,
        description="Most units of one SKU a placed order may ask for; more is rejected at placement "
        "(the wire schema allows 10,000).",
    )
    promise_signing_keys: SecretStr | None = Field(
        default=None,
        description="Keys promise tokens are signed and verified with, 'id=secret,id=secret' (ids of "
        "A-Z a-z 0-9 _ -, secrets of 16+ bytes without commas): the first signs, every one "
        "verifies (rotation: docs/promise-tokens.md). Unset: POST /promise returns no tokens and "
        "placements are not token-checked (a warning at start).",
    )
    promise_token_ttl_s: int = Field(
        default=1_800, ge=60, le=86_400, description="How long a promised option may be placed."
    )
    promise_token_grace_s: int = Field(
        default=60,
        ge=0,
        le=3_600,
        description="A token still counts this long after its expiry: clock skew between workers and "
        "the time a placement waits while its partition moves.",
    )
    retention_delivered_days: float = Field(
        default=44,
        gt=0,
        description="A delivered order (and its sourcing row) stays in the state this long after its last "
        "event: a 30-day return window plus two weeks for the parcel to come back and be received.",
    )
    retention_cancelled_days: float = Field(
        default=7, gt=0, description="A cancelled order stays in the state this long after its cancellation."
    )
    retention_rejected_days: float = Field(
        default=7,
        gt=0,
        description="A rejected order (nothing allocated) stays this long after it was placed.",
    )
    retention_orphaned_days: float = Field(
        default=14,
        gt=0,
        description="Fulfilment events or returns of an order whose placement never came stay this long.",
    )
    retention_returns_days: float = Field(
        default=60,
        gt=0,
        description="A return stays this long after its latest routing or receipt (a receipt after that is "
        "processed as a new return).",
    )
    retention_sweep_interval_s: float = Field(
        default=300.0, gt=0, description="How often finished rows past their retention are removed."
    )
    stream_buffer_max: int = Field(default=20_000, ge=1)
    fetch_max_wait_ms: int = Field(
        default=20, ge=1, le=5000, description="Longest a fetch waits for new data (faust fixes it at 1500)."
    )
    slow_follow_ms: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="Longest an idle fetch of the config, transit, courier-booking and returns-load "
        "topics waits: how late a change there may reach a worker.",
    )
    view_fetch_min_bytes: int = Field(
        default=65_536,
        ge=1,
        description="A fetch of the availability feed returns once this much is there, or after 50 ms.",
    )
    table_store: Literal["rocksdb", "memory"] = "rocksdb"
    delivery_timeout_ms: int = Field(
        default=120_000,
        ge=1_000,
        description="A record the broker has not acknowledged after this long (librdkafka retries until "
        "then) stops the worker with exit status 75 for its supervisor to restart it; nothing after "
        "it is committed.",
    )
    gc_thresholds: tuple[int, int, int] = Field(
        default=(2_000, 2, 100),
        description="Python GC generation thresholds (CPython's: 700, 10, 10). A worker holds millions "
        "of long-lived, acyclic objects: the oldest generation is collected rarely (it is frozen, see "
        "gc_freeze_interval_s). A collection pauses the stream for as long as its generations are big, "
        "and more so as freed old objects let the young one grow past its threshold: small young "
        "generations keep each pause short (7 to 23 ms measured: bench/README.md).",
    )
    gc_freeze_interval_s: float = Field(
        default=10.0, gt=0, description="How often survivors are moved out of the collector's reach."
    )
    gc_count_interval_s: float = Field(
        default=600.0, gt=0, description="How often oms_gc_frozen_objects is counted (a pause of ~70 ms)."
    )
    log_level: str = "WARNING"

    def promise_key_pairs(self) -> list[tuple[str, str]]:
        """(key id, secret) in order (the first signs); empty without keys. Parsed here, not by a
        validator: pydantic's validation error would print the value, secrets and all."""
        keys = self.promise_signing_keys
        return _parse_key_pairs(keys.get_secret_value()) if keys is not None else []

    def hold_ttl_for(self, channel: str) -> int:
        return self.hold_ttl_by_channel_s.get(channel, self.hold_ttl_s)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(
            cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
        )
        if self.kafka_ssl_certfile:
            context.load_cert_chain(
                str(self.kafka_ssl_certfile),
                str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
                self.kafka_ssl_key_password.get_secret_value() if self.kafka_ssl_key_password else None,
            )
        return context

    def confluent_config(self) -> dict[str, Any]:
        """Client settings for confluent-kafka (admin, CLI producers, tools)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username or ""
            config["sasl.password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            )
        if self.kafka_ssl_cafile:
            config["ssl.ca.location"] = str(self.kafka_ssl_cafile)
        if self.kafka_ssl_certfile:
            config["ssl.certificate.location"] = str(self.kafka_ssl_certfile)
        if self.kafka_ssl_keyfile:
            config["ssl.key.location"] = str(self.kafka_ssl_keyfile)
        if self.kafka_ssl_key_password:
            config["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        return config

    def aiokafka_config(self) -> dict[str, Any]:
        """The same settings for aiokafka clients (the availability view, benchmarks)."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            config["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        context = self.ssl_context()
        if context is not None:
            config["ssl_context"] = context
        return config


def _parse_key_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(","):
        key_id, _, secret = item.strip().partition("=")
        if not key_id or not secret:
            # Never echo the value: it holds secrets.
            raise ValueError("OMS_PROMISE_SIGNING_KEYS is 'id=secret' pairs separated by commas")
        pairs.append((key_id, secret))
    return pairs
