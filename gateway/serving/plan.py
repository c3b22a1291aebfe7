"""Turning one validated request into a plan: the pool, the options, the chosen miners."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.config import PoolConfig
from gateway.errors import BadRequest, ModelNotFound, NoEligibleMiner, PoolFull
from gateway.protocol import BitgateOptions, SamplingFields, Strategy, WaitMode
from gateway.runtime.context_cap import token_cap
from gateway.runtime.pools import Pool
from gateway.serving.forwarding import allowed_fields
from ranking.base import Prompt, Ranker, bounded, message_text
from ranking.constraints import ConstraintError, constraints_of
from router.backpressure import Backpressure
from router.concurrency import ConcurrencyLimits
from router.metagraph import Neuron
from router.miner_client import Kind
from router.scores import Scoreboard
from router.selection import Choice, select_candidates
from router.width import WidthWhy, select_width


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a strategy needs to serve one request."""

    kind: Kind
    pool: Pool
    strategy: Strategy
    ranker: Ranker
    timeout_s: float
    candidates: list[Neuron]
    prompt: Prompt
    body: bytes
    client_stream: bool
    include_usage: bool
    n: int = 1
    # A race streamed live from the miners (else a finished result is replayed).
    live: bool = False
    # How often a stream that waits sends an SSE comment.
    keepalive_s: float = 5.0
    # Adaptive fan-out: the width asked for and given, why, and how best_of waits.
    sample: int = 0
    width_why: WidthWhy = "full"
    wait: WaitMode = "all"
    wait_risk: float = 0.1
    wait_budget: float = 1.0
    queue_ms: float = 0.0
    # Miners with room that were not chosen: a best_of asks one in place of a busy miner.
    spares: tuple[Neuron, ...] = ()


def prompt_of(kind: Kind, raw: dict[str, Any]) -> Prompt:
    """What the user asked, flattened and bounded for the rankers, with its constraints.

    400 when `response_format`, `tools` or `tool_choice` cannot be honoured.
    """
    try:
        constraints = constraints_of(raw, chat=kind == "chat")
    except ConstraintError as exc:
        raise BadRequest(str(exc), param=exc.param) from None
    if kind == "completion":
        prompt = raw["prompt"]
        text = bounded(prompt if isinstance(prompt, str) else "\n".join(prompt))
        return Prompt(text=text, last_user=text, constraints=constraints)
    messages = raw["messages"]
    turns = [message_text(m.get("content")) for m in messages]
    users = [t for m, t in zip(messages, turns, strict=True) if m.get("role") == "user"]
    return Prompt(
        text=bounded("\n".join(turns)),
        last_user=bounded(users[-1] if users else turns[-1]),
        messages=tuple(messages),
        constraints=constraints,
    )


def miner_body(kind: Kind, raw: dict[str, Any], config: PoolConfig, stream: bool) -> bytes:
    """The body sent to miners: the client's fields the pool forwards, model per pool.

    `n` stays with the gateway (each miner gives one reply) unless the pool forwards it.
    """
    allowed = allowed_fields(kind, config.forward_fields)
    dropped = set() if stream else {"stream_options"}
    if not config.forward_n:
        dropped.add("n")
    forward = {k: v for k, v in raw.items() if k in allowed and k not in dropped}
    forward["stream"] = stream
    if config.miner_model:
        forward["model"] = config.miner_model
    else:
        forward.pop("model", None)
    return orjson.dumps(forward)


def _check_limits(
    options: BitgateOptions,
    config: PoolConfig,
    raw: dict[str, Any],
    request: SamplingFields,
    context: int | None = None,
) -> None:
    """400 when a request asks for more tokens, fan-out or time than its pool allows."""
    cap = token_cap(config, context)
    for name in ("max_tokens", "max_completion_tokens"):
        asked = getattr(request, name, None)  # validated: 5e6 is the integer 5000000
        if asked is None:
            continue
        if asked > cap:
            raise BadRequest(f"{name} may be at most {cap} in this pool.", param=name)
        raw[name] = asked  # miners get the integer, not 1.0e3
    limits = (
        ("bitgate.top_k", options.top_k, config.max_top_k),
        ("bitgate.sample", options.sample, config.max_top_k),
        ("bitgate.timeout_s", options.timeout_s, config.max_timeout_s),
        ("bitgate.uids", len(options.uids or ()), config.max_top_k),
    )
    for name, asked, limit in limits:
        if asked is not None and asked > limit:
            raise BadRequest(f"{name} may be at most {limit} in this pool.", param=name)


def _check_uids(options: BitgateOptions, pool: Pool) -> None:
    """400 when a request names miners the pool does not have."""
    known = {n.uid for n in pool.ranked}
    for name, uids in (("uids", options.uids), ("exclude_uids", options.exclude_uids)):
        unknown = sorted(set(uids or ()) - known)
        if unknown:
            raise BadRequest(
                f"bitgate.{name} names uids this pool does not have: {unknown[:10]}.",
                param=f"bitgate.{name}",
            )


