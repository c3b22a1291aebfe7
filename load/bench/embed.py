"""Embedding latency for one request of ten ~60-token candidates, before and after each step.

    python -m load.bench.embed [--rounds N]

Variants run interleaved, round by round, so machine noise hits them alike:
sentence-transformers (torch) encoding the prompt and ten replies, when it is installed
(`pip install sentence-transformers torch==2.13.0`); the plain ONNX graph in fp32; the fused
graph in fp32; the fused graph in int8; int8 with the prompt's embedding cached; the
whole EmbeddingRanker.score through the micro-batcher; and the static table distilled from
the same model (ranking/static.py): its embeddings alone and the whole StaticRanker.score.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from load.hist import Latency
from ranking.base import Candidate, Prompt
from ranking.embedding import EmbeddingModel, EmbeddingRanker
from ranking.encoder import Encoder
from ranking.evalset import load_items
from ranking.minilm import ensure_onnx, model_dir
from ranking.static import StaticModel, StaticRanker

TOKENS = 60


def workload(encoder: Encoder, count: int = 10) -> tuple[str, list[str]]:
    """A prompt and `count` replies cut to about TOKENS tokens, from the eval set's best replies."""
    items = load_items()
    replies: list[str] = []
    for item in items:
        text = item.candidates[item.best]["text"]
        ids = encoder.tokenizer.encode(text, add_special_tokens=False).ids
        if len(ids) >= TOKENS:
            replies.append(encoder.tokenizer.decode(ids[:TOKENS]))
        if len(replies) == count:
            break
    return items[0].last_user, replies


def sentence_transformers() -> Callable[[Sequence[str]], Any] | None:
    """A plain sentence-transformers encode, or None when it is not installed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    model = SentenceTransformer(str(model_dir()), device="cpu")
    return lambda texts: model.encode(list(texts))


def main(argv: list[str] | None = None) -> int:
    """Print p50 and p90 per variant, and the speed-up against the first one."""
    parser = argparse.ArgumentParser(prog="python -m load.bench.embed", description=__doc__)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args(argv)

    int8 = Encoder(ensure_onnx(quantize=True), cache_bytes=0)
    fp32 = Encoder(ensure_onnx(quantize=False), cache_bytes=0)
    plain = Encoder(ensure_onnx(quantize=False, fused=False), cache_bytes=0)
    prompt, replies = workload(int8)
    texts = [prompt, *replies]
    cached = Encoder(ensure_onnx(quantize=True))
    model = EmbeddingModel()
    model.load_sync()
    ranker = EmbeddingRanker(model)
    request = Prompt(text=prompt, last_user=prompt, messages=({"role": "user", "content": prompt},))
    candidates = [Candidate(uid=i, text=t) for i, t in enumerate(replies)]
    loop = asyncio.new_event_loop()

    def cold_cache_except_prompt(encoder: Encoder) -> Callable[[], Any]:
        def run() -> Any:
            encoder.clear_cache()
            encoder.encode([prompt])  # the prompt was seen before (cache warm for it only)
            started = time.perf_counter()
            encoder.encode(texts)
            return time.perf_counter() - started

        return run

    def ranker_call() -> Any:
        model.encoder.clear_cache()
        model.encoder.encode([prompt])
        started = time.perf_counter()
        loop.run_until_complete(ranker.score(request, candidates))
        return time.perf_counter() - started

    variants: dict[str, Callable[[], Any]] = {}
    st = sentence_transformers()
    if st is not None:
        variants["sentence-transformers (torch), 11 texts"] = lambda: st(texts)
    variants["onnx fp32 plain graph, 11 texts"] = lambda: plain.run(texts)
    variants["onnx fp32 fused graph, 11 texts"] = lambda: fp32.run(texts)
    variants["onnx int8 fused graph, 11 texts"] = lambda: int8.run(texts)
    variants["int8 + prompt cached, 10 texts"] = cold_cache_except_prompt(cached)
    variants["EmbeddingRanker.score (batcher)"] = ranker_call
    static = StaticModel()
    static.load_sync()
    static_ranker = StaticRanker(static)
    variants["static table, 11 texts"] = lambda: static.embed(texts)
    variants["StaticRanker.score (inline)"] = lambda: loop.run_until_complete(
        static_ranker.score(request, candidates)
    )
    tokens = [len(int8.tokenizer.encode(t).ids) for t in texts]
    print(f"cpu cores: {os.cpu_count()}; tokens per text (with [CLS]/[SEP]): {tokens}")
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3):
        for fn in variants.values():
            fn()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            started = time.perf_counter()
            inner = fn()
            elapsed = inner if isinstance(inner, float) else time.perf_counter() - started
            timings[name].append(elapsed * 1000.0)
    loop.run_until_complete(model.aclose())
    loop.close()
    first = Latency.of(next(iter(timings.values()))).percentile(50) or 0.0
    print(f"{'variant':<42} {'p50 ms':>8} {'p90 ms':>8} {'vs first':>9}")
    for name, values in timings.items():
        latency = Latency.of(values)
        p50, p90 = (latency.percentile(q) or 0.0 for q in (50, 90))
        print(f"{name:<42} {p50:>8.1f} {p90:>8.1f} {first / p50:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
