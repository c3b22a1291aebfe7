"""The gateway's protocol: OpenAI requests, the `bitgate` blocks, the operations endpoints'
bodies, and the error body.

Requests are pydantic models (they validate what clients send). Responses are TypedDicts:
the gateway builds them as plain dicts for orjson, and the OpenAPI document shows their shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from typing_extensions import TypedDict

from router.scores import LeaderboardRow
from router.stats import Status
from router.width import WidthWhy

Strategy = Literal["best_of", "race", "cascade"]
# all: hear every miner asked; adaptive: stop once the miners still out are unlikely to win.
WaitMode = Literal["all", "adaptive"]
StopReason = Literal["all", "confident", "budget", "deadline", "first"]
CandidateStatus = Status | Literal["pending"]


def _a_number(value: Any) -> Any:
    """Refuse what pydantic would turn into an integer but JSON does not call a number."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


# An integer the gateway caps: 5e6 and 1.0e7 are numbers and capped as such; true and "7" are not.
Count = Annotated[int, BeforeValidator(_a_number)]


class OpenAIModel(BaseModel):
    """Base of the OpenAI models: unknown fields are kept and passed on to miners."""

    model_config = ConfigDict(extra="allow")


class BitgateOptions(BaseModel):
    """Per-request routing options, sent in the body as `bitgate` (`extra_body` in clients)."""

    model_config = ConfigDict(extra="forbid")

    top_k: Count | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Miners considered, the pool's top by incentive (at most the pool's "
        "max_top_k). Default: the pool's top_k.",
    )
    sample: Count | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Miners asked, drawn from the top_k by score (at most max_top_k). "
        "Default: the pool's sample, or top_k.",
    )
    strategy: Strategy | None = Field(
        default=None,
        description="best_of: wait for the miners that can still win (or every miner, with "
        "wait: all) and return the best reply; race: return, or start streaming, the first "
        "usable reply and rank the rest afterwards; cascade: ask the best-known miners first "
        "and widen only when the ranking is not confident. Default: the pool's strategy.",
    )
    wait: WaitMode | None = Field(
        default=None,
        description="all: hear every miner asked before choosing; adaptive: stop waiting once "
        "the miners still out are unlikely to change the winner, or the wait budget is spent "
        "(late replies are still ranked and scored). Default: the pool's wait.",
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description="Deadline of every miner call, in seconds (at most the pool's "
        "max_timeout_s). Default: the pool's timeout_s.",
    )
    ranker: str | None = Field(
        default=None,
        min_length=1,
        description="Name of the ranker that scores the replies (blend, embedding, heuristic, "
        "filters, or one the pools file defines). Default: the pool's ranker.",
    )
    explore: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Uniform share of the draw when sample < top_k (0: by score alone). "
        "Default: the pool's explore.",
    )
    uids: list[Count] | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Ask only these miners (by uid), those of them the pool may ask now; a "
        "uid the pool does not have is a 400. Default: any eligible miner.",
    )
    exclude_uids: list[Count] | None = Field(
        default=None,
        max_length=1024,
        description="Never ask these miners (by uid). Default: none excluded.",
    )

    def over(self, pool: PoolRouting, n: int = 1) -> Routing:
        """These options merged over a pool's routing defaults: what the request asked, else
        the pool's (as vLLM merges a request's sampling over the server's defaults)."""
        named = len(set(self.uids)) if self.uids else None
        top_k = max(self.top_k or named or pool.top_k, n)
        return Routing(
            top_k=top_k,
            sample=max(self.sample or named or pool.sample or top_k, n),
            strategy=self.strategy or pool.strategy,
            wait=self.wait or pool.wait,
            timeout_s=self.timeout_s or pool.timeout_s,
            ranker=self.ranker or pool.ranker,
            explore=pool.explore if self.explore is None else self.explore,
            only=frozenset(self.uids) if self.uids else None,
            exclude=frozenset(self.exclude_uids or ()),
        )


class PoolRouting(Protocol):
    """A pool's routing defaults, as `gateway.config.RoutingDefaults` declares them."""

    top_k: int
    sample: int | None
    strategy: Strategy
    wait: WaitMode
    timeout_s: float
    ranker: str
    explore: float


@dataclass(frozen=True, slots=True)
class Routing:
    """How one request picks and waits for miners: its options over its pool's defaults."""

    top_k: int
    sample: int
    strategy: Strategy
    wait: WaitMode
    timeout_s: float
    ranker: str
    explore: float
    only: frozenset[int] | None
    exclude: frozenset[int]


class ChatMessage(OpenAIModel):
    """One turn of a conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class SamplingFields(OpenAIModel):
    """Fields shared by chat and completion requests that the gateway checks itself."""

    model: str = Field(min_length=1)
    stream: bool | None = False
    n: Count | None = Field(
        default=1,
        ge=1,
        le=1024,
        description="How many replies: the top n ranked distinct replies, one per miner.",
    )
    max_tokens: Count | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    bitgate: BitgateOptions | None = Field(
        default=None, description="The gateway's routing options for this request."
    )


class ChatCompletionRequest(SamplingFields):
    """`POST /v1/chat/completions`."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Count | None = Field(default=None, ge=1)


