"""An ``oms worker`` subprocess for the bench: start, scrape /metrics, read its memory, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.data import REPO_ROOT
from bench.kafka import free_port


class Worker:
    def __init__(self, bootstrap: str, prefix: str, app_id: str, data_dir: Path, log_path: Path,
                 partitions: int, extra_env: dict[str, str] | None = None,
                 module: str = "oms_streams.cli") -> None:
        self.module = module
        self.port = free_port()
        self.log_path = log_path
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "OMS_KAFKA_BOOTSTRAP": bootstrap, "OMS_TOPIC_PREFIX": prefix, "OMS_APP_ID": app_id,
            "OMS_DATA_DIR": str(data_dir), "OMS_WEB_PORT": str(self.port), "OMS_PARTITIONS": str(partitions),
            "OMS_LOG_LEVEL": "WARNING", **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 90) -> Worker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "worker"], cwd=REPO_ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if self.scrape() is not None:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker did not serve /metrics within {timeout_s}s (log {self.log_path})")

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"worker exited with {self.process.returncode}:\n{tail}")

    def stop(self, timeout_s: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def scrape(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                return str(response.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return None

    def metric(self, name: str, text: str | None = None, **labels: str) -> float:
        text = text if text is not None else self.scrape()
        return metric_sum(text or "", name, **labels)

    def memory(self) -> dict[str, float]:
        """VmRSS / VmHWM (peak RSS) of the worker process, in MiB."""
        out: dict[str, float] = {}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024
        except OSError:
            pass
        return out


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts {le: count} of a Prometheus histogram."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """Quantile of the observations between two scrapes, interpolated within buckets (as PromQL does)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_bound, prev_count = bound, count
    return prev_bound
