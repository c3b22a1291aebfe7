"""The Grafana dashboard: panels laid out without overlap, each asking the chosen Prometheus."""

from __future__ import annotations

import json
import re
from itertools import combinations
from typing import Any

from tests.unit.deploy.manifests import DASHBOARD

# What the issue asks the dashboard to show, as the metric each view is drawn from.
VIEWS = {
    "requests and errors by pool": "bitgate_requests_total",
    "latency percentiles": "bitgate_request_latency_seconds_bucket",
    "overhead percentiles": "bitgate_overhead_seconds_bucket",
    "per-miner outcomes": "bitgate_miner_outcomes_total",
    "win shares": "bitgate_miner_wins_total",
    "reward distribution": "bitgate_reward_bucket",
    "rate-limit rejections": "bitgate_ratelimit_rejections_total",
    "per-key usage": "bitgate_key_tokens_total",
}


def dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def charts() -> list[dict[str, Any]]:
    """Every panel that is not a row."""
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_panels_fit_the_grid_and_never_overlap() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    boxes = []
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        boxes.append((panel["title"], grid))
    for (first, a), (second, b) in combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, f"{first} overlaps {second}"


def test_every_chart_queries_the_selected_data_source() -> None:
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    assert {"datasource", "pool"} <= variables
    for panel in charts():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        targets = panel["targets"]
        assert targets and len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            used = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used <= variables | {"__rate_interval", "__range"}, target["expr"]


def test_every_view_the_issue_asks_for_is_charted() -> None:
    queries = " ".join(t["expr"] for panel in charts() for t in panel["targets"])
    for view, metric in VIEWS.items():
        assert metric in queries, view
