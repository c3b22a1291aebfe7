"""Tests for router.subnet.cli: the `bitgate subnet epoch FILE` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.commands.cli import main as bitgate
from tests.support import ROOT

EXAMPLE = {
    "yuma_version": 2,
    "validator_stake": [0.5, 0.3, 0.2],
    "weights": [[4, 3, 2, 1], [4, 3, 2, 1], [0, 0, 0, 1]],
}


def run_cli(tmp_path: Path, document: Any, *extra: str) -> subprocess.CompletedProcess[str]:
    """Write `document` to a file and run `bitgate subnet epoch FILE`."""
    path = tmp_path / "epoch.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return subprocess.run(
        [sys.executable, "-m", "gateway", "subnet", "epoch", str(path), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_epoch_file_prints_the_worked_example(tmp_path: Path) -> None:
    done = run_cli(tmp_path, EXAMPLE)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["consensus"] == pytest.approx([0.4, 0.3, 0.2, 0.1], abs=1e-4)
    assert report["incentive"] == pytest.approx([0.3902, 0.2927, 0.1951, 0.1220], abs=1e-4)
    assert report["dividends"] == pytest.approx([0.6098, 0.3659, 0.0244], abs=1e-4)
    assert report["validator_trust"] == pytest.approx([1.0, 1.0, 0.1], abs=1e-4)
    assert report["bonds"][0] == [0.625, 0.625, 0.625, 0.5]
    assert all(len(repr(x)) <= 8 for row in report["bonds"] for x in row)


def test_epoch_file_with_bonds_runs_yuma3(tmp_path: Path) -> None:
    document = {**EXAMPLE, "yuma_version": 3, "bonds": [[0.5] * 4, [0.5] * 4, [0.5] * 4]}
    done = run_cli(tmp_path, document, "--emission", "10")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["yuma_version"] == 3
    assert report["bonds"][0] == pytest.approx([0.49, 0.48, 0.47, 0.46], abs=1e-5)
    assert sum(report["miner_emission"]) + sum(report["validator_emission"]) == pytest.approx(10)


def test_more_validators_than_max_validators_all_count(tmp_path: Path) -> None:
    document = {"validator_stake": [1.0] * 70, "weights": [[1, 0]] * 70}
    done = run_cli(tmp_path, document)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dividends"] == pytest.approx([1 / 70] * 70, abs=1e-6)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
        ({"weights": [[1]]}, "missing field 'validator_stake'"),
        ({**EXAMPLE, "yuma_version": 4}, "yuma_version must be 2 or 3"),
        ({**EXAMPLE, "weights": [[4, 3, 2, 1], [4, 3], [0, 0, 0, 1]]}, "weights: row 1 has 2"),
        ({**EXAMPLE, "validator_stake": [0.5, -0.3, 0.2]}, "stake: must not contain negative"),
        ({**EXAMPLE, "validator_stake": [0, 0, 0]}, "no active validator"),
        ({**EXAMPLE, "weights": [[70000, 0, 0, 0]] * 3}, "must not exceed 65535"),
        ({**EXAMPLE, "bonds": [[0.1]]}, "bonds: shape (1, 1) does not match weights (3, 4)"),
    ],
)
def test_bad_file_is_one_line_and_exit_2(tmp_path: Path, document: Any, message: str) -> None:
    done = run_cli(tmp_path, document)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert message in done.stderr


def test_missing_file_and_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bitgate(["subnet", "epoch", str(tmp_path / "absent.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert bitgate(["subnet", "epoch"]) == 2
    assert bitgate(["subnet", "frobnicate"]) == 2
    path = tmp_path / "epoch.json"
    path.write_text(json.dumps(EXAMPLE))
    assert bitgate(["subnet", "epoch", str(path), "--emission", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3
    assert "emission: must be a non-negative finite number" in err


def test_main_in_process_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "epoch.json"
    path.write_text(json.dumps(EXAMPLE))
    assert bitgate(["subnet", "epoch", str(path), "--emission", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sum(report["miner_emission"]) == pytest.approx(50, abs=1e-4)
    assert set(report) >= {"consensus", "incentive", "dividends", "validator_trust", "bonds"}
