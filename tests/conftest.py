"""Shared fixtures: the real Kafka broker plugin, and settings for an isolated worker per test."""

pytest_plugins = ["tests.kafka_broker"]
