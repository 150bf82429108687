"""``python -m bench.promise_backtest``: the promise backtest on 100k generated shipments, against 60 s.

Generates ``--orders`` shipments over the Walmart network (``oms promise history``) into a temporary
file, timed on its own, then runs the backtest (``oms promise backtest``) on it: reading and parsing
the CSV, then the replay, each timed. Prints rows/s, the elapsed times, the report's headline figures
and the ratio to the 60 s target (aim: < 15 s). Figures only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from oms_streams.tools.backtest import BacktestConfig, read_history, run_backtest
from oms_streams.tools.history import DEFAULT_NETWORK, write_history

TARGET_S = 60.0
AIM_S = 15.0


def _headline(name: str, figures: dict[str, Any]) -> str:
    lead = figures["lead_time"]
    return (
        f"{name:28}on time {figures['on_time_rate']:.1%}, lead median {lead['median_hours']:.1f} h "
        f"({lead['median_days']:.2f} d), slack median {figures['slack_hours_median']:.1f} h"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.promise_backtest", description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quantile", type=float, default=0.95)
    parser.add_argument("--min-samples", type=int, default=30)
    parser.add_argument("--network", type=Path, default=DEFAULT_NETWORK)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="oms-bench-promise-") as tmp:
        path = Path(tmp) / "deliveries.csv"
        started = time.perf_counter()
        written = write_history(path, args.orders, seed=args.seed, network_path=args.network)
        generate_s = time.perf_counter() - started
        size_mib = path.stat().st_size / 2**20

        started = time.perf_counter()
        history = read_history(path)
        parse_s = time.perf_counter() - started
        report = run_backtest(history, BacktestConfig(quantile=args.quantile, min_samples=args.min_samples))
        replay_s = report.elapsed_s
        total_s = parse_s + replay_s
        report.source_file = f"{written:,} generated shipments ({size_mib:.1f} MiB)"
        report.elapsed_s = total_s

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = report.to_dict()
    model, business = data["model"], data["estimated_delivery"]
    print(f"promise backtest bench: Python {platform.python_version()}, {platform.machine()}")
    print(
        f"{'generate (history)':28}{generate_s:8.2f} s  {written / generate_s:>10,.0f} rows/s  "
        f"{size_mib:.1f} MiB"
    )
    print(f"{'read + parse CSV':28}{parse_s:8.2f} s  {history.rows / parse_s:>10,.0f} rows/s")
    print(f"{'replay (learn + promise)':28}{replay_s:8.2f} s  {history.rows / replay_s:>10,.0f} rows/s")
    print(
        f"{'backtest total':28}{total_s:8.2f} s  {history.rows / total_s:>10,.0f} rows/s  "
        f"target {TARGET_S:.0f} s: {'met' if total_s < TARGET_S else 'NOT met'} "
        f"({total_s / TARGET_S:.2f} of it; aim < {AIM_S:.0f} s: {'met' if total_s < AIM_S else 'not met'})"
    )
    print(f"{'peak RSS':28}{rss_mib:8.0f} MiB")
    print(_headline(f"model q={args.quantile}", model))
    print(f"{'':28}transit from " + " / ".join(f"{k} {v:.1%}" for k, v in model["transit_source"].items()))
    if business is not None:
        print(_headline("estimated_delivery", business))
    print()
    print(report.render())


if __name__ == "__main__":
    main()
