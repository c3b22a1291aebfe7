"""The embedding ranker on the real all-MiniLM-L6-v2 (ONNX Runtime), and its micro-batcher."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import numpy as np
import pytest

from ranking.base import Candidate, Prompt, RankerUnavailable
from ranking.batcher import MicroBatcher
from ranking.embedding import EmbeddingModel, EmbeddingRanker, query_text
from ranking.encoder import Encoder, text_key
from ranking.minilm import ensure_onnx

TEXTS = [
    "What is the capital of Australia?",
    "The capital of Australia is Canberra.",
    "Bananas ripen faster next to apples.",
    "How do I reverse a list in Python?",
]
# Cosine similarities of TEXTS from sentence-transformers' own encode of the same model.
REFERENCE = [
    [1.0, 0.823, 0.1343, 0.1319],
    [0.823, 1.0, 0.1332, 0.0812],
    [0.1343, 0.1332, 1.0, 0.0352],
    [0.1319, 0.0812, 0.0352, 1.0],
]
REFERENCE_HEAD = [0.08219, 0.00912, -0.02013, 0.06534, -0.01733, 0.05242]  # TEXTS[1], dims 0-5

QUESTION = "Why is the sky blue?"
GOOD = (
    "The sky is blue because of Rayleigh scattering: air molecules scatter short blue "
    "wavelengths of sunlight much more strongly than red ones, so blue light reaches us "
    "from every direction."
)
AGREES = (
    "Air scatters blue light far more than red light (Rayleigh scattering), so the sky looks blue."
)
ALSO_AGREES = "Sunlight's blue wavelengths are scattered most by the molecules of the atmosphere."
WRONG = "The sky is blue because it reflects the colour of the oceans back down to us."
OFF_TOPIC = "A good sourdough starter needs flour, water and a few days at room temperature."


@pytest.fixture(scope="module")
def model() -> Iterator[EmbeddingModel]:
    """The real model, loaded once for this module."""
    loaded = EmbeddingModel()
    loaded.load_sync()
    yield loaded


@pytest.fixture
async def ranker(model: EmbeddingModel) -> AsyncIterator[EmbeddingRanker]:
    """A ranker on the shared model; its batcher worker belongs to this test's loop."""
    yield EmbeddingRanker(model)
    await model.aclose_worker()


def prompt(question: str = QUESTION) -> Prompt:
    """A one-turn conversation."""
    return Prompt(question, question, ({"role": "user", "content": question},))


def test_onnx_fp32_matches_sentence_transformers() -> None:
    encoder = Encoder(ensure_onnx(quantize=False), cache_bytes=0)
    vectors = encoder.run(TEXTS)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE, atol=2e-3)
    np.testing.assert_allclose(vectors[1][:6], REFERENCE_HEAD, atol=1e-3)


def test_int8_model_stays_close_to_the_reference(model: EmbeddingModel) -> None:
    vectors = model.encoder.run(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE, atol=0.05)


def test_the_encoder_caches_texts_it_has_seen(model: EmbeddingModel) -> None:
    encoder = model.encoder
    encoder.clear_cache()
    first = encoder.encode(["a prompt asked twice", "x"])
    started = time.perf_counter()
    again = encoder.encode(["a prompt asked twice", "x"])
    assert time.perf_counter() - started < 0.005
    np.testing.assert_array_equal(first, again)


def test_the_cache_keeps_digests_not_texts_and_stays_within_its_bytes() -> None:
    encoder = Encoder(ensure_onnx(quantize=True), cache_bytes=20_000)
    long_prompt = "tell me about " + "verylongword " * 5000
    first = encoder.encode([long_prompt, *(f"question number {i}" for i in range(40))])
    cache = encoder._cache
    assert 0 < len(cache) <= encoder.cache_entries
    assert encoder.cache_bytes <= 20_000
    assert all(isinstance(key, bytes) and len(key) == 16 for key in cache)
    assert text_key("question number 39") in cache and text_key(long_prompt) not in cache
    again = encoder.encode(["question number 39"])  # recent: served from the cache
    np.testing.assert_array_equal(again[0], first[-1])


