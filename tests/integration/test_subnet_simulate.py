"""`bitgate subnet simulate`: a short run over real sim miners and real gateways."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from gateway.commands.cli import main as bitgate
from router.subnet.simulation import EpochRecord, History, summary

pytestmark = pytest.mark.integration


def test_a_short_simulation_pays_good_miners_and_starves_the_dishonest_validator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png, data = tmp_path / "sim.png", tmp_path / "sim.json"
    argv = ["--miners", "6", "--epochs", "2", "--requests", "6", "--sample", "6", "--quiet"]
    code = bitgate(["subnet", "simulate", *argv, "--png", str(png), "--json", str(data)])
    out = capsys.readouterr().out
    assert code == 0
    history = json.loads(data.read_text())
    assert history["validators"] == ["honest-0", "honest-1", "dishonest-0"]
    assert history["miners"][5] == "5:refusal"  # the miner the dishonest validator backs
    epochs = history["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert epochs[0]["incentive"] == pytest.approx([1 / 6] * 6)
    last = epochs[-1]
    assert sum(last["incentive"]) == pytest.approx(1.0, abs=1e-4)
    assert last["requests"] == [2 * 6] * 6  # each request asked every miner
    good = [i for i, is_good in enumerate(history["good"]) if is_good]
    assert good == [0, 1]
    # The two good miners now earn more than their uniform share; the refusing one almost nothing.
    assert all(last["incentive"][i] > 1 / 6 for i in good)
    assert last["incentive"][5] < 0.05
    honest_0, honest_1, dishonest = last["dividends"]
    assert dishonest < 1 / 3 < min(honest_0, honest_1)
    assert last["validator_trust"][2] < last["validator_trust"][0]
    assert "dishonest-0 (dishonest): stake share 0.333" in out
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_reads_the_last_epoch() -> None:
    history = History(
        miners=["0:good", "1:bad"],
        validators=["v", "cheat"],
        honest=[True, False],
        stake=[3.0, 1.0],
        good=[True, False],
        epochs=[
            EpochRecord(0, [0.5, 0.5], [0, 0], [0.0, 0.0], [0.0, 0.0]),
            EpochRecord(1, [0.9, 0.1], [4, 1], [0.95, 0.05], [1.0, 0.1]),
        ],
    )
    text = summary(history)
    assert "epoch 0 0.500 -> epoch 1 0.900" in text
    assert "cheat (dishonest): stake share 0.250, dividends 0.050" in text


def test_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert bitgate(["subnet", "simulate", "--validators", "0", "--quiet"]) == 2
    assert "at least 1 honest validator" in capsys.readouterr().err
