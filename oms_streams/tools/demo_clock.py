"""``OMS_CLOCK`` for a demo: a retail day in minutes (docs/demo-clock.md).

``python -m oms_streams.tools.demo_clock --network FILE --speed 60`` prints the setting every process
of the demo shares: business time starts at 06:00 today in the zone of most of the network's stores
(or at ``--start``), anchored at this wall-clock instant, running ``--speed`` times as fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from oms_streams.clock import ClockError, parse
from oms_streams.domain.calendar import zone
from oms_streams.streaming.config_publisher import load_network_config
from oms_streams.tools.demo_options import DEMO_NETWORK
from oms_streams.tools.hourly_shape import web_zone

OPENING_HOUR = 6
"""A demo day starts before the first stores open."""


def day_start(tz: str, wall_s: float, hour: int = OPENING_HOUR) -> datetime:
    """``hour`` o'clock of the local day of ``wall_s`` in ``tz``."""
    local = datetime.fromtimestamp(wall_s, zone(tz))
    return local.replace(hour=hour, minute=0, second=0, microsecond=0)


def demo_clock(network: Path, speed: float, start: str | None = None, wall_s: float | None = None) -> str:
    """The ``OMS_CLOCK`` text (checked: it parses)."""
    wall_s = time.time() if wall_s is None else wall_s
    stores = [loc for loc in load_network_config(network).locations if loc.type == "store"]
    begin = datetime.fromisoformat(start) if start else day_start(web_zone(stores), wall_s)
    text = f"{begin.isoformat()}@{wall_s:.3f}*{speed:g}"
    parse(text)  # raises ClockError with the expected form
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oms_streams.tools.demo_clock", description=__doc__)
    parser.add_argument("--network", type=Path, default=DEMO_NETWORK)
    parser.add_argument("--speed", type=float, required=True, help="business seconds per wall second")
    parser.add_argument("--start", help="business start, ISO 8601 with its offset (default: 06:00 today)")
    args = parser.parse_args(argv)
    try:
        print(demo_clock(args.network, args.speed, args.start))
    except (ClockError, ValueError) as error:
        print(f"demo_clock: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
