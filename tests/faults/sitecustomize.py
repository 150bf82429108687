"""Fault injection for a worker process under test. Python imports ``sitecustomize`` at start-up
from ``PYTHONPATH``; with ``OMS_TEST_FAIL_DELIVERY_AT=N`` the worker's Nth delivery report (of a
record sent alone or in a group) says its record was not delivered, as librdkafka reports a record
whose retries ran out. With ``OMS_TEST_LOSE_REPLIES_OF=<reservation id>,...`` every ledger answer
to a reserve of those reservations is lost on its way to sourcing (the ledger applies the command
and answers; sourcing never reads the answer). Without them, nothing.
"""

import os

_fail_at = int(os.environ.get("OMS_TEST_FAIL_DELIVERY_AT", "0"))
if _fail_at > 0:
    from typing import Any

    import confluent_kafka

    from oms_streams.streaming.rdkafka_producer import Delivery, RdKafkaProducer

    _reports = [0]

    def _injected(error: Any) -> Any:
        _reports[0] += 1
        if _reports[0] == _fail_at and error is None:
            return confluent_kafka.KafkaError(
                confluent_kafka.KafkaError._MSG_TIMED_OUT, "injected by the test: record not delivered"
            )
        return error

    _report_one = RdKafkaProducer._report
    _report_grouped = Delivery.report

    def _report(self: Any, delivered: Any, error: Any, message: Any) -> None:
        _report_one(self, delivered, _injected(error), message)

    def _report_in_group(self: Any, error: Any, message: Any) -> None:
        _report_grouped(self, _injected(error), message)

    RdKafkaProducer._report = _report  # type: ignore[method-assign]
    Delivery.report = _report_in_group  # type: ignore[method-assign]


_lost = {rid for rid in os.environ.get("OMS_TEST_LOSE_REPLIES_OF", "").split(",") if rid}
if _lost:
    from typing import Any

    from oms_streams.adapters import sourcing

    _decode_replies = sourcing.decode_replies

    def _losing_replies(key: Any, value: Any) -> Any:
        decoded = _decode_replies(key, value)
        if not isinstance(decoded, list):
            return decoded
        return [r for r in decoded if not (r.kind == "reserve" and r.reservation_id in _lost)]

    # Before the worker imports sourcing_runtime, which binds the name at import.
    sourcing.decode_replies = _losing_replies
