"""Gateway settings (`BITGATE_*`) and the pools file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gateway.protocol import Strategy, WaitMode
from gateway.settings import (
    FLAT,
    GROUPS,
    AccessSettings,
    ClientLimits,
    FlatGroups,
    RankingSettings,
    ScoringSettings,
    ServerSettings,
    nest,
    split_list,
)
from ranking.registry import DEFAULT_RANKER, RankerSpec
from router.axon_policy import AxonPolicy, parse_networks
from router.metagraph import describe_validation_error
from router.subnet.chain import ChainConfig
from router.subnet.epochs import LocalConfig

MetagraphSourceKind = Literal["file", "chain", "local"]


class ConfigError(ValueError):
    """A settings or pools file that cannot be used."""


class RoutingDefaults(BaseModel):
    """How a pool picks and waits for miners; each field can be overridden per request."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(default=10, ge=1, le=1024)
    sample: int | None = Field(default=None, ge=1, le=1024)
    strategy: Strategy = "best_of"
    ranker: str = DEFAULT_RANKER
    timeout_s: float = Field(default=20.0, gt=0, le=600)
    explore: float = Field(default=0.2, ge=0, le=1)
    # Adaptive fan-out (gateway/serving/stop_rule.py, router/width.py): the fewest miners a request
    # is narrowed to under load, whether best_of waits for all or for what can still win,
    # the risk of a changed winner it accepts, its wait budget (times the best reply's
    # latency), and the bounded queue a request waits in while no miner has room.
    min_sample: int = Field(default=1, ge=1, le=1024)
    wait: WaitMode = "adaptive"
    wait_risk: float = Field(default=0.1, ge=0, le=1)
    wait_budget: float = Field(default=1.0, ge=0, le=100)
    queue_s: float = Field(default=5.0, ge=0, le=600)
    queue_limit: int = Field(default=256, ge=0, le=100_000)
    # The most a request's `bitgate` block may ask for.
    max_top_k: int = Field(default=32, ge=1, le=1024)
    max_timeout_s: float = Field(default=120.0, gt=0, le=600)
    miner_model: str | None = None
    # Miners are asked for one completion each and a request's `n` picks the top n of them;
    # a pool whose miners should see `n` themselves says so (their first choice is ranked).
    forward_n: bool = False
    # The most output a request may ask of a miner (`max_tokens`, `max_completion_tokens`).
    max_tokens_limit: int = Field(default=16384, ge=1)
    # The miners' context (vLLM's --max-model-len): caps max_tokens below it
    # (gateway/runtime/context_cap.py).
    max_model_len: int | None = Field(default=None, ge=32)
    # The request fields forwarded to miners; unset: OpenAI's and vLLM's
    # (gateway/serving/forwarding.py).
    forward_fields: list[str] | None = None


