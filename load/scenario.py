"""A load scenario: target, prompts, request shape, arrival model and bounds; YAML or flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router.metagraph import describe_validation_error

MAX_DURATION_S = 3600.0
MAX_REQUESTS = 10_000_000
MAX_CONCURRENCY = 10_000
MAX_RATE = 100_000.0
DEFAULT_CONCURRENCY = 16
DEFAULT_DURATION_S = 10.0


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file and the bad field."""


class Scenario(BaseModel):
    """Everything one load run needs; either bound (requests, duration) stops it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    target: str = Field(description="OpenAI base URL (http://host:port/v1) or a metagraph file")
    model: str | None = Field(default=None, description="model id; required for a URL target")
    endpoint: Literal["chat", "completions"] = "chat"
    prompts: str = Field(default="short", description="built-in set name or a .jsonl file")
    max_tokens: int | None = Field(default=64, ge=1, le=1_000_000)
    stream: float = Field(default=0.0, ge=0.0, le=1.0, description="share of streaming requests")
    bitgate: dict[str, Any] | None = Field(default=None, description="gateway options per request")
    headers: dict[str, str] = Field(default_factory=dict)
    concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY)
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE, description="open loop: req/s")
    rate_to: float | None = Field(default=None, gt=0, le=MAX_RATE, description="ramp's end rate")
    arrival: Literal["poisson", "uniform"] = "poisson"
    requests: int | None = Field(default=None, ge=1, le=MAX_REQUESTS)
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S)
    warmup_s: float = Field(default=0.0, ge=0, le=600)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_in_flight: int = Field(default=10_000, ge=1, le=100_000)
    seed: int = 0
    allow_remote: bool = Field(default=False, description="metagraph miners off loopback")
    good_uids: list[int] | None = Field(
        default=None,
        max_length=100_000,
        description="the sim pool's uids whose answers are good: the report's good-answer share",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        """One arrival model, a model id for URL targets, a ramp only with a rate."""
        if self.concurrency is not None and self.rate is not None:
            raise ValueError("rate: give either concurrency (closed loop) or rate (open loop)")
        if self.rate_to is not None and self.rate is None:
            raise ValueError("rate_to: a ramp needs a starting rate")
        if self.rate_to is not None and self.duration_s is None:
            raise ValueError("rate_to: a ramp needs duration_s, the time it ramps over")
        if self.target.startswith(("http://", "https://")) and not self.model:
            raise ValueError("model: required when the target is a URL")
        if not self.target.strip():
            raise ValueError("target: must not be empty")
        return self

    @property
    def open_loop(self) -> bool:
        """Whether requests arrive at a rate rather than from a fixed number of clients."""
        return self.rate is not None

    @property
    def workers(self) -> int:
        """Closed-loop clients."""
        return self.concurrency or DEFAULT_CONCURRENCY

    @property
    def limit_s(self) -> float:
        """How long the measured phase may last at most."""
        if self.duration_s is not None:
            return self.duration_s
        return DEFAULT_DURATION_S if self.requests is None else MAX_DURATION_S

    def rate_at(self, elapsed_s: float) -> float:
        """The offered rate `elapsed_s` into the measured phase (a ramp is linear)."""
        start = self.rate or 0.0
        if self.rate_to is None:
            return start
        share = min(max(elapsed_s / self.limit_s, 0.0), 1.0)
        return start + (self.rate_to - start) * share

    def describe(self) -> str:
        """One line: what load goes where."""
        if self.rate is None:
            shape = f"closed loop, {self.workers} clients"
        elif self.rate_to is None:
            shape = f"open loop, {self.rate:g} req/s ({self.arrival})"
        else:
            shape = f"open loop, {self.rate:g} → {self.rate_to:g} req/s ({self.arrival})"
        bound = [f"{self.requests} requests"] if self.requests else []
        if self.duration_s is not None or not self.requests:
            bound.append(f"{self.limit_s:g} s")
        return f"{self.target} ({self.model or 'no model'}): {shape}, {' or '.join(bound)}"


def parse_scenario(document: Any, source: str = "scenario") -> Scenario:
    """A checked scenario from a parsed document; `ScenarioError` naming the field."""
    if not isinstance(document, dict):
        raise ScenarioError(f"{source}: expected a mapping of scenario fields")
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: {describe_validation_error(exc)}") from None


def read_scenario_file(path: Path) -> dict[str, Any]:
    """The raw fields of a YAML scenario file, relative paths resolved next to it."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: invalid YAML ({_yaml_problem(exc)})") from None
    if not isinstance(document, dict):
        raise ScenarioError(f"{path}: expected a mapping of scenario fields")
    for key in ("target", "prompts"):
        value = document.get(key)
        if isinstance(value, str) and _is_relative_file(value):
            document[key] = str(path.parent / value)
    return document


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot parse"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _is_relative_file(value: str) -> bool:
    """A relative path to a file (not a URL, not a built-in prompt set name)."""
    return not value.startswith(("http://", "https://", "/")) and Path(value).suffix in (
        ".json",
        ".jsonl",
    )


def load_scenario(path: Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """A scenario file with command-line overrides on top."""
    document = merge(read_scenario_file(path), overrides or {})
    return parse_scenario(document, str(path))


def merge(document: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides on top; a flag for one arrival model drops the other's fields."""
    merged = dict(document)
    if overrides.get("concurrency") is not None:
        merged.pop("rate", None)
        merged.pop("rate_to", None)
    if overrides.get("rate") is not None:
        merged.pop("concurrency", None)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return merged
