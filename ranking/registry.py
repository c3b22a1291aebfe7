"""Ranker definitions (as they appear in a pools file or `BITGATE_RANKERS`) and building them.

Built-in names, always present:

| name        | what it is                                                              |
|-------------|-------------------------------------------------------------------------|
| `heuristic` | word-overlap relevance, agreement and penalties; no model               |
| `static`    | relevance and agreement from MiniLM distilled to a token table (inline) |
| `embedding` | the same from the full MiniLM model, in a worker thread (ranking.embedding) |
| `filters`   | the filters alone: 1 for a clean reply, less for a degenerate one        |
| `blend`     | the default: the static ranker's rewards times the filters              |

Definitions add names, for example in a pools file:

```yaml
rankers:
  rm:     {kind: remote, url: "http://gpu-box:8000", model: "my-reward-model", api: pooling}
  judge:  {kind: judge, url: "http://llm:8000/v1", model: "qwen", api_key_env: JUDGE_KEY}
  strict: {kind: blend, weights: {rm: 0.6, embedding: 0.3, heuristic: 0.1},
           filters: {blocklist: ["(?i)buy now"], min_words: 3}}
pools:
  - metagraph: sn1.json
    ranker: strict
```

Every top-level ranker other than `heuristic` falls back, in order, to its `fallback` list
and finally to `heuristic`, so ranking never fails a request; each fallback is logged and
counted through `on_fallback(ranker, reason)`; the ranking names the ranker that answered
(`Ranking.ranked_by`, `Ranking.note`), and `ranker_states` says which rankers can answer now.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ranking.base import Ranker, ranker_state
from ranking.blend import BlendRanker, FallbackHook, FallbackRanker, FilteredRanker
from ranking.embedding import EmbeddingModel, EmbeddingRanker
from ranking.filters import FACTORS, FilterConfig, Filters
from ranking.heuristic import HeuristicRanker
from ranking.judge import JudgeRanker
from ranking.remote import RemoteApi, RemoteRewardRanker
from ranking.request_filters import RequestAwareRanker
from ranking.static import StaticModel, StaticRanker

DEFAULT_RANKER = "blend"
DEFAULT_BLEND = {"static": 1.0}
BUILT_IN = ("heuristic", "static", "embedding", "filters", "blend")


class FilterSpec(BaseModel):
    """Filter settings of a blend."""

    model_config = ConfigDict(extra="forbid")

    min_words: int = Field(default=2, ge=0)
    blocklist: list[str] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list)

    @field_validator("blocklist")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad blocklist pattern {pattern!r}: {exc}") from None
        return patterns

    @field_validator("disable")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(FACTORS))
        if unknown:
            raise ValueError(f"unknown filters {unknown}; known: {sorted(FACTORS)}")
        return names

    def build(self) -> Filters:
        """The filters these settings describe."""
        return Filters(FilterConfig(self.min_words, tuple(self.blocklist), frozenset(self.disable)))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fallback: list[str] = Field(default_factory=list)


class RemoteSpec(_Spec):
    """A reward model behind vLLM's `/pooling` or `/score` API."""

    kind: Literal["remote"]
    url: str = Field(min_length=1)
    model: str = Field(min_length=1)
    api: RemoteApi = "pooling"
    timeout_s: float = Field(default=5.0, gt=0, le=120)


class JudgeSpec(_Spec):
    """An OpenAI-compatible model that grades the candidates."""

    kind: Literal["judge"]
    url: str = Field(min_length=1)
    model: str = Field(min_length=1)
    api_key_env: str | None = None
    timeout_s: float = Field(default=20.0, gt=0, le=300)


class BlendSpec(_Spec):
    """A weighted sum of other rankers' normalised rewards, times the filters."""

    kind: Literal["blend"]
    weights: dict[str, float] = Field(min_length=1)
    filters: FilterSpec | None = Field(default_factory=FilterSpec)

    @field_validator("weights")
    @classmethod
    def _non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        return weights


RankerSpec = Annotated[RemoteSpec | JudgeSpec | BlendSpec, Field(discriminator="kind")]


class RankerConfigError(ValueError):
    """Ranker definitions that name unknown rankers or refer to themselves."""


def default_specs() -> dict[str, RankerSpec]:
    """The built-in blend."""
    return {DEFAULT_RANKER: BlendSpec(kind="blend", weights=dict(DEFAULT_BLEND))}


