"""How each simulated miner behaves: latency, answer quality and failures; files and mixes."""

from __future__ import annotations

import math
import random
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router.metagraph import describe_validation_error

Quality = Literal[
    "good",
    "partial",
    "wrong",
    "off_topic",
    "empty",
    "echo",
    "refusal",
    "truncated",
    "repetitive",
    "terse",
    "rambling",
    "hostile",
]
# How a miner answers requests for JSON or offering tools (miners.sim.structured).
Structured = Literal["follow", "prose", "broken_json", "wrong_json", "wrong_tool"]
FailureMode = Literal["none", "error", "hang", "malformed", "empty", "drop_stream", "slow_drip"]
LatencyKind = Literal["fixed", "normal", "lognormal"]

QUALITIES: tuple[Quality, ...] = get_args(Quality)
STRUCTURED: tuple[Structured, ...] = get_args(Structured)
FAILURE_MODES: tuple[FailureMode, ...] = get_args(FailureMode)


class ProfileError(ValueError):
    """A profile file or mix that cannot be used; the message names the bad field."""


class Latency(BaseModel):
    """Time to the first byte, sampled per request, and the stream's token pace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: LatencyKind = "fixed"
    ms: float = Field(
        default=0.0, ge=0, description="fixed: the delay; normal: mean; lognormal: median"
    )
    sd_ms: float = Field(default=0.0, ge=0, description="normal: standard deviation")
    sigma: float = Field(default=0.5, ge=0, description="lognormal: shape")
    max_ms: float | None = Field(default=None, ge=0, description="cap on a sampled delay")
    tokens_per_s: float = Field(default=0.0, ge=0, description="stream pace; 0 = no pacing")

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, value: Any) -> Any:
        """A bare number means a fixed delay in milliseconds."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"kind": "fixed", "ms": value}
        return value

    @property
    def instant(self) -> bool:
        """Whether every sample is zero."""
        return self.max_ms == 0 or (self.ms == 0 and (self.kind != "normal" or self.sd_ms == 0))

    def sample_s(self, rng: random.Random) -> float:
        """One delay in seconds, never negative, capped at `max_ms`."""
        if self.instant:
            return 0.0
        if self.kind == "normal":
            ms = rng.gauss(self.ms, self.sd_ms)
        elif self.kind == "lognormal":
            ms = self.ms * math.exp(rng.gauss(0.0, self.sigma))
        else:
            ms = self.ms
        if self.max_ms is not None:
            ms = min(ms, self.max_ms)
        return max(ms, 0.0) / 1000.0


class MinerProfile(BaseModel):
    """One simulated miner: how fast, how well and how it fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "good"
    quality: Quality = "good"
    structured: Structured = Field(
        default="follow", description="answer to response_format and tools: right or wrong how"
    )
    reasoning: bool = Field(default=False, description="send reasoning_content before the reply")
    latency: Latency = Latency()
    failure: FailureMode = "none"
    failure_rate: float = Field(default=1.0, ge=0, le=1, description="share of requests failing")
    drip_interval_s: float = Field(default=0.5, gt=0, description="slow_drip: seconds per write")
    capacity: int | None = Field(
        default=None, ge=1, description="requests in flight at most; beyond that 429"
    )
    retry_after_s: float = Field(default=1.0, gt=0, description="Retry-After of a 429")
    model: str = "sim"
    incentive: float | None = Field(default=None, ge=0, description="metagraph override")


class ProfileFile(BaseModel):
    """A YAML profile file: the miners of a pool, in uid order."""

    model_config = ConfigDict(extra="forbid")

    miners: list[MinerProfile] = Field(min_length=1)


def parse_profiles(document: Any, source: str = "profiles") -> list[MinerProfile]:
    """Validate a parsed profile document: `{miners: [...]}` or a bare list."""
    if isinstance(document, list):
        document = {"miners": document}
    try:
        return ProfileFile.model_validate(document).miners
    except ValidationError as exc:
        raise ProfileError(f"{source}: {describe_validation_error(exc)}") from None


def load_profiles(path: Path) -> list[MinerProfile]:
    """Read and validate a YAML profile file, raising `ProfileError` naming the bad field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: invalid YAML ({exc})") from None
    return parse_profiles(document, str(path))


def fill(profiles: list[MinerProfile], count: int) -> list[MinerProfile]:
    """The profiles repeated in order until there are `count` of them."""
    if count < 1 or not profiles:
        raise ProfileError(f"count must be at least 1 with at least one profile, got {count}")
    return list(islice(cycle(profiles), count))


def _miner(name: str, **fields: Any) -> MinerProfile:
    """A profile from keyword fields (for the mixes below)."""
    return MinerProfile.model_validate({"name": name, **fields})


def _normal(ms: float, sd_ms: float, tokens_per_s: float = 60.0) -> dict[str, Any]:
    """A normal latency spec."""
    return {"kind": "normal", "ms": ms, "sd_ms": sd_ms, "tokens_per_s": tokens_per_s}


MIXES: dict[str, tuple[MinerProfile, ...]] = {
    "instant": (_miner("instant"),),
    "demo": (
        _miner("good-fast", latency=_normal(150, 40, 80)),
        _miner("good", latency=_normal(300, 80, 50)),
        _miner("partial", quality="partial", latency=_normal(200, 50)),
        _miner("wrong", quality="wrong", latency=_normal(180, 40)),
        _miner("off-topic", quality="off_topic", latency=_normal(220, 60)),
        _miner("refusal", quality="refusal", latency={"ms": 90, "tokens_per_s": 60}),
        _miner("flaky", latency=_normal(250, 60), failure="error", failure_rate=0.3),
        _miner(
            "slow",
            latency={
                "kind": "lognormal",
                "ms": 1200,
                "sigma": 0.6,
                "max_ms": 8000,
                "tokens_per_s": 20,
            },
        ),
        _miner("truncated", quality="truncated", latency=_normal(200, 50)),
        _miner("repetitive", quality="repetitive", latency=_normal(160, 40)),
    ),
    "faults": (
        _miner("good", latency=20),
        *(_miner(mode, failure=mode, latency=20) for mode in FAILURE_MODES if mode != "none"),
    ),
}


def build_mix(name: str, count: int) -> list[MinerProfile]:
    """`count` profiles of a named mix (`instant`, `demo`, `faults`), its pattern repeated."""
    pattern = MIXES.get(name)
    if pattern is None:
        raise ProfileError(f"unknown mix {name!r}; choose one of {', '.join(MIXES)}")
    return fill(list(pattern), count)
