"""``python -m bench.chaos [--rounds N]``: workers die at every saga step on purpose, and at random,
while orders race for scarce stock, carts hold and let go, customers cancel and the WMS ships and
short-picks (``bench.chaos_load``). Figures, not a timed test; ``tests/integration/test_chaos.py``
runs the same harness at CI size.

Each worker slot takes kill items from one queue: a kill point (``tests/faults/kill_points.py``,
``OMS_TEST_KILL_AT=<step>:<n>``) the worker is started with, or a SIGKILL at a random moment. A
worker killed at its point (exit 137 with the point's line in its log) is restarted with the next
item, as the same member (its data dir and instance id: it takes its partitions back) or as a new
one (its partitions move). A point that does not fire in time (the slot owns no partition where
the step happens) is SIGKILLed, counted as not fired and tried again on another slot.

At the end the load stops, every worker is restarted without a kill point, and the run waits for
every order to end (``bench.chaos_checks``); then it prints, as JSON, the orders, cancellations,
holds and kills, and the counts of ``oms audit`` and of the harness: oversold units, holds without a
live owner, orders without an end state, duplicate allocations.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos_checks import EndCounts, end_counts
from bench.chaos_load import ChaosLoad
from bench.kafka import broker
from tests.faults.kill_points import EXIT_KILLED, STEPS
from tests.integration.conftest import NETWORK_YAML
from tests.worker_process import FAULTS, Events, WorkerProcess, restart_if_stalled

ENV = {
    "PYTHONPATH": FAULTS,
    "OMS_COMPILED": "0",  # kill points wrap methods: the mypyc build's callers would not see them
    "OMS_SESSION_TIMEOUT_S": "6",
    "OMS_STALL_AFTER_S": "10",
    "OMS_HOLD_EXPIRY_CHECK_S": "0.5",
    "OMS_SOURCING_REPLY_TIMEOUT_S": "5",
    "OMS_PREORDER_GRACE_H": "0.005",  # 18 s: a preorder whose goods never came ends within the run
}
SAGA_STEPS = ("planned", "stored", "reserves_sent", "replied", "allocated", "fulfil", "release", "cancel")
"""The issue's steps, on the order owner's side; the ledger's are the rest of ``STEPS``."""
TRIES = 3
"""Slots a kill point is tried on before it counts as never fired."""


@dataclass
class Kill:
    step: str | None
    """A kill point, or None: a SIGKILL at a random moment."""
    n: int = 1
    """Its passage to die at."""
    tries: int = 0


@dataclass
class Kills:
    by_step: Counter[str] = field(default_factory=Counter)
    not_fired: Counter[str] = field(default_factory=Counter)
    random: int = 0
    other_exits: Counter[str] = field(default_factory=Counter)
    """Exits nobody asked for, by status (75: a record not delivered)."""
    restarts_same_identity: int = 0
    restarts_new_identity: int = 0


@dataclass
class ChaosResult:
    workers: int
    kills: Kills
    load: dict[str, Any]
    end: EndCounts
    settled_in_s: float = 0.0
    seconds: float = 0.0

    def report(self) -> dict[str, Any]:
        """The figures, the issue's four counts first."""
        end = self.end
        return {
            "oversold_units": end.oversold_units,
            "holds_without_live_owner": end.holds_without_live_owner,
            "orders_without_end_state": end.orders_without_end_state,
            "duplicate_allocations": end.duplicate_allocations,
            "orders": self.load["orders"],
            "cancellations": self.load["cancellations"],
            "holds": sum(self.load["holds"].values()),
            "kills": sum(self.kills.by_step.values()) + self.kills.random,
            "kills_by_step": dict(self.kills.by_step),
            "kill_points_not_fired": dict(self.kills.not_fired),
            "random_kills": self.kills.random,
            "other_exits": dict(self.kills.other_exits),
            "restarts": {
                "same_identity": self.kills.restarts_same_identity,
                "new_identity": self.kills.restarts_new_identity,
            },
            "workers": self.workers,
            "load": self.load,
            "end": {k: v for k, v in asdict(end).items() if k != "examples"},
            "examples": end.examples,
            "settled_in_s": round(self.settled_in_s, 1),
            "seconds": round(self.seconds, 1),
        }


