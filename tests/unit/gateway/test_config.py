"""Settings, flags and the pools file: what an operator sets is what the gateway uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.commands.cli import build_parser, main
from gateway.commands.serve import settings_from
from gateway.config import ConfigError, Settings, load_pools_file


def write_pools(tmp_path: Path, text: str) -> Path:
    """A pools file in `tmp_path`."""
    path = tmp_path / "pools.yaml"
    path.write_text(text)
    return path


def test_settings_need_exactly_one_metagraph_source(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--metagraph"):
        Settings()
    with pytest.raises(ValidationError, match="not both"):
        Settings(metagraph=tmp_path / "a.json", pools=tmp_path / "p.yaml")


def test_pools_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = write_pools(tmp_path, "pools:\n  - metagraph: a.json\n    top_k: zero\n")
    with pytest.raises(ConfigError, match=r"pools\.0\.top_k"):
        load_pools_file(bad)
    dup = write_pools(
        tmp_path, "pools:\n  - {name: a, metagraph: a.json}\n  - {name: a, metagraph: b.json}\n"
    )
    with pytest.raises(ConfigError, match="unique"):
        load_pools_file(dup)


def test_metagraph_paths_are_relative_to_the_pools_file(tmp_path: Path) -> None:
    pools = load_pools_file(write_pools(tmp_path, "pools:\n  - metagraph: sn1.json\n"))
    assert pools.pools[0].metagraph == tmp_path / "sn1.json"


def test_pools_inherit_flags_and_env_but_keep_their_own_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_pools(
        tmp_path,
        "pools:\n  - {name: a, metagraph: a.json, top_k: 3}\n  - {name: b, metagraph: b.json}\n",
    )
    monkeypatch.setenv("BITGATE_ROUTING__TOP_K", "7")
    args = build_parser().parse_args(["serve", "--pools", str(path), "--timeout-s", "0.5"])
    a, b = settings_from(args).pool_configs()
    assert (a.top_k, a.timeout_s) == (3, 0.5)
    assert (b.top_k, b.timeout_s) == (7, 0.5)


def test_api_keys_read_as_a_comma_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITGATE_METAGRAPH", "m.json")
    monkeypatch.setenv("BITGATE_API_KEYS", "k1, k2")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert "k1" not in repr(settings) and "k1" not in str(settings.model_dump())
    monkeypatch.setenv("BITGATE_API_KEYS", '["k3"]')
    assert [k.get_secret_value() for k in Settings().api_keys] == ["k3"]


def test_serve_refuses_a_bad_metagraph_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"neurons": [{"uid": 0, "hotkey": "h", "axon": {"ip": "1.2.3.4", "port": -1}}]}'
    )
    assert main(["serve", "--metagraph", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "neurons.0.axon.port" in err