class _Builder:
    def __init__(
        self,
        specs: Mapping[str, RankerSpec],
        session: aiohttp.ClientSession | None,
        embedding: EmbeddingModel,
        on_fallback: FallbackHook | None,
        static: StaticModel,
    ) -> None:
        self.specs = {**default_specs(), **specs}
        self.session = session
        self.on_fallback = on_fallback
        self.heuristic = HeuristicRanker()
        self.raw: dict[str, Ranker] = {
            "heuristic": self.heuristic,
            "static": StaticRanker(static),
            "embedding": EmbeddingRanker(embedding),
            "filters": FilteredRanker("filters", None, Filters()),
        }
        self.building: list[str] = []

    def get(self, name: str) -> Ranker:
        """The bare ranker called `name` (with its own fallback list), built once."""
        if name in self.raw:
            return self.raw[name]
        spec = self.specs.get(name)
        if spec is None:
            known = ", ".join(sorted({*self.raw, *self.specs}))
            raise RankerConfigError(f"unknown ranker {name!r} (known: {known})")
        if name in self.building:
            raise RankerConfigError(f"rankers refer to each other: {' -> '.join(self.building)}")
        self.building.append(name)
        ranker = self.make(name, spec)
        if spec.fallback:
            ranker = FallbackRanker(
                name, [ranker, *(self.get(f) for f in spec.fallback)], self.on_fallback
            )
        self.building.pop()
        self.raw[name] = ranker
        return ranker

    def make(self, name: str, spec: RankerSpec) -> Ranker:
        if isinstance(spec, BlendSpec):
            components = [(self.get(n), w) for n, w in spec.weights.items()]
            filters = spec.filters.build() if spec.filters is not None else None
            return BlendRanker(name, components, filters, self.on_fallback)
        if self.session is None:
            raise RankerConfigError(f"ranker {name!r} needs an HTTP session")
        if isinstance(spec, RemoteSpec):
            return RemoteRewardRanker(
                name, spec.url, spec.model, self.session, spec.api, spec.timeout_s
            )
        api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        return JudgeRanker(name, spec.url, spec.model, self.session, api_key, spec.timeout_s)


def build_rankers(
    specs: Mapping[str, RankerSpec],
    session: aiohttp.ClientSession | None,
    embedding: EmbeddingModel,
    on_fallback: FallbackHook | None = None,
    static: StaticModel | None = None,
) -> dict[str, Ranker]:
    """Every built-in and defined ranker by name; all but `heuristic` fall back to heuristic.

    Without a `static` model the static ranker stays `loading` (and falls back) for good.
    Each is wrapped in the request-aware filters (JSON, schemas, tools), whatever it is.
    """
    builder = _Builder(specs, session, embedding, on_fallback, static or StaticModel())
    names = [*BUILT_IN, *(n for n in builder.specs if n not in BUILT_IN)]
    rankers: dict[str, Ranker] = {"heuristic": RequestAwareRanker(builder.heuristic)}
    for name in names:
        if name == "heuristic":
            continue
        chain = FallbackRanker(name, [builder.get(name), builder.heuristic], on_fallback)
        rankers[name] = RequestAwareRanker(chain)
    return rankers


def check_names(specs: Mapping[str, RankerSpec], wanted: Iterable[str]) -> None:
    """Raise RankerConfigError if a wanted ranker, or one a definition refers to, is unknown."""
    known = {*BUILT_IN, *specs}
    for name, spec in specs.items():
        refs = [*spec.fallback, *(spec.weights if isinstance(spec, BlendSpec) else ())]
        missing = sorted(set(refs) - known)
        if missing:
            raise RankerConfigError(f"ranker {name!r} refers to unknown rankers {missing}")
    missing = sorted(set(wanted) - known)
    if missing:
        raise RankerConfigError(f"unknown rankers {missing}; known: {sorted(known)}")


def ranker_states(rankers: Mapping[str, Ranker], names: Iterable[str]) -> dict[str, str]:
    """Each named ranker's state: `ready`, `loading`, `disabled` or `failed: why`."""
    return {name: ranker_state(rankers[name]) for name in dict.fromkeys(names) if name in rankers}


def rankers_report(
    rankers: Mapping[str, Ranker], defaults: Iterable[str], allow_degraded: bool = False
) -> tuple[bool, dict[str, object]]:
    """Whether the pools' default rankers can rank now (or degraded is allowed), and the states.

    A default ranker that is loading, failed or disabled makes the gateway not ready: it would
    serve every request with a stand-in ranker.
    """
    states = ranker_states(rankers, rankers)
    wanted = list(dict.fromkeys(defaults))
    degraded = [name for name in wanted if states.get(name, "ready") != "ready"]
    report: dict[str, object] = {"defaults": wanted, "states": states, "degraded": degraded}
    return (not degraded or allow_degraded), report


def depends_on(specs: Mapping[str, RankerSpec], roots: Iterable[str], target: str) -> bool:
    """Whether any ranker in `roots`, through blends and fallbacks, uses the ranker `target`."""
    every = {**default_specs(), **specs}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name in seen or name not in every:
            continue
        seen.add(name)
        spec = every[name]
        todo += [*spec.fallback, *(spec.weights if isinstance(spec, BlendSpec) else ())]
    return False