def kill_plan(rng: random.Random, rounds: int, steps: tuple[str, ...], random_kills: int) -> list[Kill]:
    """Every step once per round, at its 1st to 3rd passage, with the random kills spread among them."""
    plan = [Kill(step, rng.randint(1, 3)) for _ in range(rounds) for step in rng.sample(steps, len(steps))]
    for _ in range(random_kills):
        plan.insert(rng.randrange(len(plan) + 1), Kill(None))
    return plan


class ChaosRun:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        work: Path,
        plan: list[Kill],
        *,
        workers: int = 3,
        seed: int = 5,
        preorder_share: float = 0.0,
        edit_share: float = 0.15,
    ) -> None:
        self.bootstrap, self.prefix, self.work = bootstrap, prefix, work
        self.rng = random.Random(seed)
        self.events = Events(bootstrap, prefix)
        self.items: queue.Queue[Kill] = queue.Queue()
        for kill in plan:
            self.items.put(kill)
        self.kills = Kills()
        self.current: list[WorkerProcess | None] = [None] * workers
        self.generations = [0] * workers
        self.armed: list[Kill | None] = [None] * workers
        self.log_from = [0] * workers
        """Where the slot's worker log was when it last started: its kill point's line comes after."""
        self.load = ChaosLoad(
            self.events, self.live_workers, seed + 1, preorder_share=preorder_share, edit_share=edit_share
        )
        self.fire_timeout_s = 60.0
        self._lock = threading.Lock()

    def live_workers(self) -> list[WorkerProcess]:
        return [
            w for w in self.current if w is not None and w.process is not None and w.process.poll() is None
        ]

    # --- the run ----------------------------------------------------------------------------------

    def run(self, settle_timeout_s: float = 240) -> ChaosResult:
        started = time.monotonic()
        slots = [threading.Thread(target=self._slot, args=(i,)) for i in range(len(self.current))]
        try:
            self._start(0, self._next())  # it creates the topics: the network and stock go after
            self.events.config(NETWORK_YAML)
            self.load.stock_up(units=10)
            for slot in slots:
                slot.start()
            self.load.start()
            for slot in slots:
                slot.join()
            self.load.stop()
            settling = time.monotonic()
            end = self._settle(settle_timeout_s)
            settled_in = time.monotonic() - settling
        finally:
            self.load.stop()
            for worker in self.current:
                if worker is not None:
                    worker.stop()
        load = self.load.figures.as_dict()
        return ChaosResult(len(self.current), self.kills, load, end, settled_in, time.monotonic() - started)

    def _next(self) -> Kill | None:
        try:
            return self.items.get_nowait()
        except queue.Empty:
            return None

    def _slot(self, index: int) -> None:
        """Kill items one after the other on this slot; then one last start without a kill point."""
        worker = self.current[index]
        item = self.armed[index] if worker is not None else self._next()
        if worker is None:
            worker = self._start(index, item)
        while item is not None:
            self._await_kill(index, worker, item)
            item = self._next()
            worker = self._restart(index, worker, item)

    # --- workers ----------------------------------------------------------------------------------

    def _start(self, index: int, kill: Kill | None, worker: WorkerProcess | None = None) -> WorkerProcess:
        """Start (or start again) the slot's worker, armed with ``kill``'s point if it has one."""
        if worker is None:
            data_dir = self.work / f"w{index}-{self.generations[index]}"
            worker = WorkerProcess(self.bootstrap, self.prefix, data_dir, extra_env=ENV)
        worker.env.pop("OMS_TEST_KILL_AT", None)
        if kill is not None and kill.step is not None:
            worker.env["OMS_TEST_KILL_AT"] = f"{kill.step}:{kill.n}"
        self.armed[index] = kill
        self.log_from[index] = worker.log_path.stat().st_size if worker.log_path.exists() else 0
        self.current[index] = worker
        try:
            worker.start(timeout_s=180)
        except AssertionError:
            if worker.process is not None and worker.process.poll() is None:
                raise  # not ready in time, and alive: something else is wrong
            # Died while starting (its kill point fired early, say): _await_kill sorts it out.
        return worker

    def _restart(self, index: int, worker: WorkerProcess, kill: Kill | None) -> WorkerProcess:
        worker.stop(signal.SIGKILL)  # already dead unless its point never fired
        with self._lock:
            if self.rng.random() < 0.5:
                self.kills.restarts_same_identity += 1
                return self._start(index, kill, worker)
            self.kills.restarts_new_identity += 1
            self.generations[index] += 1
        return self._start(index, kill)

    def _await_kill(self, index: int, worker: WorkerProcess, kill: Kill) -> None:
        assert worker.process is not None
        if kill.step is None:
            time.sleep(self.rng.uniform(2, 10))
            if worker.process.poll() is None:
                worker.stop(signal.SIGKILL)
                with self._lock:
                    self.kills.random += 1
                return
        try:
            status: int | None = worker.process.wait(self.fire_timeout_s)
        except Exception:  # subprocess.TimeoutExpired: the step did not happen on this slot in time
            status = None
        log = worker.log_path.read_bytes()[self.log_from[index] :].decode(errors="replace")
        with self._lock:
            self._count_exit(kill, status, log)

    def _count_exit(self, kill: Kill, status: int | None, log: str) -> None:
        if status == EXIT_KILLED and kill.step is not None and f"KILL POINT {kill.step}@" in log:
            self.kills.by_step[kill.step] += 1
            return
        if status is None:
            self.kills.random += 1  # the slot SIGKILLs it before its next start: a moment nobody chose
        else:
            self.kills.other_exits[str(status)] += 1
        if kill.step is None:
            return
        kill.tries += 1
        if kill.tries < TRIES:
            self.items.put(kill)  # on another slot (or this one, later)
        else:
            self.kills.not_fired[kill.step] += 1

    # --- the end ----------------------------------------------------------------------------------

    def _settle(self, timeout_s: float) -> EndCounts:
        """Every worker up without a kill point; then counts until clean or ``timeout_s``."""
        for index, worker in enumerate(self.current):
            if worker is not None and (worker.process is None or worker.process.poll() is not None):
                self._start(index, None, worker)
        deadline = time.monotonic() + timeout_s
        while True:
            for worker in self.current:
                if worker is not None:
                    restart_if_stalled(worker)
            live = self.live_workers()
            counts = end_counts(self.bootstrap, self.prefix, self.load, live)
            waited = timeout_s - (deadline - time.monotonic())
            shown = "clean" if counts.clean else counts.examples[:3]
            print(f"settling, {waited:.0f} s: {shown}", file=sys.stderr, flush=True)
            if counts.clean or time.monotonic() > deadline:
                return counts
            time.sleep(3)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="kills at every step, per round")
    parser.add_argument("--random-kills", type=int, default=None, help="SIGKILLs at random (4 a round)")
    parser.add_argument("--steps", default=",".join(STEPS), help="the kill points to aim at (all)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--settle-s", type=float, default=240, help="longest wait for every order to end")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--preorders", type=float, default=0.0, help="share of the orders placed as preorders (0: none)"
    )
    parser.add_argument(
        "--edits", type=float, default=0.15, help="chance per order placed that a recent order is edited"
    )
    parser.add_argument(
        "--bootstrap", default=os.environ.get("OMS_KAFKA_BOOTSTRAP"), help="a broker (else a private one)"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    random_kills = args.random_kills if args.random_kills is not None else 4 * args.rounds
    steps = tuple(step for step in args.steps.split(",") if step)
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        parser.error(f"unknown steps {unknown}; known: {', '.join(STEPS)}")
    plan = kill_plan(rng, args.rounds, steps, random_kills)
    work = Path(tempfile.mkdtemp(prefix="oms-chaos-"))
    with broker(args.bootstrap) as (bootstrap, _):
        prefix = f"chaos{uuid.uuid4().hex[:6]}."
        run = ChaosRun(
            bootstrap,
            prefix,
            work,
            plan,
            workers=args.workers,
            seed=args.seed,
            preorder_share=args.preorders,
            edit_share=args.edits,
        )
        result = run.run(settle_timeout_s=args.settle_s)
    report = result.report()
    if result.end.clean:
        shutil.rmtree(work, ignore_errors=True)
    else:
        report["logs"] = str(work)  # the workers' logs, kept to look into (and the topics)
        report["topic_prefix"] = prefix
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
