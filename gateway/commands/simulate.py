"""`bitgate subnet simulate`: sim miners of mixed quality, honest validators that are real
gateways, dishonest ones with fixed weights, and local Yuma Consensus over N epochs.

Each epoch every honest validator serves real requests through its own gateway (selection,
fan-out over loopback, ranking, EMA scores); its scores become its weights; the validators'
weights go through one Yuma epoch (the same code a `source: local` pool runs), and every
gateway then serves from the new metagraph, as it would after reading the chain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.app import start_state, stop_state
from gateway.config import RoutingDefaults, Settings
from gateway.errors import GatewayError
from gateway.protocol import ChatCompletionRequest
from gateway.serving.fanout_queue import serve_queued
from gateway.settings import RankingSettings
from gateway.state import GatewayState
from miners.sim.pool import SimPool, start_pool
from miners.sim.profiles import MinerProfile, fill
from miners.sim.question_bank import QUESTIONS
from router.axon_policy import LOOPBACK
from router.metagraph import Metagraph
from router.store import MemoryStore
from router.subnet.epochs import LocalConfig, LocalEpochs, LocalValidator
from router.subnet.simulation import EpochRecord, History, epoch_table, plot, summary
from router.subnet.weights import ValidatorWeights, compute_weights
from router.subnet.yuma import YumaParams

POOL = "sim"
STAKE = 1000.0
CONCURRENCY = 8
MIX: tuple[dict[str, Any], ...] = (
    {"name": "good-fast", "quality": "good", "latency": {"kind": "normal", "ms": 15, "sd_ms": 5}},
    {"name": "good", "quality": "good", "latency": {"kind": "normal", "ms": 40, "sd_ms": 10}},
    {"name": "partial", "quality": "partial", "latency": 20},
    {"name": "wrong", "quality": "wrong", "latency": 20},
    {"name": "off-topic", "quality": "off_topic", "latency": 20},
    {"name": "refusal", "quality": "refusal", "latency": 10},
    {"name": "flaky", "quality": "good", "latency": 20, "failure": "error", "failure_rate": 0.5},
    {"name": "truncated", "quality": "truncated", "latency": 20},
)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """The simulated subnet's size and the traffic of each epoch."""

    miners: int = 8
    honest: int = 2
    dishonest: int = 1
    epochs: int = 10
    requests: int = 24
    sample: int = 4
    yuma_version: int = 2
    seed: int = 0


def profiles(count: int) -> list[MinerProfile]:
    """`count` miners of the mix: good, partial, wrong, off-topic, refusing, flaky, truncated."""
    return fill([MinerProfile.model_validate(p) for p in MIX], count)


def validators(config: SimulationConfig, colluder: int) -> list[LocalValidator]:
    """Honest validators (weights from their scores) and dishonest ones, which put all their
    weight on one colluding miner (one that only refuses)."""
    honest = [LocalValidator(hotkey=f"honest-{i}", stake=STAKE) for i in range(config.honest)]
    cheats = [
        LocalValidator(hotkey=f"dishonest-{i}", stake=STAKE, weights={colluder: 1.0})
        for i in range(config.dishonest)
    ]
    return honest + cheats


