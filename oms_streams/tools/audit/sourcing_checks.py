"""The checks of sourcing against the ledger: every placed order got one outcome per round, outcomes
and allocations agree, no order is allocated more than it asked for, the ledger's holds match the
orders' live allocations, and every preorder hold has a live owner (``_Sourcing``)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from pydantic import BaseModel

from oms_streams.adapters.preorder_answers import INTERIM
from oms_streams.domain.reservations import is_cart_hold
from oms_streams.schemas.sourcing import Allocation, OrderSourced
from oms_streams.tools.audit.model import AuditInput, Finding, FindingKind, Logged, _holds_text


def order_of_reservation(reservation_id: str) -> str:
    """'<order id>/<attempt>' -> order id."""
    return reservation_id.rsplit("/", 1)[0]


def _attempt(reservation_id: str) -> int:
    tail = reservation_id.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


_ENVELOPE = {"event_id", "occurred_at", "source", "schema_version", "trace"}
"""Left out when two records are compared: a re-publication may restamp them, the decision is the rest."""


def _content(model: BaseModel, exclude: set[str]) -> str:
    return json.dumps(model.model_dump(mode="json", exclude=exclude), sort_keys=True)


class _Sourcing:
    """Orders, outcomes and allocations indexed per order, for checks 3 to 5."""

    def __init__(self, records: AuditInput, counts: Counter[str]) -> None:
        self.records = records
        self.counts = counts
        self.placed_at: dict[str, int] = {}
        """Order id -> log time of its first placement."""
        self.asked: dict[str, dict[str, int]] = {}
        """Order id -> units per SKU (the most any version of the order asked for)."""
        for placed in sorted(records.placed, key=lambda r: r.at.order):
            order = placed.record
            self.placed_at.setdefault(order.order_id, placed.at.timestamp_ms)
            cart: Counter[str] = Counter()
            for line in order.cart:
                cart[line.sku] += line.quantity
            asked = self.asked.setdefault(order.order_id, {})
            for sku, units in cart.items():
                asked[sku] = max(asked.get(sku, 0), units)
        counts["orders_placed"] += len(self.placed_at)

        self.interim: dict[tuple[str, int], dict[str, Logged[OrderSourced]]] = defaultdict(dict)
        """Distinct interim answers (``preordered``) per (order, round): one, whatever the repeats."""
        # Distinct outcomes per (order, round): redeliveries (same event id, same decision) fold.
        self.outcomes: dict[tuple[str, int], dict[tuple[str, str], Logged[OrderSourced]]] = defaultdict(dict)
        for sourced in sorted(records.outcomes, key=lambda r: r.at.order):
            o = sourced.record
            if o.edit is not None and o.edit.status == "refused":
                continue  # an edit's refusal: the order as it stood, not a round's outcome
            if o.outcome == INTERIM:  # a preorder's interim answer: the round's outcome follows
                self.interim[(o.order_id, o.round)].setdefault(_content(o, {"occurred_at"}), sourced)
                continue
            outcomes = self.outcomes[(o.order_id, o.round)]
            key = (o.event_id, _content(o, {"occurred_at", "trace"}))
            if key in outcomes:
                counts["redelivered"] += 1
            else:
                outcomes[key] = sourced
        counts["outcomes"] += len(self.outcomes)
        counts["preorder_answers"] += len(self.interim)

        self.allocated: dict[str, dict[str, Logged[Allocation]]] = defaultdict(dict)
        """Allocation id -> its distinct 'allocate' records by content."""
        self.cancelled: dict[str, Logged[Allocation]] = {}
        for published in sorted(records.allocations, key=lambda r: r.at.order):
            a = published.record
            if a.kind == "cancel":
                self.cancelled.setdefault(a.allocation_id, published)
                continue
            versions = self.allocated[a.allocation_id]
            content = _content(a, _ENVELOPE)
            if content in versions:
                counts["redelivered"] += 1
            else:
                versions[content] = published
        counts["allocations"] += len(self.allocated)

        self.listed: dict[tuple[str, int], set[str]] = {
            key: {aid for logged in distinct.values() for aid in logged.record.allocations}
            for key, distinct in self.outcomes.items()
        }
        self.live = self._live()
        self.live_of: dict[str, list[Allocation]] = defaultdict(list)
        for allocation in self.live:
            self.live_of[allocation.order_id].append(allocation)
        self.latest_round: dict[str, int] = {}
        for order_id, round_ in self.outcomes:
            self.latest_round[order_id] = max(round_, self.latest_round.get(order_id, 0))
        self.last_cancelled_round: dict[str, int] = {}
        for cancel in self.cancelled.values():
            order_id, round_ = cancel.record.order_id, cancel.record.round
            self.last_cancelled_round[order_id] = max(round_, self.last_cancelled_round.get(order_id, 0))
        self.order_cancelled_at: dict[str, int] = {}
        """Order id -> log time of the answer that cancelled its last line."""
        for answer in records.cancellations:
            if answer.record.order_cancelled:
                self.order_cancelled_at.setdefault(answer.record.order_id, answer.at.timestamp_ms)
        counts["orders_cancelled"] += len(self.order_cancelled_at)
        self.reserve_sent_at: dict[str, int] = {}
        """Reservation id -> log time of its first reserve command."""
        for sent in records.commands:
            if sent.record.kind == "reserve":
                rid, at = sent.record.reservation_id, sent.at.timestamp_ms
                self.reserve_sent_at[rid] = min(at, self.reserve_sent_at.get(rid, at))

    # --- shared views -------------------------------------------------------------------------

    def _recent(self, at_ms: int) -> bool:
        return self.records.now_ms - at_ms <= self.records.settle_ms

    def _latest_outcome(self, order_id: str) -> OrderSourced | None:
        round_ = self.latest_round.get(order_id)
        if round_ is None:
            return None
        return max(self.outcomes[(order_id, round_)].values(), key=lambda logged: logged.at.order).record

    def _allocation(self, allocation_id: str) -> Allocation:
        """The first published version of an allocation (a conflicting later one is reported)."""
        return min(self.allocated[allocation_id].values(), key=lambda logged: logged.at.order).record

    def _live(self) -> list[Allocation]:
        """Allocations fulfilment may still act on: published, not cancelled, and either listed by
        their round's outcome or with that outcome still to come."""
        live = []
        for allocation_id in self.allocated:
            if allocation_id in self.cancelled:
                continue
            allocation = self._allocation(allocation_id)
            listed = self.listed.get((allocation.order_id, allocation.round))
            if listed is None or allocation_id in listed:
                live.append(allocation)
        return live

    def _resourcing(self, order_id: str, latest: OrderSourced | None) -> bool:
        """A cancel newer than the latest outcome: the next round's outcome is still to come."""
        cancelled = self.last_cancelled_round.get(order_id)
        return cancelled is not None and cancelled >= (latest.round if latest is not None else 0)

    # --- check 4 ------------------------------------------------------------------------------

    def check_outcomes(self) -> list[Finding]:
        findings = []
        waiting = {
            order_of_reservation(rid) for row in self.records.ledger for rid, _ in row.position.preorders
        }
        for order_id, placed_at in sorted(self.placed_at.items()):
            if (order_id, 1) in self.outcomes or (order_id, 0) in self.outcomes:
                continue  # round 0: refused at placement (a limit, unreadable), answered all the same
            if order_id in waiting:
                self.counts["preordered"] += 1  # its outcome comes when the inbound arrives
                if (order_id, 1) not in self.interim and not self._recent(placed_at):
                    findings.append(
                        Finding(
                            FindingKind.UNANSWERED_PREORDER,
                            order_id,
                            "preorder holds inbound, no answer 'preordered' on the outcomes topic",
                        )
                    )
                continue
            if self._recent(placed_at):
                self.counts["in_flight"] += 1
                continue
            age_s = (self.records.now_ms - placed_at) / 1000
            findings.append(
                Finding(
                    FindingKind.MISSING_OUTCOME,
                    order_id,
                    f"placed {age_s:,.0f} s ago, no outcome for round 1",
                )
            )
        for (order_id, round_), answers in sorted(self.interim.items()):
            if len(answers) > 1:
                findings.append(
                    Finding(
                        FindingKind.CONFLICTING_OUTCOMES,
                        order_id,
                        f"round {round_}: {len(answers)} different interim answers 'preordered'",
                    )
                )
        for (order_id, round_), distinct in sorted(self.outcomes.items()):
            if order_id not in self.placed_at:
                self.counts["unknown_orders"] += 1
            if len(distinct) > 1:
                shown = "; ".join(
                    f"{logged.record.event_id}: {logged.record.outcome} {logged.record.allocations}"
                    for logged in distinct.values()
                )
                findings.append(
                    Finding(
                        FindingKind.CONFLICTING_OUTCOMES,
                        order_id,
                        f"round {round_}: {len(distinct)} different outcomes ({shown})",
                    )
                )
        return findings

    # --- check 5 ------------------------------------------------------------------------------

    def check_allocations(self) -> list[Finding]:
        findings = []
        for allocation_id, distinct in sorted(self.allocated.items()):
            versions = sorted(distinct.values(), key=lambda logged: logged.at.order)
            first = versions[0].record
            if len(versions) > 1:
                findings.append(
                    Finding(
                        FindingKind.CONFLICTING_ALLOCATION,
                        allocation_id,
                        f"{len(versions)} different versions: "
                        + "; ".join(_allocation_text(v.record) for v in versions),
                    )
                )
            listed = self.listed.get((first.order_id, first.round))
            if listed is not None and allocation_id not in listed:
                outcome = self._outcome_text(first.order_id, first.round)
                findings.append(
                    Finding(
                        FindingKind.UNLISTED_ALLOCATION,
                        allocation_id,
                        f"not listed by the outcome of round {first.round} ({outcome})",
                    )
                )
            elif listed is None and not self._recent(versions[0].at.timestamp_ms):
                findings.append(
                    Finding(
                        FindingKind.UNLISTED_ALLOCATION,
                        allocation_id,
                        f"no outcome was published for round {first.round} of {first.order_id}",
                    )
                )
        for (order_id, round_), outcomes in sorted(self.outcomes.items()):
            for logged in outcomes.values():
                if self._recent(logged.at.timestamp_ms):
                    continue  # its allocations may be on their way to the audit's reader
                for allocation_id in logged.record.allocations:
                    if allocation_id not in self.allocated:
                        findings.append(
                            Finding(
                                FindingKind.MISSING_ALLOCATION,
                                allocation_id,
                                f"listed by {logged.record.event_id} (round {round_} of {order_id}, "
                                f"{logged.record.outcome}) but never published",
                            )
                        )
        findings += self._over_allocated()
        return findings

    def _outcome_text(self, order_id: str, round_: int) -> str:
        return "; ".join(
            f"{logged.record.outcome} {logged.record.allocations}"
            for logged in self.outcomes[(order_id, round_)].values()
        )

    def _over_allocated(self) -> list[Finding]:
        # Every allocation not cancelled can still be shipped, whatever its round: a re-sourcing that
        # forgot a cancel ships twice as surely as two allocations of one round.
        units: dict[str, Counter[str]] = defaultdict(Counter)
        ids: dict[tuple[str, str], list[str]] = defaultdict(list)
        for allocation_id in self.allocated:
            if allocation_id in self.cancelled:
                continue
            allocation = self._allocation(allocation_id)
            for line in allocation.lines:
                units[allocation.order_id][line.sku] += line.quantity
                ids[(allocation.order_id, line.sku)].append(allocation_id)
        findings = []
        for order_id, per_sku in sorted(units.items()):
            asked = self.asked.get(order_id)
            if asked is None:
                continue  # never placed (or placed beyond retention): nothing to compare with
            for sku, allocated in sorted(per_sku.items()):
                if allocated > asked.get(sku, 0):
                    findings.append(
                        Finding(
                            FindingKind.OVER_ALLOCATED,
                            order_id,
                            f"{sku}: live allocations {', '.join(sorted(ids[(order_id, sku)]))} cover "
                            f"{allocated} units, the order asked for {asked.get(sku, 0)}",
                        )
                    )
        return findings

    # --- check 3 ------------------------------------------------------------------------------

    def check_holds(self) -> list[Finding]:
        """Holds per (order, SKU, location) against what its live, unfulfilled allocations need."""
        order_of: dict[str, str] = {}
        for command in self.records.commands:
            order_of.setdefault(command.record.reservation_id, command.record.order_id)
        for reply in self.records.replies:
            order_of.setdefault(reply.record.reservation_id, reply.record.order_id)

        holds: dict[tuple[str, str, str], list[tuple[str, int]]] = defaultdict(list)
        for row in self.records.ledger:
            for rid, units in row.position.holds:
                if is_cart_hold(rid):
                    continue  # owned by its expiry, not by an order (check_cart_holds)
                order_id = order_of.get(rid) or order_of_reservation(rid)
                holds[(order_id, row.sku, row.location_id)].append((rid, units))
                self.counts["holds"] += 1

        need: Counter[tuple[str, str, str]] = Counter()
        need_ids: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for allocation in self.live:
            for line in allocation.lines:
                key = (allocation.order_id, line.sku, allocation.location_id)
                need[key] += line.quantity
                need_ids[key].append(allocation.allocation_id)
        shipped, shipped_all = self._fulfilled()
        for key in list(need):
            need[key] = 0 if key in shipped_all else max(0, need[key] - shipped[key])

        known = {*self.placed_at, *(o for o, _ in self.outcomes), *(a.order_id for a in self.live)}
        shed = self._shed()
        for key in self._fulfilled_after_shed(shed) & need.keys():
            need[key] = 0
            self.counts["fulfilled_after_shed"] += 1
        findings = []
        for key in sorted(holds.keys() | need.keys()):
            order_id, sku, location_id = key
            taken = sorted(holds.get(key, []), key=lambda hold: -_attempt(hold[0]))
            needed = need[key]
            kept = 0
            extra = []
            for rid, units in taken:  # the newest attempt is the one its allocations came from
                if kept + units <= needed:
                    kept += units
                else:
                    extra.append((rid, units))
            if extra:
                findings += self._orphans(order_id, sku, location_id, extra, known)
            if kept < needed and key in shed and self._recent(shed[key]):
                # The ledger shed the hold (its stock went); the order's owner re-sources it next.
                self.counts["in_flight_sheds"] += 1
            elif kept < needed:
                findings.append(
                    Finding(
                        FindingKind.UNHELD_ALLOCATION,
                        ",".join(sorted(set(need_ids[key]))),
                        f"{sku} at {location_id}: {needed} units to ship, "
                        f"{kept} held ({_holds_text(holds.get(key, []))})",
                    )
                )
        return findings

    def check_preorders(self) -> list[Finding]:
        """Every preorder hold (inbound promised to an order) has a live owner: its order was placed,
        is not cancelled, and has published no outcome since the preorder was asked for (a round
        that ends, allocated or given up, converts or releases it)."""
        asked: dict[str, int] = {}
        for sent in self.records.commands:
            if sent.record.kind == "preorder":
                rid, at = sent.record.reservation_id, sent.at.timestamp_ms
                asked[rid] = min(at, asked.get(rid, at))
        findings = []
        for row in self.records.ledger:
            for rid, units in row.position.preorders:
                self.counts["preorders"] += 1
                why = self._preorder_unowned(order_of_reservation(rid), asked.get(rid))
                if why is not None:
                    key = f"{row.sku}|{row.location_id}"
                    findings.append(
                        Finding(FindingKind.UNOWNED_PREORDER, key, f"{rid} preorders {units}: {why}")
                    )
        return findings

    def _preorder_unowned(self, order_id: str, asked_at: int | None) -> str | None:
        if order_id not in self.placed_at:
            return f"order {order_id} was never placed"
        cancelled_at = self.order_cancelled_at.get(order_id)
        if cancelled_at is not None and not self._recent(cancelled_at):
            return f"order {order_id} was cancelled"
        since = [
            logged
            for (order, _), distinct in self.outcomes.items()
            if order == order_id
            for logged in distinct.values()
            if asked_at is None or logged.at.timestamp_ms >= asked_at
        ]
        latest = max(since, key=lambda logged: logged.at.order, default=None)
        if latest is not None and not self._recent(latest.at.timestamp_ms):
            outcome = latest.record
            return f"order {order_id} has an outcome since ({outcome.outcome} in round {outcome.round})"
        return None

    def _orphans(
        self, order_id: str, sku: str, location_id: str, extra: list[tuple[str, int]], known: set[str]
    ) -> list[Finding]:
        latest = self._latest_outcome(order_id)
        cancelled_at = self.order_cancelled_at.get(order_id)
        if cancelled_at is not None:
            if self._recent(cancelled_at):
                self.counts["in_flight_holds"] += len(extra)  # its releases may still be on their way
                return []
            why = f"order {order_id} was cancelled"
            return [
                Finding(FindingKind.ORPHAN_HOLD, f"{sku}|{location_id}", f"{rid} holds {units}: {why}")
                for rid, units in extra
            ]
        if order_id in self.placed_at and latest is None:
            self.counts["in_flight_holds"] += len(extra)  # sourcing still deciding
            return []
        if latest is not None and self._resourcing(order_id, latest):
            self.counts["resourcing"] += 1
            self.counts["in_flight_holds"] += len(extra)
            return []
        sourcing_backorder = [hold for hold in extra if self._sources_backorder(order_id, latest, hold[0])]
        if sourcing_backorder:
            self.counts["in_flight_holds"] += len(sourcing_backorder)  # its round's outcome follows
            extra = [hold for hold in extra if hold not in sourcing_backorder]
            if not extra:
                return []
        if order_id not in known:
            why = f"order {order_id} was never placed"
        elif latest is None:
            why = f"order {order_id} has no outcome"
        elif latest.outcome == "rejected":
            why = f"order {order_id} was rejected in round {latest.round}"
        else:
            why = f"no live allocation of {order_id} ({latest.outcome} in round {latest.round}) needs it"
        return [
            Finding(FindingKind.ORPHAN_HOLD, f"{sku}|{location_id}", f"{rid} holds {units}: {why}")
            for rid, units in extra
        ]

    def _sources_backorder(self, order_id: str, latest: OrderSourced | None, rid: str) -> bool:
        """A hold of a round that sources the latest outcome's backorder (it waits for stock): its
        reserve was sent after that outcome, within the settle time."""
        if latest is None or latest.backorder_until is None:
            return False
        sent = self.reserve_sent_at.get(rid)
        published = min(logged.at.timestamp_ms for logged in self.outcomes[(order_id, latest.round)].values())
        return sent is not None and sent >= published and self._recent(sent)

    def _shed(self) -> dict[tuple[str, str, str], int]:
        """(order, SKU, location) -> log time of the latest hold the ledger shed there."""
        shed: dict[tuple[str, str, str], int] = {}
        for answer in self.records.replies:
            reply = answer.record
            if reply.kind == "shed":
                for line in reply.lines:
                    key = (reply.order_id, reply.sku, line.location_id)
                    shed[key] = max(shed.get(key, 0), answer.at.timestamp_ms)
        return shed

    def _fulfilled_after_shed(self, shed: dict[tuple[str, str, str], int]) -> set[tuple[str, str, str]]:
        """(order, SKU, location) whose fulfil was answered ``fulfilled`` after the ledger had shed
        the hold there: a count taken after the units left excluded them, so the fulfil had nothing
        left to take and the allocation needs no hold any more."""
        answered = {
            (logged.record.reservation_id, logged.record.sku)
            for logged in self.records.replies
            if logged.record.kind == "fulfil" and logged.record.status == "fulfilled"
        }
        settled = set()
        for sent in self.records.commands:
            command = sent.record
            if command.kind == "fulfil" and (command.reservation_id, command.sku) in answered:
                for line in command.lines:
                    key = (command.order_id, command.sku, line.location_id)
                    if key in shed:
                        settled.add(key)
        return settled

    def _fulfilled(self) -> tuple[Counter[tuple[str, str, str]], set[tuple[str, str, str]]]:
        """Units shipped per (order, SKU, location) by fulfilled replies, and the places a fulfil
        command was sent to but not answered yet (it may already have taken the hold away)."""
        shipped: Counter[tuple[str, str, str]] = Counter()
        seen: set[tuple[str, str, str]] = set()
        answered: set[tuple[str, str]] = set()
        for answer in self.records.replies:
            reply = answer.record
            if reply.kind != "fulfil":
                continue
            answered.add((reply.reservation_id, reply.sku))
            if reply.status != "fulfilled":
                continue
            for line in reply.lines:
                once = (reply.reservation_id, reply.sku, line.location_id)
                if once not in seen:
                    seen.add(once)
                    shipped[(reply.order_id, reply.sku, line.location_id)] += line.quantity
        pending: set[tuple[str, str, str]] = set()
        for sent in self.records.commands:
            command = sent.record
            if command.kind != "fulfil" or (command.reservation_id, command.sku) in answered:
                continue
            named = {line.location_id for line in command.lines}
            for allocation in self.live_of.get(command.order_id, []):
                if not named or allocation.location_id in named:
                    pending.add((command.order_id, command.sku, allocation.location_id))
        return shipped, pending


def _allocation_text(allocation: Allocation) -> str:
    lines = ", ".join(f"{line.sku} x{line.quantity}" for line in allocation.lines)
    return f"{allocation.location_id} [{lines}] {allocation.method}"
