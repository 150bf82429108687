"""deploy/prometheus/alerts.yml passes ``promtool check rules``, and its unit tests
(deploy/prometheus/alerts_test.yml) pass ``promtool test rules``; every alert has a case where it fires.

promtool comes with Debian's ``prometheus`` package (.ci/run installs it). Without it the promtool tests
skip, except in CI (``CI=true``), where they fail: CI must not go green by skipping them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool not found on PATH (Debian: apt-get install prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI installs it in .ci/run", pytrace=False)
        pytest.skip(reason)
    return path


def run(*args: str) -> str:
    result = subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_the_alert_rules_are_valid() -> None:
    output = run("check", "rules", RULES.name)
    assert "SUCCESS" in output, output


def test_the_alert_rules_pass_their_unit_tests() -> None:
    output = run("test", "rules", RULE_TESTS.name)
    assert "SUCCESS" in output, output


def test_every_alert_has_a_unit_test_in_which_it_fires() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts == firing, f"alerts without a firing case: {alerts - firing}; unknown: {firing - alerts}"
    assert alerts == quiet, f"alerts without a case where they stay quiet: {alerts - quiet}"
