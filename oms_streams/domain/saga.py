"""The reservation saga's deadlines: which unanswered commands to send again, when to give up.

The order owner sends commands to SKU ledgers (reserve, release, fulfil) and waits for their
answers. Kafka does not lose a produced record, but a command can still go unanswered: the owner
crashed between storing its decision and producing it, a ledger partition is stuck, a rebalance
dropped a record. So every command waits with a deadline, and ledgers answer a repeat as they
answered the first copy (a reserve is held once, a release or fulfil settles once), which makes
sending again always safe.

- An unanswered command is sent again once ``timeout_ms`` has passed since it was last sent.
- A reserve sent ``max_sends`` times without an answer gives its attempt up: the owner releases
  what the attempt may hold and plans the order again. Waiting longer would keep the order
  ``reserving`` and its units held with no end.
- A release or fulfil is never given up: until it is answered a hold may be left without an owner.

Pure: the caller passes ``now_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RESERVE = "reserve"


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    timeout_ms: int = 30_000
    """How long an answer to one send is waited for."""
    max_sends: int = 3
    """Sends of a reserve without an answer before its attempt is given up."""


@dataclass(frozen=True, slots=True)
class Awaited:
    """One command (or group of commands with the same kind, reservation and SKU) not answered yet."""

    kind: str
    """reserve | release | fulfil."""
    sent_ms: int
    """When it was last sent."""
    sends: int
    """How many times it was sent so far."""


@dataclass(frozen=True, slots=True)
class Chase:
    resend: tuple[int, ...]
    """Indices (into the awaited commands) of the commands to send again now."""
    give_up: bool
    """A reserve went unanswered through every send: its attempt is over."""


def chase(awaited: Sequence[Awaited], now_ms: int, policy: ReplyPolicy) -> Chase:
    """What to do now about commands still waiting for their answers."""
    overdue = [i for i, a in enumerate(awaited) if now_ms - a.sent_ms >= policy.timeout_ms]
    give_up = any(awaited[i].kind == RESERVE and awaited[i].sends >= policy.max_sends for i in overdue)
    # Once the attempt is given up its reserves are replaced by releases: sending them is pointless.
    resend = tuple(i for i in overdue if not (give_up and awaited[i].kind == RESERVE))
    return Chase(resend, give_up)


def next_deadline(awaited: Sequence[Awaited], policy: ReplyPolicy) -> int | None:
    """When ``chase`` will next have something to do (None: nothing is waiting)."""
    if not awaited:
        return None
    return min(a.sent_ms for a in awaited) + policy.timeout_ms
