"""``python -m bench.takeovers [--rounds 100]``: the takeover loop of the tests, at length.

Three workers under a steady load of stock movements (a shop that never oversells and re-sends now
and then) and orders (two a second, through the faust agents: placement, sourcing, replies); each
round SIGKILLs and restarts one, stops and restarts one, replaces one by a new member, or lets a
fourth join and leave. At the end it checks that every order has an outcome, that the published
availability of the SKUs not ordered equals a recomputation from the event log and that ``oms audit``
is clean, and prints the rounds, the partitions taken over, the stalls seen (``/health``
"stalled"), the faust partitions read again by faust fix 4 before they could stall, the batches and
records faust fix 7 kept from being dropped, and the time.
Figures only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path

from bench.kafka import broker
from tests.integration.test_takeovers import takeover_loop
from tests.worker_process import Events


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.takeovers", description=__doc__)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--bootstrap", default=None, help="an existing broker (else a private one)")
    args = parser.parse_args()
    with broker(args.bootstrap) as (bootstrap, _), tempfile.TemporaryDirectory() as work:
        prefix = f"takeover{uuid.uuid4().hex[:6]}."
        result = takeover_loop(
            bootstrap, prefix, Path(work), Events(bootstrap, prefix), args.rounds, args.seed
        )
    print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
