"""Tests for gateway.commands.cli: one argparse tree, subcommands imported only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.commands.cli import COMMANDS, build_parser, main
from tests.support import ROOT

# Packages a subcommand brings in; `bitgate --help` must need none of them.
HEAVY = ("gateway.app", "uvicorn", "miners", "load", "ranking", "router", "numpy", "matplotlib")


def test_help_lists_every_command_without_importing_them() -> None:
    probe = (
        "import sys\nfrom gateway.commands.cli import main\n"
        "try:\n    main(['--help'])\nfinally:\n"
        f"    print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.rsplit("\n", 2)[1]
    for word in ("serve", "demo", "miner", "load", "subnet", "eval"):
        assert f"    {word} " in done.stdout
    assert loaded == "[]", loaded


# Arguments that make a complete command line of each row (groups: one of their subcommands).
EXAMPLES = {
    ("miner",): [["sim"], ["keygen", "x"], ["serve", "--upstream", "http://127.0.0.1:1"]],
    ("keys",): [["list"], ["create", "--name", "n"], ["revoke", "n"], ["usage"]],
    ("load", "compare"): [["a", "b"]],
    ("subnet", "epoch"): [["f.json"]],
    ("load", "run"): [["--out", "o"]],
    ("load", "capacity"): [["--out", "o"]],
}


def test_every_command_registers_a_runner() -> None:
    parser = build_parser()
    for command in COMMANDS:
        for args in EXAMPLES.get(command.words, [[]]):
            parsed = parser.parse_args([*command.words, *args])
            assert callable(parsed.run), (command.words, args)


def test_a_group_runs_its_default_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    # `bitgate load ARGS` is `bitgate load run ARGS`: the error names `run`'s missing flag.
    assert main(["load", "--target", "http://127.0.0.1:1/v1"]) == 2
    assert "--out" in capsys.readouterr().err


def test_a_bad_argument_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "eighty"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bitgate serve: error:") and err.count("\n") == 1
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_missing_extra_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "load" or m.startswith(("load.", "hdrh"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hdrh", None)  # what an install without the extra has
    assert main(["load", "--target", "http://127.0.0.1:1/v1", "--out", "o"]) == 1
    err = capsys.readouterr().err
    assert err == "bitgate load run needs the 'load' extra: pip install 'bitgate[load]'\n"
