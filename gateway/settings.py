"""The groups of the gateway's settings, one small model per concern, as httpx groups
`Timeout` and `Limits`.

Each field keeps its flat name: `BITGATE_MAX_BODY_BYTES` and `Settings(max_body_bytes=…)` set
`settings.limits.max_body_bytes` (`FlatGroups` reads the variables; `nest` moves flat keys).
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource

from gateway.door.bounds import InputLimits
from ranking.registry import RankerSpec
from router.stats import ScorePolicy


def split_list(value: Any) -> Any:
    """A comma-separated (or JSON list) variable as a list; other values as they are."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Group(BaseModel):
    """A group of settings: unknown names refused, values checked when set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(Group):
    """Where the gateway listens and how much it takes at once (uvicorn's own limits too)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_connections: int = Field(default=4096, ge=10)
    max_inflight: int = Field(default=2048, ge=1)
    # uvicorn's limits (gateway/runtime/server.py); unset limit_concurrency is
    # 1.5 × max_inflight + 64 + max_pending_heads.
    limit_concurrency: int | None = Field(default=None, ge=1)
    backlog: int = Field(default=2048, ge=1)
    keep_alive_s: int = Field(default=5, ge=1, le=300)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    # A request's head must arrive within this; at most this many are awaited at once.
    head_timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_pending_heads: int = Field(default=1024, ge=1)


class ClientLimits(Group):
    """What a client may send, and a miner reply, in bytes, time and shape (docs/reliability.md
    has the memory each implies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    body_timeout_s: float = Field(default=15.0, gt=0, le=600)
    # Below orjson's own limit of 254 levels, past which it cannot write a body for the miners.
    max_json_depth: int = Field(default=128, ge=4, le=250)
    max_json_values: int = Field(default=100_000, ge=100)
    max_messages: int = Field(default=1024, ge=1)
    max_prompt_chars: int = Field(default=1_000_000, ge=1)
    # Per miner reply, on the wire. Read, a reply holds its bytes and its answer: a JSON reply
    # about 2x its size, a stream about 1.2x (python -m load.bench.reply_memory).
    max_reply_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

    @cached_property
    def input(self) -> InputLimits:
        """The bounds on a client's JSON, messages and prompt text, as the door checks them."""
        return InputLimits(
            self.max_json_depth, self.max_json_values, self.max_messages, self.max_prompt_chars
        )


class AccessSettings(Group):
    """Who may call, how long a key read is trusted, and what the request log may hold."""

    # `required` (keys), `none` (open on purpose); unset: open only on a loopback bind, and
    # `bitgate serve` refuses a public bind.
    auth: Literal["required", "none"] | None = None
    # Static keys, comma-separated in BITGATE_API_KEYS (a JSON list works too); stored keys
    # come from `bitgate keys create` (Redis).
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # How long a replica trusts what it read of a stored key (revocation reaches it by then).
    key_cache_s: float = Field(default=2.0, gt=0, le=4)
    # Share of a key's limits each replica enforces alone while Redis is unreachable.
    limits_fallback_share: float = Field(default=1.0, gt=0, le=1)
    # Put the prompt in the request log line (off: never logged).
    log_prompts: bool = False
    # Name keys in /metrics (`key` label of bitgate_key_*, bitgate_ratelimit_rejections);
    # off: every key is counted as `all`, since /metrics is unauthenticated.
    metrics_key_names: bool = False

    _keys = field_validator("api_keys", mode="before")(split_list)


class ScoringSettings(Group):
    """How replies' rewards become miners' scores, and how often replicas share them."""

    ema_alpha: float = Field(default=0.1, gt=0, le=1)
    cooldown_after: int = Field(default=3, ge=1)
    cooldown_s: float = Field(default=30.0, ge=0)
    store_sync_s: float = Field(default=1.0, gt=0)

    def policy(self) -> ScorePolicy:
        """The scoreboard's policy: EMA weight and cool-downs."""
        return ScorePolicy(
            alpha=self.ema_alpha, cooldown_after=self.cooldown_after, cooldown_s=self.cooldown_s
        )


class RankingSettings(Group):
    """Which rankers exist beyond the built-in ones, and what loads them."""

    # Ranker definitions (JSON in BITGATE_RANKERS); a pools file's `rankers:` add to them.
    rankers: dict[str, RankerSpec] = Field(default_factory=dict)
    # Load the full MiniLM model in the background (off: `embedding` rankers use heuristic);
    # unset: only when a pool's ranker or a ranker definition uses `embedding`.
    embedding_model: bool | None = None
    # Ready even when a pool's default ranker cannot rank (a stand-in ranks, and says so).
    allow_degraded_ranker: bool = False

    @field_validator("rankers", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


GROUPS: dict[str, type[Group]] = {
    "server": ServerSettings,
    "limits": ClientLimits,
    "access": AccessSettings,
    "scoring": ScoringSettings,
    "ranking": RankingSettings,
}
# Every grouped field's flat name → its group.
FLAT: dict[str, str] = {
    name: group for group, model in GROUPS.items() for name in model.model_fields
}


def nest(values: Any) -> Any:
    """Flat names moved into their groups (a flat name wins over the same name nested)."""
    if not isinstance(values, dict):
        return values
    out = dict(values)
    for name, group in FLAT.items():
        if name in out:
            nested = out.get(group)
            nested = dict(nested) if isinstance(nested, dict) else {}
            nested[name] = out.pop(name)
            out[group] = nested
    return out


class FlatGroups(PydanticBaseSettingsSource):
    """`BITGATE_<NAME>` for every grouped field, as it was named before the groups."""

    def __init__(self, settings_cls: type[BaseSettings], prefix: str) -> None:
        super().__init__(settings_cls)
        self.prefix = prefix

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: the whole source is read at once in `__call__`."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """The flat variables that are set, nested into their groups."""
        found: dict[str, dict[str, str]] = {}
        for name, group in FLAT.items():
            value = os.environ.get(f"{self.prefix}{name}".upper())
            if value is not None:
                found.setdefault(group, {})[name] = value
        return found
