"""Kill points: ``OMS_TEST_KILL_AT=<step>[@<moment>]:<n>[,...]`` ends the worker process with
``os._exit(137)`` (what a SIGKILL leaves: no flush, no commit, no clean stop) at the n-th passage
of a saga step, counted in this process. Installed by ``sitecustomize`` (see its docstring for
the steps and what each one wraps); without the variable nothing is imported or patched.

A step is a method of a runtime wrapped here; a passage is a call of it that did the step (a
predicate on its arguments and result). The moment says when the process dies after the passage:

- ``now``: as the method returns, in the middle of the batch: nothing of it stored or sent.
- ``stored``: at the next flush of that runtime's outbox, once every table write made so far is
  acknowledged by the broker (the sourcing row, the ledger's changelog), before the batch's
  outputs (commands, answers, allocations, records) are handed to the producer.
- ``sent``: right after that flush, once the outputs are acknowledged by the broker too, before
  the inputs' offsets are committed (faust acks a batch's events after the agent returns; the
  ledger engine queues a chunk's offsets after the runtime returns): the restarted owner reads
  the same inputs again on top of the state and outputs they caused.

``stored`` and ``sent`` are the windows of at-least-once processing that a random SIGKILL rarely
hits: effects out (or state in) but inputs not committed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXIT_KILLED = 137
"""What a shell reports for a SIGKILLed process (128 + 9)."""
EXIT_BROKEN = 70
"""A kill point that cannot be armed (EX_SOFTWARE): the chaos run counts it among other exits."""
MOMENTS = ("now", "stored", "sent")

Predicate = Callable[[tuple[Any, ...], Any], bool]
"""(the wrapped method's arguments after self, its result) -> whether the call did the step."""


@dataclass(frozen=True, slots=True)
class Step:
    module: str
    owner: str
    method: str
    moment: str
    """The default moment (``MOMENTS``)."""
    did: Predicate


def _always(args: tuple[Any, ...], result: Any) -> bool:
    return True


def _reserves_planned(args: tuple[Any, ...], result: Any) -> bool:
    return bool(args[0].pending)  # the plan has shipments: reserve commands went into the batch


def _reserve_reply_applied(args: tuple[Any, ...], result: Any) -> bool:
    return bool(args[1].kind == "reserve" and result == "applied")


def _allocations_published(args: tuple[Any, ...], result: Any) -> bool:
    return bool(args[1])  # a round (or a cancellation's replacement) with allocations


def _settled_as(command: str) -> Predicate:
    return lambda args, result: bool(args[2] == command)


def _command_sent(kind: str) -> Predicate:
    return lambda args, result: bool(args[0] == kind)


def _ledger_applied(kind: str, cart: bool = False) -> Predicate:
    def did(args: tuple[Any, ...], result: Any) -> bool:
        from oms_streams.domain.reservations import is_cart_hold

        command = args[2].command
        return bool(command.kind.value == kind and is_cart_hold(command.reservation_id) == cart)

    return did


def _holds_expired(args: tuple[Any, ...], result: Any) -> bool:
    return bool(args[1])


_SOURCING = "oms_streams.streaming.sourcing_runtime"
_APPLY = ("oms_streams.streaming.ledger_runtime", "LedgerRuntime", "_apply_reservation")
STEPS: dict[str, Step] = {
    # The order owner (source_orders).
    "planned": Step(_SOURCING, "SourcingRuntime", "_plan_and_reserve", "now", _always),
    "stored": Step(_SOURCING, "SourcingRuntime", "_plan_and_reserve", "stored", _reserves_planned),
    "reserves_sent": Step(_SOURCING, "SourcingRuntime", "_plan_and_reserve", "sent", _reserves_planned),
    "replied": Step(
        "oms_streams.streaming.sourcing_answers", "LedgerAnswers", "apply", "stored", _reserve_reply_applied
    ),
    "allocated": Step(
        "oms_streams.streaming.sourcing_outcomes", "RoundPublisher", "publish", "sent", _allocations_published
    ),
    "fulfil": Step(
        "oms_streams.streaming.sourcing_withdrawals", "Withdrawals", "settle", "stored", _settled_as("fulfil")
    ),
    "release": Step(
        "oms_streams.streaming.sourcing_commands",
        "LedgerCommands",
        "send",
        "stored",
        _command_sent("release"),
    ),
    "cancel": Step(
        "oms_streams.streaming.cancellation_runtime", "OrderCancellations", "_carry_out", "sent", _always
    ),
    # The SKU's ledger.
    "reserve_applied": Step(*_APPLY, "sent", _ledger_applied("reserve")),
    "hold_applied": Step(*_APPLY, "sent", _ledger_applied("reserve", cart=True)),
    "release_applied": Step(*_APPLY, "sent", _ledger_applied("release")),
    "fulfil_applied": Step(*_APPLY, "sent", _ledger_applied("fulfil")),
    "expired": Step("oms_streams.streaming.holds", "HoldKeeper", "expired", "stored", _holds_expired),
}


@dataclass(frozen=True, slots=True)
class KillAt:
    step: str
    moment: str
    n: int

    @property
    def label(self) -> str:
        return f"{self.step}@{self.moment}:{self.n}"


def parse(spec: str) -> list[KillAt]:
    """'planned:2,release@sent:1' -> the kill points; raises ValueError on an unknown step."""
    kills = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.rpartition(":")
        step, _, moment = name.partition("@")
        if step not in STEPS or (moment and moment not in MOMENTS) or not count.isdigit():
            raise ValueError(f"OMS_TEST_KILL_AT: {part!r} is not <step>[@<moment>]:<n> ({', '.join(STEPS)})")
        kills.append(KillAt(step, moment or STEPS[step].moment, int(count)))
    return kills


_passages: dict[str, int] = {}
_armed: dict[int, KillAt] = {}
"""id(outbox) -> the kill waiting for that outbox's next flush."""
_producers: list[Any] = []


def die(kill: KillAt) -> None:
    _exit(kill, f"exiting with {EXIT_KILLED}", EXIT_KILLED)


def _exit(kill: KillAt, why: str, status: int) -> None:
    sys.stderr.write(f"KILL POINT {kill.label}: {why}\n")
    sys.stderr.flush()
    os._exit(status)


def outbox_of(owner: Any) -> Any:
    """The outbox whose next flush a kill of ``owner``'s step waits for: its own, or that of the
    commands it sends through (``Withdrawals`` holds no outbox of its own). Fails loudly: a step
    whose owner lost its way to the outbox must not pass as a point that never fired."""
    for path in (("outbox",), ("commands", "outbox")):
        found = owner
        for name in path:
            found = getattr(found, name, None)
        if found is not None:
            return found
    raise RuntimeError(f"kill points: no outbox on {type(owner).__name__} (tests/faults/kill_points.py)")


def _passed(kill: KillAt, owner: Any) -> None:
    _passages[kill.label] = count = _passages.get(kill.label, 0) + 1
    if count != kill.n:
        return
    if kill.moment == "now":
        die(kill)
    try:
        _armed[id(outbox_of(owner))] = kill
    except RuntimeError as error:  # raised in a batch, it could be caught and logged: exit instead
        _exit(kill, str(error), EXIT_BROKEN)


def _wrap(kill: KillAt) -> None:
    import importlib

    step = STEPS[kill.step]
    module = importlib.import_module(step.module)
    if not str(module.__file__).endswith(".py"):
        # A compiled class takes the wrapper silently and its compiled callers never call it.
        raise RuntimeError(f"kill points need the sources: {step.module} is compiled (OMS_COMPILED=0)")
    owner = getattr(module, step.owner)
    original = getattr(owner, step.method)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if step.did(args, result):
            _passed(kill, self)
        return result

    setattr(owner, step.method, wrapper)


def _patch_flush() -> None:
    """Every outbox's flush: a kill armed for it fires before (``stored``) or after (``sent``)."""
    from oms_streams.streaming.outbox import Outbox
    from oms_streams.streaming.rdkafka_producer import RdKafkaProducer

    flush, start = Outbox.flush, RdKafkaProducer.on_start

    async def on_start(self: Any) -> None:
        await start(self)
        _producers.append(self)

    async def flushing(self: Outbox) -> None:
        kill = _armed.pop(id(self), None)
        if kill is not None and kill.moment == "stored":
            await _producers[0].flush()  # every table write so far acknowledged, no output handed over
            die(kill)
        await flush(self)
        if kill is not None:
            await _producers[0].flush()  # the outputs acknowledged too; the inputs not committed
            die(kill)

    RdKafkaProducer.on_start = on_start  # type: ignore[method-assign]
    Outbox.flush = flushing  # type: ignore[method-assign]


def install(spec: str) -> list[KillAt]:
    kills = parse(spec)
    for kill in kills:
        try:
            _wrap(kill)
        except RuntimeError as error:  # raised in sitecustomize, it would only be printed
            _exit(kill, str(error), EXIT_BROKEN)
    if any(kill.moment != "now" for kill in kills):
        _patch_flush()
    return kills
