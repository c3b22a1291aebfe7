"""Every metric the dashboard and the alert rules query is one a running gateway exports."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support import GatewayProcess, profiles
from tests.unit.deploy.manifests import ALERTS, DASHBOARD

pytestmark = pytest.mark.integration

METRIC = re.compile(r"\bbitgate_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def queries() -> list[str]:
    """Every PromQL text of the dashboard (panels and variables) and the alert rules."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    found += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    groups: list[dict[str, Any]] = yaml.safe_load(ALERTS.read_text())["groups"]
    found += [rule["expr"] for group in groups for rule in group["rules"]]
    return found


def exported(text: str) -> set[str]:
    """Every series name an exposition offers: sampled ones, and those a declared family
    would have (a labelled metric with no sample yet, e.g. a chain pool's sync age)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ())}
    return names


def test_dashboard_and_alerts_query_only_exported_metrics(
    sim_pool: Callable[..., Any],
) -> None:
    _, path = sim_pool(profiles("good", "good", "partial"))
    gateway = GatewayProcess("--metagraph", str(path), env={"BITGATE_EMBEDDING_MODEL": "false"})
    try:
        for _ in range(2):
            reply = httpx.post(
                gateway.base_url + "/v1/chat/completions",
                json={"model": "sim", "messages": [{"role": "user", "content": "What is Redis?"}]},
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
        metrics = httpx.get(gateway.base_url + "/metrics", timeout=10).text
    finally:
        gateway.stop()
    names = exported(metrics)
    # The requests above created the labelled series the panels chart.
    assert {"bitgate_requests_total", "bitgate_miner_wins_total", "bitgate_reward_bucket"} <= {
        s.name for f in text_string_to_metric_families(metrics) for s in f.samples
    }
    queried = {name for query in queries() for name in METRIC.findall(query)}
    assert len(queried) >= 15
    missing = queried - names
    assert not missing, f"not exported: {sorted(missing)}"
