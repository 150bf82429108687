"""The order day's command-line options, kept free of Kafka and model imports so ``oms`` starts fast."""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parents[2] / "deploy" / "demo"
DEMO_NETWORK = DEMO_DIR / "network.yaml"
DEMAND_SHAPE = DEMO_DIR / "demand_shape.json"
"""Real daily sales shapes of M5 stores, derived by ``oms_streams.tools.demand_shape``."""
HOURLY_SHAPE = DEMO_DIR / "hourly_shape.json"
"""Hour-of-day curves of webshop orders (Olist) and store tills, by ``oms_streams.tools.hourly_shape``."""
LATE_PICK_SHARE = 0.05
"""Share of allocations whose location starts the pick after its latest pick start."""
FIRST_LATE_PICK_WITHIN_S = 300.0
"""The first allocation whose pick must start within this many seconds is picked late."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The order day's options (``python -m oms_streams.tools.demo_day`` and ``oms demo day``)."""
    parser.add_argument("--orders-per-minute", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=0.0, help="0: until Ctrl-C")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--order-prefix", default="ORDER-")
    parser.add_argument("--web-url", default="http://127.0.0.1:6066")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies every fulfilment delay")
    parser.add_argument("--network", type=Path, default=DEMO_NETWORK)
    parser.add_argument(
        "--hours",
        default=str(HOURLY_SHAPE),
        metavar="HOURS.json|flat",
        help="orders follow the hour of day of real webshop orders (default: deploy/demo/hourly_shape.json, "
        "--orders-per-minute is then the day's mean); flat: the same rate at every hour",
    )
    parser.add_argument(
        "--late-picks",
        type=float,
        default=LATE_PICK_SHARE,
        help=f"share of allocations picked after their latest pick start (default {LATE_PICK_SHARE})",
    )
    parser.add_argument(
        "--first-late-pick-within-s",
        type=float,
        default=FIRST_LATE_PICK_WITHIN_S,
        help="the first allocation whose pick is due within this many seconds is picked late; 0: off "
        f"(default {FIRST_LATE_PICK_WITHIN_S:g})",
    )
