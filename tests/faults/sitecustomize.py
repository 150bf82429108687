"""Fault injection for a worker process under test. Python imports ``sitecustomize`` at start-up
from ``PYTHONPATH``; with ``OMS_TEST_FAIL_DELIVERY_AT=N`` the worker's Nth delivery report says its
record was not delivered, as librdkafka reports a record whose retries ran out. Without it, nothing.
"""

import os

_fail_at = int(os.environ.get("OMS_TEST_FAIL_DELIVERY_AT", "0"))
if _fail_at > 0:
    from typing import Any

    import confluent_kafka

    from oms_streams.streaming.rdkafka_producer import RdKafkaProducer

    _deliver = RdKafkaProducer._report
    _reports = [0]

    def _report(self: Any, delivered: Any, error: Any, message: Any) -> None:
        _reports[0] += 1
        if _reports[0] == _fail_at and error is None:
            error = confluent_kafka.KafkaError(
                confluent_kafka.KafkaError._MSG_TIMED_OUT, "injected by the test: record not delivered"
            )
        _deliver(self, delivered, error, message)

    RdKafkaProducer._report = _report  # type: ignore[method-assign]
