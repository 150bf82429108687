"""py-spy sampling of the worker, and a breakdown of its busy time by pipeline stage.

``Profiler(pid).start()`` / ``.stop()`` record collapsed stacks (``py-spy record --format raw``);
``breakdown(path)`` classifies every sample by what the worker was doing at that moment.
Idle samples (the event loop waiting in epoll) are not recorded, so percentages are of busy time.
Run ``python -m bench.profile FILE.txt`` to print a breakdown of an existing recording.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Inside LedgerRuntime.apply_batch: the first rule whose needle is in a frame below it wins.
_IN_RUNTIME = (
    ("decode: JSON + pydantic + commands", ("adapters/stock.py", "pydantic")),
    ("domain: visibility + signature", ("domain/visibility.py",)),
    ("domain: ledger apply", ("domain/ledger.py", "domain/inventory.py")),
    ("encode availability record", ("adapters/availability.py",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("table writes/reads (+changelog send)", ("faust/tables", "faust/stores", "rocksdict", "orjson")),
    ("produce availability (send_soon)", ("faust/topics", "faust/transport/producer", "aiokafka/producer",
                                          "send_availability")),
)
# Outside the runtime: the first rule whose needle is anywhere in the stack (leaf first) wins.
_OUTSIDE = (
    ("producer: aiokafka/faust send path", ("aiokafka/producer", "faust/transport/producer",
                                            "faust/transport/drivers/aiokafka.py:send")),
    ("consumer: aiokafka fetch + record parsing", ("aiokafka/consumer", "aiokafka/record",
                                                   "aiokafka/protocol",
                                                   "aiokafka/conn", "kafka/record")),
    ("faust: changelog/tables bookkeeping", ("faust/tables", "faust/stores")),
    ("faust: stream/agent/consumer machinery", ("faust/", "mode/")),
    ("web: /metrics scrape", ("aiohttp", "prometheus_client")),
    ("asyncio event loop (task switches, callbacks, timers)", ("asyncio/", "selectors.py")),
)


_OUTER = ("<frozen runpy>", "oms_streams/cli.py", "mode/worker.py", "bench/patched_worker.py")


class Profiler:
    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> str | None:
        exe = Path(sys.executable).parent / "py-spy"
        return str(exe) if exe.exists() else shutil.which("py-spy")

    def start(self) -> bool:
        exe = self.available()
        if exe is None:
            return False
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--nonblocking",
             "--format", "raw", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return True

    def stop(self) -> Path | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.out if self.out.exists() else None


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def classify(frames: list[str]) -> str:
    if "_SelectorSocketTransport.write" in frames[-1] or "EpollSelector.select" in frames[-1]:
        # Syscalls. On a loaded host, loopback writes wake the broker and get the worker preempted.
        return "syscalls: socket writes + epoll (produce/fetch requests)"
    runtime = [i for i, f in enumerate(frames) if "ledger_runtime.py" in f]
    if runtime:
        below = frames[runtime[0] + 1:]
        for label, needles in _IN_RUNTIME:
            if any(n in f for f in below for n in needles):
                return label
        return "runtime glue (ledger_runtime.py itself)"
    for label, needles in _IN_RUNTIME[:4]:  # partial stacks (py-spy lost the outer frames)
        if any(n in f for f in frames for n in needles):
            return label
    # The process's outer frames (runpy, cli, mode's Worker running the loop) say nothing.
    inner = [f for f in frames if not any(n in f for n in _OUTER)]
    for label, needles in _OUTSIDE:
        if any(n in f for f in reversed(inner) for n in needles):
            return label
    return "other"


def _func(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (file.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def breakdown(path: Path, top: int = 20) -> dict[str, Any]:
    categories: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in _frames(stack) if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        categories[classify(frames)] += count
        for name in {_func(f) for f in frames}:
            inclusive[name] += count
        leaf[_func(frames[-1])] += count

    def pct(counter: Counter[str], n: int | None = None) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)]

    return {"samples": total, "categories": pct(categories), "inclusive_top": pct(inclusive, top),
            "self_top": pct(leaf, top)} if total else {"samples": 0}


def render(report: dict[str, Any]) -> str:
    if not report.get("samples"):
        return "  (no samples)"
    lines = [f"  {report['samples']} busy samples"]
    lines.append("  by stage:")
    lines += [f"    {p:5.1f}%  {k}" for k, p in report["categories"]]
    lines.append("  top functions, inclusive:")
    lines += [f"    {p:5.1f}%  {k}" for k, p in report["inclusive_top"]]
    lines.append("  top functions, self:")
    lines += [f"    {p:5.1f}%  {k}" for k, p in report["self_top"]]
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(arg)
        print(render(breakdown(Path(arg), top=30)))
