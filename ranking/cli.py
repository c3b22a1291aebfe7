"""`bitgate eval ranking`: how often each ranker puts the best reply first, and how fast."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from pydantic import TypeAdapter, ValidationError

from ranking.base import Ranker
from ranking.embedding import EmbeddingModel
from ranking.evalset import EVAL_FILE, WORSE_KINDS, load_items
from ranking.evalset_structured import STRUCTURED_FILE, STRUCTURED_KINDS
from ranking.evaluate import RandomRanker, Report, evaluate
from ranking.registry import RankerConfigError, RankerSpec, build_rankers
from ranking.request_filters import RequestAwareRanker
from ranking.static import StaticModel

DEFAULT_RANKERS = (
    "random",
    "heuristic",
    "filters",
    "heuristic+filters",
    "embedding",
    "embedding+heuristic",
    "embedding+filters",
    "static",
    "blend",
)
# Comparison blends that the evaluation shows beside the gateway's built-in ones.
EXTRA_BLENDS: dict[str, Any] = {
    "heuristic+filters": {"kind": "blend", "weights": {"heuristic": 1.0}},
    "embedding+heuristic": {"kind": "blend", "weights": {"embedding": 0.7, "heuristic": 0.3}},
    "embedding+filters": {"kind": "blend", "weights": {"embedding": 1.0}},  # the old default
}
_SPECS = TypeAdapter(dict[str, RankerSpec])


def register(ranking: argparse.ArgumentParser) -> None:
    """`bitgate eval ranking` arguments."""
    ranking.add_argument(
        "--ranker", action="append", help="ranker name (repeatable; default: the usual set)"
    )
    ranking.add_argument(
        "--split",
        choices=["all", "dev", "test", "structured"],
        default="all",
        help="structured: requests with a JSON schema or tools (ranking/data/structured.jsonl)",
    )
    ranking.add_argument("--data", type=Path, help="eval JSONL file (default: the split's)")
    ranking.add_argument(
        "--rankers-file", type=Path, help="YAML/JSON with a `rankers:` mapping (e.g. a pools file)"
    )
    ranking.add_argument("--limit", type=int, help="only the first N items")
    ranking.add_argument("--by-kind", action="store_true", help="also show losses by reply kind")
    ranking.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ranking.add_argument("--fp32", action="store_true", help="the embedding model unquantised")
    ranking.add_argument(
        "--without-request-filters",
        action="store_true",
        help="rank as before the schema and tool checks (for comparison)",
    )
    ranking.set_defaults(run=lambda args: asyncio.run(run(args)))


def load_specs(path: Path | None) -> dict[str, RankerSpec]:
    """Comparison blends plus the `rankers:` of a file, if given."""
    raw: dict[str, Any] = dict(EXTRA_BLENDS)
    if path is not None:
        loaded = yaml.safe_load(path.read_text()) or {}
        raw.update(loaded.get("rankers", {}) if isinstance(loaded, dict) else {})
    return _SPECS.validate_python(raw)


def table(reports: Sequence[Report], by_kind: bool, kinds: Sequence[str] = WORSE_KINDS) -> str:
    """The figures as a fixed-width table."""
    head = (
        f"{'ranker':<20} {'top-1':>6} {'pairwise':>8} {'p50 ms':>8} {'p99 ms':>8} {'fallbacks':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(
            f"{r.name:<20} {r.top1:>6.3f} {r.pairwise:>8.3f} {r.percentile(50):>8.2f} "
            f"{r.percentile(99):>8.2f} {r.fallbacks:>9d}"
        )
    if by_kind:
        lines += ["", "share of items where a reply of this kind scored >= the best reply:"]
        lines.append(f"{'ranker':<20} " + " ".join(f"{k[:9]:>9}" for k in kinds))
        for r in reports:
            lines.append(f"{r.name:<20} " + " ".join(f"{r.loss_rate(k):>9.3f}" for k in kinds))
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    """Load the model and the set, evaluate each ranker, print the table."""
    structured = args.split == "structured"
    split = None if args.split == "all" else args.split
    data = args.data or (STRUCTURED_FILE if structured else EVAL_FILE)
    items = load_items(data, split)[: args.limit]
    kinds = STRUCTURED_KINDS if structured else WORSE_KINDS
    names = args.ranker or list(DEFAULT_RANKERS)
    model = EmbeddingModel(quantize=not args.fp32)
    static = StaticModel()
    fallbacks: Counter[str] = Counter()

    def count(ranker: str, reason: str) -> None:
        fallbacks[f"{ranker}:{reason}"] += 1

    async with aiohttp.ClientSession() as session:
        try:
            rankers: dict[str, Ranker] = build_rankers(
                load_specs(args.rankers_file), session, model, count, static
            )
        except (RankerConfigError, ValidationError, OSError) as exc:
            print(f"bitgate eval: {exc}", file=sys.stderr)
            return 2
        if args.without_request_filters:
            rankers = {
                n: r.ranker if isinstance(r, RequestAwareRanker) else r for n, r in rankers.items()
            }
        rankers["random"] = RandomRanker()
        unknown = [n for n in names if n not in rankers]
        if unknown:
            print(
                f"bitgate eval: unknown rankers {unknown}; known: {sorted(rankers)}",
                file=sys.stderr,
            )
            return 2
        try:
            await asyncio.to_thread(model.load_sync)
            await asyncio.to_thread(static.load_sync)
        except Exception as exc:
            print(f"bitgate eval: the embedding model did not load: {exc}", file=sys.stderr)
            return 1
        print(f"{len(items)} prompts ({args.split}), ten candidates each, one request at a time;")
        print(f"cpu cores: {os.cpu_count()}; embedding model: {model.encoder.path.name}\n")

        def cold() -> None:
            model.encoder.clear_cache()  # every request embeds its texts afresh

        reports = []
        for name in names:
            reports.append(
                await evaluate(rankers[name], items, cold, lambda: sum(fallbacks.values()))
            )
        await model.aclose()
    print(table(reports, args.by_kind, kinds))
    if fallbacks:
        print(f"\nfallbacks: {dict(fallbacks)}")
    if args.json:
        args.json.write_text(json.dumps([_as_dict(r, kinds) for r in reports], indent=2))
    return 0


def _as_dict(report: Report, kinds: Sequence[str]) -> dict[str, Any]:
    return {
        "ranker": report.name,
        "items": report.items,
        "top1": round(report.top1, 4),
        "pairwise": round(report.pairwise, 4),
        "p50_ms": round(report.percentile(50), 3),
        "p99_ms": round(report.percentile(99), 3),
        "fallbacks": report.fallbacks,
        "losses_by_kind": {k: round(report.loss_rate(k), 4) for k in kinds},
    }