async def _traffic(state: GatewayState, count: int, rng: random.Random) -> None:
    """`count` chat requests through the gateway's planner and strategies, some at once."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(prompt: str) -> None:
        raw = {"model": POOL, "messages": [{"role": "user", "content": prompt}]}
        # A request that every asked miner failed still moved their scores.
        async with gate:
            with contextlib.suppress(GatewayError):
                request = ChatCompletionRequest.model_validate(raw)
                serve = state.strategies.by_name["best_of"].serve
                # Through the queue, as a real request: it waits for room, not refused.
                await serve_queued(
                    state.planner, state.queue, state.metrics, serve, "chat", raw, request
                )

    await asyncio.gather(*(one(rng.choice(QUESTIONS).prompt) for _ in range(count)))


def _asked(states: list[GatewayState], uids: list[int]) -> list[int]:
    """How often each miner has been asked, over every honest validator."""
    return [
        sum(s.requests for state in states if (s := state.scoreboard.stats(POOL).get(uid)))
        for uid in uids
    ]


async def _run(
    config: SimulationConfig, sims: SimPool, workdir: Path, report: Callable[[str], None]
) -> History:
    """Start the honest gateways over the sim pool and run every epoch."""
    graph = sims.metagraph(POOL)
    uids = [n.uid for n in graph.neurons]
    uniform = [n.model_copy(update={"incentive": 1.0 / len(uids)}) for n in graph.neurons]
    base = Metagraph(netuid=graph.netuid, name=POOL, block=0, neurons=uniform)
    path = workdir / "sim.json"
    path.write_text(base.model_dump_json())
    names = [p.name for p in sims.profiles]
    colluder = names.index("refusal") if "refusal" in names else len(names) - 1
    local = LocalConfig(
        validators=validators(config, colluder),
        yuma=YumaParams(yuma_version=3 if config.yuma_version == 3 else 2),
    )
    # The heuristic ranker: instant and the same every run, where the embedding model would
    # load in the background mid-simulation and change the ranking while it runs. Validators
    # score every miner they sample: no early stop, no narrowing.
    sample = config.sample or len(uids)
    routing = RoutingDefaults(
        top_k=len(uids),
        sample=config.sample,
        min_sample=sample,
        wait="all",
        timeout_s=5.0,
        ranker="heuristic",
    )
    history = History(
        miners=[f"{uid}:{name}" for uid, name in zip(uids, names, strict=True)],
        validators=[v.hotkey for v in local.validators],
        honest=[v.weights is None for v in local.validators],
        stake=[v.stake for v in local.validators],
        good=[p.quality == "good" and p.failure == "none" for p in sims.profiles],
    )
    zeros = [0.0] * len(local.validators)
    history.epochs.append(
        EpochRecord(0, [n.incentive for n in uniform], [0] * len(uids), zeros, zeros)
    )
    chain = MemoryStore()
    runner = LocalEpochs(POOL, local, chain, epoch_s=1.0)
    rng = random.Random(config.seed)
    states: list[GatewayState] = []
    try:
        for i in range(config.honest):
            # Everything in memory, whatever BITGATE_* says: nothing outside is touched.
            settings = Settings(
                metagraph=path,
                pools=None,
                redis_url=None,
                routing=routing,
                seed=config.seed + i,
                ranking=RankingSettings(embedding_model=False),
                axon_allow=[LOOPBACK],
            )
            states.append(await start_state(settings))
        before = _asked(states, uids)
        for number in range(1, config.epochs + 1):
            await asyncio.gather(*(_traffic(s, config.requests, rng) for s in states))
            own: ValidatorWeights | None = None
            for validator, state in zip(local.validators, states, strict=False):
                weights = compute_weights(
                    state.pools[POOL].metagraph,
                    state.scoreboard.stats(POOL),
                    hotkey=validator.hotkey,
                    epoch=number,
                )
                own = own or weights
                await chain.save_weights(POOL, validator.hotkey, weights.to_json())
            assert own is not None
            fresh = await runner.run(base, own, number)
            assert fresh is not None and runner.last_result is not None
            for state in states:
                state.pools[POOL].adopt(fresh)
            after = _asked(states, uids)
            result = runner.last_result
            record = EpochRecord(
                number,
                [round(float(x), 6) for x in result.incentive],
                [a - b for a, b in zip(after, before, strict=True)],
                [round(float(x), 6) for x in result.dividends],
                [round(float(x), 6) for x in result.validator_trust],
            )
            before = after
            history.epochs.append(record)
            report(epoch_table(history, record))
    finally:
        for state in states:
            await stop_state(state)
    return history


async def simulate(
    config: SimulationConfig, report: Callable[[str], None] = lambda _: None
) -> History:
    """Run the whole simulation on loopback ports and return its history."""
    if config.honest < 1 or config.miners < 2 or config.epochs < 1 or config.requests < 1:
        raise ValueError("need at least 1 honest validator, 2 miners, 1 epoch and 1 request")
    sims = await start_pool(profiles(config.miners), seed=config.seed)
    try:
        with tempfile.TemporaryDirectory(prefix="bitgate-sim-") as workdir:
            return await _run(config, sims, Path(workdir), report)
    finally:
        await sims.stop()


def register(parser: argparse.ArgumentParser) -> None:
    """`bitgate subnet simulate` options."""
    parser.description = __doc__
    config = SimulationConfig()  # the defaults, said once
    parser.add_argument("--miners", type=int, default=config.miners, help="sim miners")
    parser.add_argument("--validators", type=int, default=config.honest, help="honest validators")
    parser.add_argument("--dishonest", type=int, default=config.dishonest, help="dishonest ones")
    parser.add_argument("--epochs", type=int, default=config.epochs, help="epochs")
    parser.add_argument(
        "--requests", type=int, default=config.requests, help="requests per validator/epoch"
    )
    parser.add_argument("--sample", type=int, default=config.sample, help="miners per request")
    parser.add_argument(
        "--yuma-version", type=int, choices=[2, 3], default=config.yuma_version, help="Yuma"
    )
    parser.add_argument("--seed", type=int, default=config.seed, help="seed of the traffic")
    parser.add_argument("--png", type=Path, help="write the plot here (needs bitgate[load])")
    parser.add_argument("--json", type=Path, help="write every epoch's numbers here")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the simulation, print each epoch and a summary, write the PNG and JSON if asked."""
    config = SimulationConfig(
        miners=args.miners,
        honest=args.validators,
        dishonest=args.dishonest,
        epochs=args.epochs,
        requests=args.requests,
        sample=args.sample,
        yuma_version=args.yuma_version,
        seed=args.seed,
    )
    report = (lambda _: None) if args.quiet else (lambda text: print(text + "\n", flush=True))
    try:
        history = asyncio.run(simulate(config, report))
    except ValueError as exc:
        print(f"bitgate subnet simulate: error: {exc}", file=sys.stderr)
        return 2
    print(summary(history))
    if args.json:
        args.json.write_text(json.dumps(history.to_json(), indent=1))
    if args.png:
        if plot(history, args.png):
            print(f"plot: {args.png}")
        else:
            print("no plot: matplotlib is missing (pip install 'bitgate[load]')", file=sys.stderr)
    return 0