class CompletionRequest(SamplingFields):
    """`POST /v1/completions`."""

    prompt: str | list[str] = Field(min_length=1)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError("the gateway ranks one prompt per request; send a string")
        return prompt


class ErrorDetail(BaseModel):
    """The fields of an OpenAI error."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error the gateway returns: `{"error": {message, type, param, code}}`."""

    error: ErrorDetail


class MinerRef(TypedDict):
    """The miner whose reply was returned."""

    uid: int
    hotkey: str
    model: str | None  # the model id the miner reported


class ChoiceRef(TypedDict):
    """Who answered choice `index` of a request with n > 1."""

    index: int
    uid: int
    hotkey: str
    model: str | None


class CandidateBlock(TypedDict):
    """What one miner asked did: its status, latency and reward (pending: still running)."""

    uid: int
    hotkey: str
    status: CandidateStatus
    latency_ms: NotRequired[float]
    reward: NotRequired[float | None]  # None: not ranked (failed, or ranked after the answer)
    error: NotRequired[str]
    reasons: NotRequired[list[str]]  # why the filters penalised the reply: empty, echo, …


class FanoutUsage(TypedDict):
    """Tokens every miner asked used, not only the winner's (estimated where one reported none)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    calls: int
    estimated: bool


class WidthBlock(TypedDict):
    """How wide the request went and why: `full` (sample granted), `pool` (fewer miners),
    `load` (shrunk to what the pool could spare), `floor` (held at min_sample)."""

    asked: int
    sample: int
    why: WidthWhy


class WaitBlock(TypedDict):
    """How long the request waited: replies heard before choosing and why it stopped
    (`all`, `confident`, `budget`, `deadline`; a race: `first`), and its queue wait."""

    mode: WaitMode
    replies: int
    stopped: StopReason
    queue_ms: float


class BitgateBlock(TypedDict):
    """The `bitgate` block of every response (in a stream, on the last chunk)."""

    pool: str
    strategy: Strategy
    ranker: str
    miner: MinerRef
    candidates: list[CandidateBlock]
    overhead_ms: float  # the gateway's own time, beyond waiting for miners
    fanout_usage: FanoutUsage
    width: NotRequired[WidthBlock]
    wait: NotRequired[WaitBlock]
    choices: NotRequired[list[ChoiceRef]]  # n > 1: the miner of each choice, best first


class CompletionReply(TypedDict):
    """A chat or text completion as the chosen miner sent it, its `model` the pool's name."""

    id: str
    object: str
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: NotRequired[dict[str, Any]]
    bitgate: BitgateBlock


class ModelCard(TypedDict):
    """One pool, as an OpenAI model."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(TypedDict):
    """`GET /v1/models`."""

    object: Literal["list"]
    data: list[ModelCard]


class Leaderboard(TypedDict):
    """`GET /v1/pools/{pool}/miners`: the pool's miners, best score first."""

    object: Literal["list"]
    pool: str
    data: list[LeaderboardRow]


class Health(TypedDict):
    """`GET /healthz`."""

    status: Literal["ok"]


class StoreHealth(TypedDict):
    """The state store: which kind, whether it answers in time, and how its last sync went."""

    kind: str
    healthy: bool
    state: Literal["ok", "slow", "down"]
    last_sync_s: float


class PoolSync(TypedDict):
    """Where a pool's metagraph comes from, and how its syncs and epochs went."""

    source: str
    last_sync_age_s: NotRequired[float | None]  # chain pools
    sync_failures: NotRequired[int]  # chain pools
    weights_epoch: int | None
    epochs_run: NotRequired[int]  # local pools
    last_epoch: NotRequired[int | None]  # local pools
    epoch_error: str | None


class PoolReadiness(TypedDict):
    """One pool's metagraph: its size, block, last load error, and sync."""

    neurons: int
    block: int
    metagraph_error: str | None
    sync: NotRequired[PoolSync]


class LoopReport(TypedDict):
    """One supervised background loop: running or restarting, how often, and why."""

    state: Literal["running", "restarting"]
    restarts: int
    last_error: str | None


class GatewayLoad(TypedDict):
    """What the gateway holds: requests in flight (a stream to its last byte), finished races
    whose other miners are still answering (both count against `max_inflight`), asyncio tasks."""

    inflight: int
    settling: int
    max_inflight: int
    asyncio_tasks: int


class Readiness(TypedDict):
    """`GET /readyz`: 200 when every pool has miners and every background loop runs, else 503."""

    ready: bool
    store: StoreHealth
    pools: dict[str, PoolReadiness]
    dead_background_tasks: list[str]
    load: GatewayLoad
    background_loops: dict[str, LoopReport]