class PoolConfig(RoutingDefaults):
    """One pool of the pools file: a model id, where its metagraph comes from, its routing,
    and how often its scores become validator weights (for local pools: Yuma epochs)."""

    name: str | None = Field(default=None, min_length=1)
    source: MetagraphSourceKind = "file"
    metagraph: Path | None = None
    chain: ChainConfig | None = None
    local: LocalConfig | None = None
    epoch_s: float = Field(default=600.0, gt=0)
    max_weight_share: float = Field(default=1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _source_fields(self) -> Self:
        needs = {"file": "metagraph", "local": "metagraph", "chain": "chain"}[self.source]
        if getattr(self, needs) is None:
            raise ValueError(f"source: {self.source} needs `{needs}`")
        if self.source == "local" and self.local is None:
            raise ValueError("source: local needs `local` (its validators and stakes)")
        for block in ("chain", "local"):
            if getattr(self, block) is not None and self.source != block:
                raise ValueError(f"`{block}` is only for source: {block}")
        return self

    @property
    def validator_hotkey(self) -> str:
        """Who this gateway is as a validator of the pool (the key its weights are kept under)."""
        if self.local is not None:
            return self.local.own_hotkey
        if self.chain is not None and self.chain.hotkey:
            return self.chain.hotkey
        return "bitgate"


class PoolsFile(BaseModel):
    """The `--pools` file: several pools, each served under its own model id."""

    model_config = ConfigDict(extra="forbid")

    pools: list[PoolConfig] = Field(min_length=1)
    # Named ranker definitions (remote reward models, judges, blends); see ranking/registry.py.
    rankers: dict[str, RankerSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [p.name for p in self.pools if p.name]
        if len(names) != len(set(names)):
            raise ValueError("pool names must be unique")
        return self


def load_pools_file(path: Path) -> PoolsFile:
    """Read a pools file (YAML or JSON); metagraph paths are relative to the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        pools = PoolsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None
    for pool in pools.pools:
        if pool.metagraph is not None and not pool.metagraph.is_absolute():
            pool.metagraph = path.parent / pool.metagraph
    return pools


class Settings(BaseSettings):
    """Everything the gateway reads from flags or `BITGATE_*` environment variables.

    Grouped by concern (`gateway.settings`): `server`, `limits`, `access`, `scoring`,
    `ranking`, and each pool's `routing`; every variable keeps its flat name.
    """

    model_config = SettingsConfigDict(
        env_prefix="BITGATE_", env_nested_delimiter="__", extra="ignore"
    )

    metagraph: Path | None = None
    pools: Path | None = None
    redis_url: str | None = None
    # OpenTelemetry traces over OTLP (the `otel` extra); unset: on when
    # OTEL_EXPORTER_OTLP_ENDPOINT is set.
    otel: bool | None = None
    # Private networks (CIDRs, comma-separated) whose miners may be dialled; public addresses
    # always may, link-local (cloud metadata), multicast and reserved ones never.
    axon_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metagraph_poll_s: float = Field(default=2.0, gt=0)
    # A best_of stream sends an SSE comment this often while it waits for the miners, so
    # proxies and clients with idle timeouts keep the connection.
    sse_keepalive_s: float = Field(default=5.0, gt=0, le=300)
    seed: int | None = None
    # The validator hotkey that signs miner requests (Epistula v2); unset: requests go unsigned.
    hotkey_file: Path | None = None
    hotkey_mnemonic: SecretStr | None = None
    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: ClientLimits = Field(default_factory=ClientLimits)
    access: AccessSettings = Field(default_factory=AccessSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    ranking: RankingSettings = Field(default_factory=RankingSettings)
    routing: RoutingDefaults = Field(default_factory=RoutingDefaults)
    _pools_read: PoolsFile | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the flat `BITGATE_<NAME>` of grouped fields, then the rest."""
        flat = FlatGroups(settings_cls, "BITGATE_")
        return init_settings, flat, env_settings, dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, values: Any) -> Any:
        return nest(values)

    @classmethod
    def variables(cls) -> set[str]:
        """Every `BITGATE_*` variable read: flat names (grouped ones too), `ROUTING__*`."""
        names = {n for n in cls.model_fields if n not in GROUPS} | set(FLAT)
        names |= {f"routing__{n}" for n in RoutingDefaults.model_fields}
        return {f"BITGATE_{n}".upper() for n in names if n != "routing"}

    _split = field_validator("axon_allow", mode="before")(split_list)

    @field_validator("axon_allow")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    def axon_policy(self) -> AxonPolicy:
        """Which miner addresses may be dialled (`BITGATE_AXON_ALLOW`)."""
        return AxonPolicy.from_cidrs(self.axon_allow)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.metagraph is None and self.pools is None:
            raise ValueError("give a metagraph file (--metagraph) or a pools file (--pools)")
        if self.metagraph is not None and self.pools is not None:
            raise ValueError("give --metagraph or --pools, not both")
        return self

    def _pools_file(self) -> PoolsFile:
        """The pools file, read once: every part of start-up sees the same version of it."""
        if self._pools_read is None:
            assert self.pools is not None
            self._pools_read = load_pools_file(self.pools)
        return self._pools_read

    def ranker_specs(self) -> dict[str, RankerSpec]:
        """Ranker definitions: `BITGATE_RANKERS`, then the pools file's `rankers:`."""
        specs = dict(self.ranking.rankers)
        if self.pools is not None:
            specs.update(self._pools_file().rankers)
        return specs

    def pool_configs(self) -> list[PoolConfig]:
        """The pools to serve: the pools file's, or one pool from `--metagraph`."""
        if self.pools is not None:
            # A pool's routing fields that the file leaves out come from the flags and the
            # BITGATE_ROUTING__* variables; the file's own values win.
            defaults = self.routing.model_dump(exclude_unset=True)
            return [
                pool.model_copy(
                    update={k: v for k, v in defaults.items() if k not in pool.model_fields_set}
                )
                for pool in self._pools_file().pools
            ]
        assert self.metagraph is not None
        return [PoolConfig(metagraph=self.metagraph, **self.routing.model_dump())]
