"""The chaos run's kill points (``tests/faults/kill_points.py``) wrap a method of a runtime's part
and, for the ``stored`` and ``sent`` moments, wait for the flush of that runtime's outbox. A part
that no longer holds the outbox made its point silently never fire (the ``fulfil`` point, after
``Withdrawals`` stopped keeping one): each step's owner must lead to its runtime's outbox."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.faults.kill_points import STEPS, outbox_of
from tests.streaming.test_cancellation_runtime import Harness
from tests.streaming.test_ledger_holds import Ledger

OWNERS = {
    "SourcingRuntime": lambda saga: saga,
    "LedgerAnswers": lambda saga: saga.answers,
    "RoundPublisher": lambda saga: saga.rounds,
    "Withdrawals": lambda saga: saga.withdrawals,
    "LedgerCommands": lambda saga: saga.commands,
    "OrderCancellations": lambda saga: saga.cancellations,
    "LedgerRuntime": lambda ledger: ledger,
    "HoldKeeper": lambda ledger: ledger.holds,
}


@pytest.mark.parametrize("name", list(STEPS))
def test_each_kill_point_finds_the_outbox_of_its_runtime(name: str) -> None:
    step = STEPS[name]
    owner_class = getattr(importlib.import_module(step.module), step.owner)
    assert callable(getattr(owner_class, step.method))  # the wrapped method still exists
    runtime: Any = Ledger().runtime if step.module.endswith(("ledger_runtime", "holds")) else Harness().saga
    owner = OWNERS[step.owner](runtime)
    assert isinstance(owner, owner_class)
    assert outbox_of(owner) is runtime.outbox


def test_an_owner_without_an_outbox_is_refused_loudly() -> None:
    with pytest.raises(RuntimeError, match="no outbox on object"):
        outbox_of(object())
