"""`bitgate eval ranking`: runs from the top-level command and reports every ranker's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.commands.cli import main


def test_eval_ranking_prints_top1_pairwise_and_latency_per_ranker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    argv = ["eval", "ranking", "--split", "test", "--limit", "30", "--json", str(out)]
    for name in ("random", "heuristic", "blend"):
        argv += ["--ranker", name]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "30 prompts (test)" in printed
    for column in ("top-1", "pairwise", "p50 ms", "p99 ms"):
        assert column in printed
    figures = {row["ranker"]: row for row in json.loads(out.read_text())}
    assert set(figures) == {"random", "heuristic", "blend"}
    assert all(row["items"] == 30 and row["fallbacks"] == 0 for row in figures.values())
    # The default ranker must beat a random pick by far, and pay for its model in latency.
    assert figures["blend"]["top1"] >= 0.8 > 0.4 >= figures["random"]["top1"]
    assert figures["blend"]["pairwise"] > figures["random"]["pairwise"]
    assert figures["blend"]["p50_ms"] > figures["heuristic"]["p50_ms"] > 0


def test_eval_refuses_unknown_rankers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "ranking", "--limit", "1", "--ranker", "oracle"]) == 2
    assert "oracle" in capsys.readouterr().err


def test_eval_has_a_structured_output_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "structured.json"
    argv = ["eval", "ranking", "--split", "structured", "--by-kind", "--json", str(out)]
    assert main([*argv, "--ranker", "heuristic", "--ranker", "random"]) == 0
    printed = capsys.readouterr().out
    assert "32 prompts (structured)" in printed and "missing_f" in printed
    figures = {row["ranker"]: row for row in json.loads(out.read_text())}
    # Every ranker the gateway builds is held to the schema and the tools: however much the
    # heuristic likes fluent prose or broken JSON, it never puts them above the right reply.
    losses = figures["heuristic"]["losses_by_kind"]
    assert losses["prose"] == losses["broken"] == losses["missing_field"] == 0
    assert figures["heuristic"]["top1"] > 0.7 > figures["random"]["top1"]