async def test_a_correct_reply_beats_an_off_topic_one(ranker: EmbeddingRanker) -> None:
    ranking = await ranker.score(prompt(), [Candidate(0, OFF_TOPIC), Candidate(1, GOOD)])
    assert ranking.rewards[1] > ranking.rewards[0]
    assert ranking.rewards[0] < 0.2


async def test_the_reply_the_others_agree_with_beats_a_lone_wrong_one(
    ranker: EmbeddingRanker,
) -> None:
    candidates = [Candidate(i, t) for i, t in enumerate([WRONG, GOOD, AGREES, ALSO_AGREES])]
    ranking = await ranker.score(prompt(), candidates)
    assert ranking.rewards[1] > ranking.rewards[0]
    assert max(ranking.rewards) != ranking.rewards[0]


async def test_a_copy_of_the_prompt_is_marked_and_sinks(ranker: EmbeddingRanker) -> None:
    ranking = await ranker.score(prompt(), [Candidate(0, QUESTION), Candidate(1, GOOD)])
    assert ranking.reasons[0] == ["prompt_duplicate"]
    assert ranking.rewards[0] < ranking.rewards[1]


def test_follow_up_questions_are_read_with_their_context() -> None:
    messages = (
        {"role": "user", "content": "What's the capital of Japan?"},
        {"role": "assistant", "content": "Tokyo."},
        {"role": "user", "content": "How many people live there?"},
    )
    query = query_text(Prompt("", "How many people live there?", messages))
    assert query.splitlines() == ["What's the capital of Japan?", "Tokyo.", messages[2]["content"]]


async def test_while_loading_the_ranker_is_unavailable() -> None:
    idle = EmbeddingModel()
    with pytest.raises(RankerUnavailable) as info:
        await EmbeddingRanker(idle).score(prompt(), [Candidate(0, GOOD)])
    assert info.value.reason == "loading"


async def test_concurrent_requests_share_model_calls(model: EmbeddingModel) -> None:
    batcher = MicroBatcher(model.encoder.run)
    requests = [[f"question {i}", GOOD, f"{AGREES} ({i})"] for i in range(12)]
    try:
        results = await asyncio.gather(*(batcher.embed(texts) for texts in requests))
    finally:
        await batcher.aclose()
    assert batcher.requests == 12
    assert batcher.calls < 12  # several requests per model call
    for texts, vectors in zip(requests, results, strict=True):
        # int8 activations are quantised per model call, so sharing one moves a vector a little.
        alone = model.encoder.run(texts)
        assert vectors.shape == alone.shape
        assert np.min(np.sum(vectors * alone, axis=1)) > 0.95


async def test_inference_runs_off_the_event_loop(model: EmbeddingModel) -> None:
    batcher = MicroBatcher(model.encoder.run)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    texts = [f"{GOOD} {i}" for i in range(64)]
    task = asyncio.get_running_loop().create_task(ticker())
    try:
        started = time.perf_counter()
        await batcher.embed(texts)
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        await batcher.aclose()
    assert elapsed > 0.02
    assert ticks >= 5  # the loop kept running while the model worked


async def test_stopping_the_batcher_answers_every_waiting_request() -> None:
    """Requests queued behind a model call are told the model stopped, not left hanging."""
    started = threading.Event()
    release = threading.Event()

    def slow_encode(texts: Sequence[str]) -> np.ndarray:
        started.set()
        release.wait(5)
        return np.zeros((len(texts), 4), dtype=np.float32)

    batcher = MicroBatcher(slow_encode)
    first = asyncio.ensure_future(batcher.embed(["a"]))
    await asyncio.to_thread(started.wait, 5)
    second = asyncio.ensure_future(batcher.embed(["b"]))
    await asyncio.sleep(0.01)
    await batcher.stop_worker()
    release.set()
    for waiting in (first, second):
        with pytest.raises(RankerUnavailable, match="stopped"):
            await asyncio.wait_for(waiting, 2)
    await batcher.aclose()
