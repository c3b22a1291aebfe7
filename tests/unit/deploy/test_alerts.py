"""The alert rules: valid for Prometheus, firing when they should, and the same on Kubernetes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.manifests import (
    ALERTS,
    DASHBOARD,
    PROMETHEUS_RULE,
    prometheus_rule,
    prometheus_rule_yaml,
)

ALERT_TESTS = Path(__file__).parent / "alerts_test.yml"
# Grafana's variables, as Prometheus would see them once Grafana has filled them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$pool": ".*"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; skip the test where it is not installed (`make test` installs it)."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed; `make test` installs it")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict[str, Any]]:
    """Every alerting rule of the file."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    """Every PromQL query of the dashboard's panels."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_each_alert_fires_on_its_symptom_and_not_on_a_healthy_pool() -> None:
    result = promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert firing == {rule["alert"] for rule in rules()}


def test_every_alert_says_how_bad_and_what_happened() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]


def test_prometheus_rule_holds_the_same_groups_as_the_rules_file() -> None:
    (document,) = yaml.safe_load_all(PROMETHEUS_RULE.read_text())
    assert document == prometheus_rule()
    assert PROMETHEUS_RULE.read_text() == prometheus_rule_yaml(), (
        "regenerate: python -m tests.unit.deploy.manifests prometheusrule > "
        "k8s/monitoring/prometheusrule.yaml"
    )


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert queries
    recording = []
    for number, query in enumerate(queries):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, query
        recording.append({"record": f"bitgate:dashboard_query_{number}", "expr": query})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
