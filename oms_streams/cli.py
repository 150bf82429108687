"""The ``oms`` command: run a worker, manage topics and config, generate docs, simulate, watch, audit and
report."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from oms_streams import clock
from oms_streams.config import Settings
from oms_streams.tools.demo_options import DEMAND_SHAPE, HOURLY_SHAPE
from oms_streams.tools.demo_options import add_arguments as add_demo_day_arguments


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    from oms_streams.api.http import register_views
    from oms_streams.streaming.admin import ensure_topics
    from oms_streams.streaming.app import create_app

    simulated = clock.current()  # a malformed OMS_CLOCK stops the worker here, in one line
    created = ensure_topics(settings)
    if created:
        print(f"created topics: {', '.join(created)}", flush=True)
    worker = create_app(settings)
    register_views(worker)
    gc.set_threshold(*settings.gc_thresholds)
    gc.freeze()  # what start-up built lives as long as the process: keep it out of every collection
    print(
        f"oms-streams worker {settings.app_id}: Kafka {settings.kafka_bootstrap}, "
        f"HTTP http://{settings.web_host}:{settings.web_port}"
        + (
            f", business time on OMS_CLOCK={simulated} ({simulated.speed:g} x the wall clock)"
            if simulated
            else ""
        ),
        flush=True,
    )
    runner = faust.Worker(
        worker.app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=True,
    )
    # With a spinner faust lowers the root logger to DEBUG (the spinner ticks on every record), so
    # every debug call of aiokafka on the hot path would build a log record only to drop it.
    runner.spinner = None
    runner.execute_from_commandline()
    return 0


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.streaming.admin import ensure_topics
    from oms_streams.streaming.topics import ALL_TOPICS

    if args.action == "create":
        created = ensure_topics(settings)
        print("created: " + (", ".join(created) or "nothing, all exist"))
    else:
        for spec in ALL_TOPICS:
            print(
                f"{settings.topic(spec.name):40} key={spec.key:14} partitions={spec.partitions(settings):<3} "
                f"{'compacted' if spec.compacted else 'delete':9} {spec.description}"
            )
    return 0


def _config_publish(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.streaming.config_publisher import publish_network_config

    counts = publish_network_config(settings, Path(args.file))
    print(f"published {counts['locations']} locations and {counts['rules']} rules document(s)")
    return 0


def _generate(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.catalogue import write_generated

    for path in write_generated(Path(args.root)):
        print(f"wrote {path}")
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.demand_shape import load_shape
    from oms_streams.tools.hourly_shape import load_hours
    from oms_streams.tools.simulator import run_simulation

    demand = None if args.demand == "flat" else load_shape(Path(args.demand))
    hours = None if args.hours == "flat" else load_hours(Path(args.hours))
    network = Path(args.network) if args.network else None
    run_simulation(
        settings,
        rate=args.rate,
        seconds=args.seconds,
        seed=args.seed,
        network=network,
        demand=demand,
        hours=hours,
    )
    return 0


def _demo_day(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.demo_day import options_from, run_demo_day

    run_demo_day(settings, options_from(args), network=args.network)
    return 0


def _watch(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.watch import watch_availability

    watch_availability(settings, args.skus, channel=args.channel)
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.audit import run_audit

    report = run_audit(settings, timeout_s=args.timeout_s, settle_s=args.settle_s)
    print(report.to_json() if args.json else report.render())
    return 0 if report.clean else 1


def _report(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.report import Window, parse_instant, write_day_report

    update: dict[str, str] = {}
    if args.bootstrap:
        update["kafka_bootstrap"] = args.bootstrap
    if args.prefix is not None:
        update["topic_prefix"] = args.prefix
    if update:
        settings = settings.model_copy(update=update)
    window = Window(
        since=parse_instant(args.since) if args.since else None,
        until=parse_instant(args.until) if args.until else None,
    )
    report = write_day_report(settings, Path(args.out), window, timeout_s=args.timeout_s)
    o = report.orders
    print(
        f"wrote {args.out}: {o.orders} orders, {_per(o.parcels_per_order)} parcels per order, "
        f"{report.promise.completed} delivered or collected, {report.returns.receipts} return receipts"
    )
    return 0


def _per(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_report(table: str, as_json: str, json_to: str | None) -> int:
    """A backtest's table, and its JSON to a file or (with ``-``) to stdout, the table then on stderr
    so stdout stays pure JSON."""
    print(table, file=sys.stderr if json_to == "-" else sys.stdout)
    if json_to == "-":
        print(as_json)
    elif json_to:
        Path(json_to).write_text(as_json + "\n")
    return 0


def _promise_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.backtest import RELIABILITY_LEVELS, BacktestConfig, backtest_file, report_json
    from oms_streams.tools.backtest_report import write_plots

    config = BacktestConfig(
        quantile=args.quantile,
        min_samples=args.min_samples,
        warmup_days=args.warmup_days,
        method=args.method,
        half_life_days=args.half_life_days or None,
        pooling=args.pooling,
        calibration_rate=args.calibration_rate,
        in_transit=not args.no_in_transit,
        reliability_levels=RELIABILITY_LEVELS if args.plot else (),
    )
    report = backtest_file(Path(args.deliveries), config, default_timezone=args.timezone)
    if args.plot:
        print(f"wrote {write_plots(report, Path(args.plot))}", file=sys.stderr)
    return _print_report(report.render(), report_json(report), args.json)


def _promise_history(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.history import DEFAULT_NETWORK, write_history

    network = Path(args.network) if args.network else DEFAULT_NETWORK
    written = write_history(Path(args.out), args.orders, seed=args.seed, network_path=network)
    print(f"wrote {written:,} shipments to {args.out}")
    return 0


def _forecast_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from oms_streams.tools.forecast_backtest import DEFAULT_DATA, backtest_file, report_json

    report = backtest_file(Path(args.data) if args.data else DEFAULT_DATA, test_days=args.test_days)
    return _print_report(report.render(), report_json(report), args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oms", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a stream worker with its HTTP API").set_defaults(run=_worker)
    topics = sub.add_parser("topics", help="create or list the topics")
    topics.add_argument("action", choices=["create", "list"])
    topics.set_defaults(run=_topics)
    config = sub.add_parser("config", help="publish locations and visibility rules from YAML")
    config.add_argument("action", choices=["publish"])
    config.add_argument("file")
    config.set_defaults(run=_config_publish)
    generate = sub.add_parser("generate", help="write schemas/ and topologies/ from the code")
    generate.add_argument("--root", default=".")
    generate.set_defaults(run=_generate)
    simulate = sub.add_parser("simulate", help="play ERP receipts, POS sales and a supplier feed")
    simulate.add_argument("--rate", type=float, default=20.0, help="events per second")
    simulate.add_argument("--seconds", type=float, default=0, help="0 runs until Ctrl-C")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--network", metavar="NETWORK.yaml", help="default: deploy/demo/network.yaml")
    simulate.add_argument(
        "--demand",
        default=str(DEMAND_SHAPE),
        metavar="SHAPE.json|flat",
        help="till sales shaped on real daily sales (default: deploy/demo/demand_shape.json); "
        "flat: every store alike, every day",
    )
    simulate.add_argument(
        "--hours",
        default=str(HOURLY_SHAPE),
        metavar="HOURS.json|flat",
        help="till sales follow the hour of each store's local day, inside its opening hours "
        "(default: deploy/demo/hourly_shape.json); flat: the same at every hour, open or not",
    )
    simulate.set_defaults(run=_simulate)
    demo = sub.add_parser("demo", help="the demo's simulated systems")
    demo_actions = demo.add_subparsers(dest="action", required=True)
    day = demo_actions.add_parser(
        "day",
        help="webshop orders with their fulfilment, deliveries, cancellations and returns",
        description="Runs next to `oms simulate` against a worker's HTTP API and the public topics.",
    )

    add_demo_day_arguments(day)
    day.set_defaults(run=_demo_day)
    watch = sub.add_parser("watch", help="print availability changes of SKUs as they are published")
    watch.add_argument("skus", nargs="*")
    watch.add_argument("--channel", default="webshop")
    watch.set_defaults(run=_watch)
    audit = sub.add_parser(
        "audit",
        help="reconcile the stock ledgers and the sourcing results against the event log",
        description=(
            "Reads the stock, order and sourcing topics and the stock_positions changelog from the "
            "beginning to their current end, then checks: ledger rows (negative, over_reserved, "
            "holds_mismatch), on hand against a replay of the event log (on_hand_mismatch), holds "
            "against live allocations (orphan_hold, unheld_allocation), one outcome per order and round "
            "(missing_outcome, conflicting_outcomes) and allocations against outcomes "
            "(conflicting_allocation, unlisted_allocation, over_allocated, missing_allocation). "
            "Exit status 0 when clean, 1 with findings, 2 when the topics could not be read."
        ),
    )
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument("--timeout-s", type=float, default=30.0, help="give up reading after this")
    audit.add_argument(
        "--settle-s",
        type=float,
        default=10.0,
        help="orders placed and outcomes published this recently count as in flight, not as findings",
    )
    audit.set_defaults(run=_audit)
    report = sub.add_parser(
        "report",
        help="write an HTML report of a run from its topics",
        description=(
            "Reads the public topics (allocations, sourcing outcomes, placements, fulfilment events, "
            "orders at risk, cancellation outcomes, processed returns, availability, dead letters, "
            "locations) from the beginning to their current end, with no consumer group, and writes "
            "one self-contained HTML page: parcels per order, km and CO2e against the nearest-DC and "
            "per-line-nearest baselines, promise on time and lead times, at-risk causes, "
            "cancellations, returns km avoided, store protection, dead letters. Exit status 2 when "
            "the topics could not be read."
        ),
    )
    report.add_argument("--bootstrap", help="brokers (default: OMS_KAFKA_BOOTSTRAP)")
    report.add_argument("--prefix", help="topic prefix (default: OMS_TOPIC_PREFIX)")
    report.add_argument(
        "--since", metavar="ISO", help="orders placed and events at or after (UTC without an offset)"
    )
    report.add_argument("--until", metavar="ISO", help="orders placed and events before")
    report.add_argument("--out", required=True, metavar="REPORT.html")
    report.add_argument("--timeout-s", type=float, default=60.0, help="give up reading after this")
    report.set_defaults(run=_report)
    promise = sub.add_parser("promise", help="backtest delivery promises on shipment history")
    actions = promise.add_subparsers(dest="action", required=True)
    backtest = actions.add_parser(
        "backtest",
        help="replay delivered shipments and score the promises the model would have made",
        description=(
            "Orders are replayed in placed_at order, learning only from shipments handed to the "
            "carrier or delivered strictly before each was placed, with the live estimator and the "
            "live promise rule (lead, the default: whole local days from order to delivery per lane, "
            "lane -> distance band -> service pooling, recency by order day, parcels still in "
            "transit counted as censored). sum, for comparison only: handling quantile of the origin "
            "+ transit quantile of the lane. On time: "
            "delivered_at <= the end of the promised day. Times without an offset are read in the "
            "origin's zone (origin_timezone column, else the BR state's zone, else --timezone). Per "
            "quarter figures and the same for estimated_delivery when the file has it. Unusable rows "
            "are counted by reason."
        ),
    )
    backtest.add_argument("--deliveries", required=True, metavar="FILE.csv[.gz]")
    backtest.add_argument("--quantile", type=float, default=0.95, help="the confidence promised")
    backtest.add_argument(
        "--min-samples", type=int, default=30, help="history a level needs to count as evidence"
    )
    backtest.add_argument(
        "--warmup-days", type=float, default=0.0, help="first days teach but are not scored"
    )
    backtest.add_argument(
        "--method",
        choices=("lead", "sum"),
        default="lead",
        help="lead (the live promise): quantile of whole days from order to delivery per lane; "
        "sum: handling + transit quantiles (comparison only; two quantiles added)",
    )
    backtest.add_argument(
        "--no-in-transit",
        action="store_true",
        help="lead: learn from delivered parcels only (not the live rule; for comparison)",
    )
    backtest.add_argument(
        "--half-life-days", type=float, default=60.0, help="recency weighting of history; 0: none"
    )
    backtest.add_argument(
        "--pooling", type=float, default=10.0, help="pseudo-observations a parent level counts for"
    )
    backtest.add_argument(
        "--calibration-rate",
        type=float,
        default=0.0,
        help="adaptive conformal step on the quantile level (Gibbs & Candes 2021); 0: off",
    )
    backtest.add_argument("--timezone", default="UTC", help="zone of naive times at unknown origins")
    backtest.add_argument(
        "--plot", metavar="OUT.png|OUT.html", help="reliability plot and lead-time histograms"
    )
    backtest.add_argument("--json", metavar="OUT.json", help="also write the report as JSON; - for stdout")
    backtest.set_defaults(run=_promise_backtest)
    history = actions.add_parser(
        "history", help="generate synthetic delivered shipments over the site network"
    )
    history.add_argument("--out", required=True, metavar="FILE.csv")
    history.add_argument("--orders", type=int, required=True)
    history.add_argument("--seed", type=int, default=7)
    history.add_argument(
        "--network",
        help="Walmart openings CSV (default: ../shared/data/network/ of the repo)",
    )
    history.set_defaults(run=_promise_history)
    forecast = sub.add_parser("forecast", help="backtest the store demand forecaster on daily sales")
    forecast_actions = forecast.add_subparsers(dest="action", required=True)
    forecast_backtest = forecast_actions.add_parser(
        "backtest",
        help="score the streaming demand model against seasonal naive on the last days of each series",
        description=(
            "Per (store, department) series the model learns online on everything before the last "
            "--test-days days, then forecasts them one day ahead, learning each actual afterwards; "
            "seasonal naive (same weekday last week) gets the same rolling protocol. MASE is scaled "
            "by the in-sample lag-7 one-step MAE of the training part. Days without a row are zero sales."
        ),
    )
    forecast_backtest.add_argument(
        "--data",
        metavar="FILE.csv.gz",
        help="M5 store x department daily sales (default: ../shared/data/demand/ of the repo)",
    )
    forecast_backtest.add_argument("--test-days", type=int, default=28)
    forecast_backtest.add_argument(
        "--json", metavar="OUT.json", help="also write the report as JSON; - for stdout"
    )
    forecast_backtest.set_defaults(run=_forecast_backtest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(settings, args))
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as error:
        print(f"oms {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
