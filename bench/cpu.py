"""How much of the machine a phase got: CPU used by our processes vs everything else.

The bench shares its host with whatever else runs there (other brokers, test suites). A phase
records system-wide busy CPU from /proc/stat and the CPU of our own processes (bench, worker,
broker), so the report can say how many cores other processes took while we measured.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _system_busy_s() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


def _proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def broker_pids(bootstrap: str) -> list[int]:
    """JVMs whose server.properties lives in a data dir named after the bootstrap port."""
    port = bootstrap.rsplit(":", 1)[-1]
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"kafka.Kafka" in cmd and f"kafka-{port}/".encode() in cmd:
            pids.append(int(entry.name))
    return pids


class CpuWindow:
    def __init__(self, ours: list[int]) -> None:
        self.ours = list(ours)
        self.t0 = time.monotonic()
        self.sys0 = _system_busy_s()
        self.own0 = {pid: _proc_cpu_s(pid) for pid in self.ours}

    def result(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.t0, 1e-6)
        system = _system_busy_s() - self.sys0
        own = {pid: _proc_cpu_s(pid) - start for pid, start in self.own0.items()}
        ours = sum(own.values())
        return {
            "wall_s": round(wall, 2),
            "cores_ours": round(ours / wall, 2),
            "cores_others": round(max(0.0, system - ours) / wall, 2),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
