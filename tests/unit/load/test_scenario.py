"""Scenario files, flags and prompt sets: good ones parse, bad ones name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.commands.cli import main as bitgate
from load.prompts import PromptError, load_prompts
from load.scenario import ScenarioError, load_scenario, parse_scenario
from load.targets import TargetError, base_url, resolve

GOOD = """
name: sn1 at 50 rps
target: http://127.0.0.1:8000/v1
model: sn1
endpoint: completions
prompts: prompts.jsonl
max_tokens: 32
stream: 0.25
bitgate: {strategy: race, top_k: 5}
rate: 20
rate_to: 80
arrival: uniform
duration_s: 30
warmup_s: 2
seed: 7
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_scenario_parses_with_paths_beside_it(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.open_loop and scenario.rate == 20 and scenario.rate_to == 80
    assert scenario.prompts == str(tmp_path / "prompts.jsonl")
    assert scenario.bitgate == {"strategy": "race", "top_k": 5}
    assert scenario.rate_at(0) == 20 and scenario.rate_at(15) == 50 and scenario.rate_at(30) == 80
    assert "20 → 80 req/s" in scenario.describe()


def test_flags_override_the_file_and_switch_the_arrival_model(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD), {"concurrency": 8, "requests": 100})
    assert not scenario.open_loop and scenario.workers == 8
    assert scenario.rate is None and scenario.rate_to is None and scenario.requests == 100


def test_defaults_are_a_bounded_closed_loop() -> None:
    scenario = parse_scenario({"target": "pool.json"})
    assert scenario.workers == 16 and scenario.limit_s == 10.0 and scenario.model is None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("target: http://x/v1\nmodel: m\nrate: fast\n", "rate"),
        ("target: http://x/v1\nmodel: m\nstream: 1.5\n", "stream"),
        ("target: http://x/v1\nmodel: m\nconcurrency: 0\n", "concurrency"),
        ("target: http://x/v1\nmodel: m\nduration_s: 99999\n", "duration_s"),
        ("target: http://x/v1\nmodel: m\nconcurency: 4\n", "concurency: unknown field"),
        ("target: http://x/v1\nmodel: m\narrival: bursty\n", "arrival"),
        ("target: http://x/v1\n", "model: required"),
        ("model: m\n", "target"),
        ("target: http://x/v1\nmodel: m\nrate: 5\nconcurrency: 3\n", "rate: give either"),
        ("target: http://x/v1\nmodel: m\nrate_to: 5\n", "rate_to"),
        ("- just\n- a list\n", "expected a mapping"),
        ("target: [unclosed\n", "invalid YAML"),
    ],
)
def test_a_bad_file_gets_one_error_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and field in message
    assert "\n" not in message


def test_the_command_line_reports_a_bad_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "target: http://127.0.0.1:1/v1\nmodel: m\nmax_tokens: -3\n")
    assert bitgate(["load", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "max_tokens" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_prompt_sets_builtin_and_jsonl(tmp_path: Path) -> None:
    assert len(load_prompts("short")) >= 10 and load_prompts("long")[0].text.startswith("You")
    good = write(
        tmp_path,
        '{"prompt": "hi"}\n\n{"messages": [{"role": "user", "content": "yo"}], "max_tokens": 5}\n',
        "p.jsonl",
    )
    prompts = load_prompts(str(good))
    assert [p.text for p in prompts] == ["hi", "yo"] and prompts[1].max_tokens == 5
    bad = write(
        tmp_path, '{"prompt": "hi"}\n{"messages": [{"role": "robot", "content": "x"}]}\n', "b.jsonl"
    )
    with pytest.raises(PromptError, match=r"b\.jsonl:2: messages\.0\.role"):
        load_prompts(str(bad))
    with pytest.raises(PromptError, match="not a built-in set"):
        load_prompts("nonsense")


def test_targets_urls_and_metagraphs(tmp_path: Path) -> None:
    assert base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    neurons = [
        {"uid": 1, "axon": {"ip": "127.0.0.1", "port": 9001}},
        {"uid": 0, "axon": {"ip": "127.0.0.1", "port": 9000}},
        {"uid": 2, "axon": {"ip": "0.0.0.0", "port": 0}},
        {"uid": 3, "axon": {"ip": "127.0.0.1", "port": 9003}, "validator_permit": True},
    ]
    path = write(tmp_path, json.dumps({"name": "p", "neurons": neurons}), "m.json")
    target = resolve(str(path))
    assert [(e.uid, e.url) for e in target.endpoints] == [
        (0, "http://127.0.0.1:9000/v1"),
        (1, "http://127.0.0.1:9001/v1"),
    ]
    far = {"neurons": [{"uid": 0, "axon": {"ip": "8.8.8.8", "port": 1}}]}
    remote = write(tmp_path, json.dumps(far), "r.json")
    with pytest.raises(TargetError, match="not loopback"):
        resolve(str(remote))
    assert resolve(str(remote), allow_remote=True).endpoints[0].url == "http://8.8.8.8:1/v1"
