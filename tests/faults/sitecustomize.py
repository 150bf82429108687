"""Fault injection for a worker process under test. Python imports ``sitecustomize`` at start-up
from ``PYTHONPATH``; with ``OMS_TEST_FAIL_DELIVERY_AT=N`` the worker's Nth delivery report (of a
record sent alone or in a group) says its record was not delivered, as librdkafka reports a record
whose retries ran out. With ``OMS_TEST_LOSE_REPLIES_OF=<reservation id>,...`` every ledger answer
to a reserve of those reservations is lost on its way to sourcing (the ledger applies the command
and answers; sourcing never reads the answer).

With ``OMS_TEST_KILL_AT=<step>[@<moment>]:<n>[,...]`` the worker dies (``os._exit(137)``, as after
a SIGKILL) at the n-th passage of a saga step (``kill_points``). Moments: ``now`` (as the step's
method returns, mid-batch), ``stored`` (the batch's table writes acknowledged, its outputs not yet
handed to the producer), ``sent`` (its outputs acknowledged too, its inputs not committed). Steps,
the method each wraps, and its default moment:

=================  =================================================  =======  ========================
step               wraps (a passage is a call that...)                moment   the window it leaves
=================  =================================================  =======  ========================
planned            SourcingRuntime._plan_and_reserve (any plan)       now      plan made, nothing kept
stored             SourcingRuntime._plan_and_reserve (with reserves)  stored   row stored, reserves unsent
reserves_sent      SourcingRuntime._plan_and_reserve (with reserves)  sent     reserves out, input uncommitted
replied            LedgerAnswers.apply (a reserve reply applied)      stored   reply in the row, its
                                                                               allocation/release unsent
allocated          RoundPublisher.publish (with allocations)          sent     allocation and outcome out,
                                                                               the replies uncommitted
fulfil             Withdrawals.settle("fulfil")                       stored   allocation fulfilled in the
                                                                               row, fulfil command unsent
release            LedgerCommands.send("release")                     stored   release decided and stored
                                                                               (retry, short pick, cancel,
                                                                               stray), unsent
cancel             OrderCancellations._carry_out                      sent     releases, cancel records and
                                                                               answer out, request uncommitted
reserve_applied    LedgerRuntime._apply_reservation (order reserve)   sent     hold and reply out, command
                                                                               uncommitted
hold_applied       LedgerRuntime._apply_reservation (cart hold)       sent     cart hold and its record out
release_applied    LedgerRuntime._apply_reservation (release)         sent     units back, command uncommitted
fulfil_applied     LedgerRuntime._apply_reservation (fulfil)          sent     units shipped, uncommitted
expired            HoldKeeper.expired (holds due, released)           stored   expiry in the changelog, its
                                                                               'expired' records unsent
=================  =================================================  =======  ========================

Without these variables, nothing is imported or patched.
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


_kill_at = os.environ.get("OMS_TEST_KILL_AT", "")
if _kill_at:
    import kill_points  # next to this file, on PYTHONPATH

    # After the lost replies above: it imports the steps' modules (sourcing_runtime binds decode_replies).
    kill_points.install(_kill_at)
