"""`bitgate eval ranking`: runs from the top-level command and reports every ranker's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.commands.cli import main

# ranking/EVALUATION.md's figures on the whole test split (185 prompts), and how far a run
# may stray from them: two prompts' worth of top-1, a hundredth of pairwise.
TEST_ITEMS = 185
MEASURED = {"blend": (0.989, 0.997), "heuristic": (0.659, 0.951)}
TOP1_TOLERANCE = 2 / TEST_ITEMS
PAIRWISE_TOLERANCE = 0.01


def test_eval_ranking_prints_top1_pairwise_and_latency_per_ranker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    argv = ["eval", "ranking", "--split", "test", "--json", str(out)]
    for name in ("random", "heuristic", "blend"):
        argv += ["--ranker", name]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"{TEST_ITEMS} prompts (test)" in printed
    for column in ("top-1", "pairwise", "p50 ms", "p99 ms"):
        assert column in printed
    figures = {row["ranker"]: row for row in json.loads(out.read_text())}
    assert set(figures) == {"random", "heuristic", "blend"}
    assert all(row["items"] == TEST_ITEMS and row["fallbacks"] == 0 for row in figures.values())
    for name, (top1, pairwise) in MEASURED.items():
        assert figures[name]["top1"] == pytest.approx(top1, abs=TOP1_TOLERANCE), name
        assert figures[name]["pairwise"] == pytest.approx(pairwise, abs=PAIRWISE_TOLERANCE), name
    # One in ten candidates is right: a random pick's top-1 is near 0.1.
    assert figures["random"]["top1"] < 0.2
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
