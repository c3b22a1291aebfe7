"""Settings, flags and the pools file: what an operator sets is what the gateway uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.commands.cli import build_parser, main
from gateway.commands.serve import settings_from
from gateway.config import ConfigError, Settings, load_pools_file
from gateway.settings import FLAT


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
    assert [k.get_secret_value() for k in settings.access.api_keys] == ["k1", "k2"]
    assert "k1" not in repr(settings) and "k1" not in str(settings.model_dump())
    monkeypatch.setenv("BITGATE_API_KEYS", '["k3"]')
    assert [k.get_secret_value() for k in Settings().access.api_keys] == ["k3"]


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


# A value for each grouped field, different from its default, as a variable would hold it.
FLAT_VALUES = {
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("9001", 9001),
    "max_connections": ("77", 77),
    "max_inflight": ("33", 33),
    "limit_concurrency": ("99", 99),
    "backlog": ("17", 17),
    "keep_alive_s": ("9", 9),
    "max_header_bytes": ("4096", 4096),
    "head_timeout_s": ("2.5", 2.5),
    "max_pending_heads": ("64", 64),
    "max_body_bytes": ("4096", 4096),
    "body_timeout_s": ("3.5", 3.5),
    "max_json_depth": ("16", 16),
    "max_json_values": ("500", 500),
    "max_messages": ("12", 12),
    "max_prompt_chars": ("999", 999),
    "max_reply_bytes": ("8192", 8192),
    "auth": ("none", "none"),
    "key_cache_s": ("1.5", 1.5),
    "limits_fallback_share": ("0.5", 0.5),
    "log_prompts": ("true", True),
    "metrics_key_names": ("true", True),
    "ema_alpha": ("0.3", 0.3),
    "cooldown_after": ("5", 5),
    "cooldown_s": ("7", 7.0),
    "store_sync_s": ("0.25", 0.25),
    "embedding_model": ("false", False),
    "allow_degraded_ranker": ("true", True),
}


@pytest.mark.parametrize("name", sorted(FLAT))
def test_every_grouped_setting_keeps_its_flat_variable_and_keyword(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = FLAT[name]
    if name not in FLAT_VALUES:  # api_keys and rankers: their own tests
        assert name in {"api_keys", "rankers"}
        return
    text, value = FLAT_VALUES[name]
    monkeypatch.setenv(f"BITGATE_{name.upper()}", text)
    from_env = Settings(metagraph=Path("m.json"))
    assert getattr(getattr(from_env, group), name) == value
    assert f"BITGATE_{name.upper()}" in Settings.variables()
    monkeypatch.delenv(f"BITGATE_{name.upper()}")
    from_keyword = Settings(metagraph=Path("m.json"), **{name: value})
    assert getattr(getattr(from_keyword, group), name) == value
    assert getattr(getattr(Settings(metagraph=Path("m.json")), group), name) != value


def test_a_bad_grouped_value_is_refused_by_its_flat_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITGATE_MAX_BODY_BYTES", "12")
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings(metagraph=Path("m.json"))


def test_rankers_read_as_json_from_their_flat_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "BITGATE_RANKERS", '{"rm2": {"kind": "remote", "url": "http://127.0.0.1:9", "model": "m"}}'
    )
    assert "rm2" in Settings(metagraph=Path("m.json")).ranker_specs()