class Planner:
    """Resolves pools, options and candidates; raises the 4xx/503 errors of that stage."""

    def __init__(
        self,
        pools: dict[str, Pool],
        rankers: dict[str, Ranker],
        scoreboard: Scoreboard,
        rng: random.Random,
        keepalive_s: float = 5.0,
        backpressure: Backpressure | None = None,
        limits: ConcurrencyLimits | None = None,
    ) -> None:
        self.limits = limits
        self.pools = pools
        self.rankers = rankers
        self.scoreboard = scoreboard
        self.rng = rng
        self.keepalive_s = keepalive_s
        self.backpressure = backpressure

    def pool(self, model: str) -> Pool:
        """The pool serving `model`, or 404."""
        pool = self.pools.get(model)
        if pool is None:
            raise ModelNotFound(
                f"The model '{model}' does not exist; GET /v1/models lists the pools.",
                param="model",
            )
        return pool

    def ranker(self, name: str) -> Ranker:
        """The ranker called `name`, or 400."""
        ranker = self.rankers.get(name)
        if ranker is None:
            known = ", ".join(sorted(self.rankers))
            raise BadRequest(f"Unknown ranker '{name}'; known: {known}.", param="bitgate.ranker")
        return ranker

    def plan(
        self, kind: Kind, raw: dict[str, Any], request: SamplingFields, waiting: int = 0
    ) -> Plan:
        """Pick the pool, merge the options, and choose the miners (`waiting`: requests
        queued for a miner with room, who share the free slots)."""
        pool = self.pool(request.model)
        config = pool.config
        opts = request.bitgate or BitgateOptions()
        _check_limits(opts, config, raw, request, pool.context_tokens)
        _check_uids(opts, pool)
        n = request.n or 1
        if n > config.max_top_k:
            raise BadRequest(f"n may be at most {config.max_top_k} in this pool.", param="n")
        routing = opts.over(config, n)
        who = "None of the chosen miners" if opts.uids or opts.exclude_uids else "No miner"
        why: WidthWhy = "full"
        spares: tuple[Neuron, ...] = ()
        choice: Choice = {
            "top_k": routing.top_k,
            "sample": routing.sample,
            "scores": self.scoreboard.scores(pool.name),
            "cooling_until": self.scoreboard.cooling_until(pool.name),
            "explore": routing.explore,
            "now": time.time(),
            "rng": self.rng,
            "only": routing.only,
            "exclude": routing.exclude,
            "backpressure": self.backpressure,
        }
        if self.limits is None:
            candidates = select_candidates(pool.ranked, **choice)
        else:
            floor = max(min(config.min_sample, routing.sample), n)
            width = select_width(
                pool.ranked,
                min_sample=floor,
                limits=self.limits,
                waiting=waiting,
                **choice,
            )
            candidates, why, spares = width.candidates, width.why, width.spares
            if width.eligible and width.free < min(floor, width.eligible):
                raise PoolFull(
                    f"{who} of pool '{pool.name}' has room for a request now; retry shortly.",
                    headers={"Retry-After": "1"},
                )
        if not candidates:
            policy = f" The axon policy {pool.refusal}." if pool.refusal and not pool.ranked else ""
            raise NoEligibleMiner(f"{who} of pool '{pool.name}' can take a request now.{policy}")
        strategy = routing.strategy
        client_stream = bool(request.stream)
        stream_options = raw.get("stream_options")
        prompt = prompt_of(kind, raw)
        # Only a reply's end shows whether its JSON or tool call is valid, and n > 1 needs
        # whole replies: those races wait for whole replies and replay the chosen ones.
        shaped = prompt.constraints is not None and (
            prompt.constraints.wants_json or bool(prompt.constraints.tools)
        )
        live = client_stream and strategy == "race" and n == 1 and not shaped
        ranker = self.ranker(routing.ranker)
        if self.limits is not None:  # nothing can refuse the request past this point
            for neuron in candidates:
                self.limits.reserve(neuron)
        return Plan(
            kind=kind,
            pool=pool,
            strategy=strategy,
            ranker=ranker,
            timeout_s=routing.timeout_s,
            candidates=candidates,
            prompt=prompt,
            body=miner_body(kind, raw, config, stream=live),
            client_stream=client_stream,
            include_usage=isinstance(stream_options, dict)
            and bool(stream_options.get("include_usage")),
            n=n,
            live=live,
            keepalive_s=self.keepalive_s,
            sample=routing.sample,
            width_why=why,
            wait=routing.wait,
            wait_risk=config.wait_risk,
            wait_budget=config.wait_budget,
            spares=spares,
        )
