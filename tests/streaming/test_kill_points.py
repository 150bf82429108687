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


def test_a_kill_point_in_a_compiled_module_stops_the_worker_instead_of_never_firing(monkeypatch) -> None:
    # mypyc's classes take a patched method silently and their compiled callers never call it.
    import sys
    import types

    from tests.faults import kill_points

    compiled = types.ModuleType("oms_compiled_example")
    compiled.__file__ = "/x/oms_compiled_example.cpython-311-x86_64-linux-gnu.so"
    original = lambda self: None  # noqa: E731
    compiled.Owner = type("Owner", (), {"step": original})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "oms_compiled_example", compiled)
    step = kill_points.Step("oms_compiled_example", "Owner", "step", "now", kill_points._always)
    monkeypatch.setitem(kill_points.STEPS, "compiled_step", step)
    exits: list[int] = []
    monkeypatch.setattr(kill_points.os, "_exit", lambda status: exits.append(status))

    kill_points.install("compiled_step:1")

    assert exits == [kill_points.EXIT_BROKEN]
    assert compiled.Owner.step is original  # not wrapped
