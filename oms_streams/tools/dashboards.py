"""Grafana dashboards for oms-streams, generated from code: ``python -m oms_streams.tools.dashboards``.

Two dashboards are written to ``deploy/grafana/dashboards/`` (provisioned by
``deploy/docker-compose.yml``): ``business.json`` and ``engine.json``. Their panels are defined in
``oms_streams/tools/dashboard_panels.py``; this module renders them with grafana-foundation-sdk and
writes them. They are committed; ``tests/contract/test_dashboards_drift.py`` fails when they drift
from the code, and ``tests/integration/test_dashboards.py`` runs every panel's PromQL against a real
Prometheus scraping a real worker.

Needs the ``dev`` extra (``grafana-foundation-sdk``, pinned: its output is what the drift test compares).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gdashboard
from grafana_foundation_sdk.builders import prometheus as gprometheus
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import timeseries as gtimeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from oms_streams.tools.dashboard_panels import DASHBOARDS, DashboardSpec, PanelSpec

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_DIR = Path("deploy/grafana/dashboards")
DATASOURCE_UID = "oms-prometheus"
"""The Prometheus data source's uid, as ``deploy/grafana/provisioning/datasources/prometheus.yml``
provisions it (a test checks both agree)."""

_DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


def _panel(spec: PanelSpec, panel_id: int) -> gtimeseries.Panel | gstat.Panel:
    panel: gtimeseries.Panel | gstat.Panel = (
        gtimeseries.Panel() if spec.kind == "timeseries" else gstat.Panel()
    )
    panel.id(panel_id).title(spec.title).description(spec.description).datasource(_DATASOURCE)
    panel.unit(spec.unit).span(spec.width).height(8)
    if spec.no_value is not None:
        panel.no_value(spec.no_value)
    for index, query in enumerate(spec.queries):
        target = gprometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index)).range()
        target.datasource(_DATASOURCE)
        if query.legend:
            target.legend_format(query.legend)
        panel.with_target(target)
    return panel


def build(spec: DashboardSpec) -> gdashboard.Dashboard:
    board = (
        gdashboard.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["oms-streams"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .readonly()
        # What Grafana itself writes when it saves a dashboard: the built-in annotations and alerts,
        # and an empty variable list (no variables: the data source is provisioned with a fixed uid).
        .annotation(
            gdashboard.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .variables([])
    )
    panel_id = 0
    for row in spec.rows:
        panel_id += 1
        board.with_row(gdashboard.Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            board.with_panel(_panel(panel, panel_id))
    return board


def render(spec: DashboardSpec) -> str:
    """The dashboard's JSON, as committed (stable key order, trailing newline)."""
    return json.dumps(build(spec).build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def generated_files() -> dict[str, str]:
    """Relative path (from the repository root) -> content of every generated dashboard."""
    return {str(OUTPUT_DIR / spec.file): render(spec) for spec in DASHBOARDS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oms_streams.tools.dashboards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    stale = []
    for relative, content in generated_files().items():
        path = args.root / relative
        if path.exists() and path.read_text() == content:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            print(f"wrote {relative}")
    if args.check and stale:
        print(f"stale (run python -m oms_streams.tools.dashboards): {stale}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
