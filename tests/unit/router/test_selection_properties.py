"""Property tests of selection: any pool, scores and options give distinct eligible miners."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from router.metagraph import Axon, Neuron
from router.selection import eligible, rank_by_incentive, select_candidates

NOW = 1_000.0

neurons = st.lists(
    st.builds(
        lambda uid, incentive, port, active, permit: Neuron(
            uid=uid,
            hotkey=f"hk{uid}",
            axon=Axon(ip="127.0.0.1", port=port),
            incentive=incentive,
            active=active,
            validator_permit=permit,
        ),
        st.integers(0, 4095),
        st.floats(0, 1e6, allow_nan=False),
        st.integers(0, 65535),
        st.booleans(),
        st.booleans(),
    ),
    max_size=40,
    unique_by=lambda n: n.uid,
)
weights = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1, 1)


@settings(max_examples=300, deadline=None)
@given(
    neurons,
    st.integers(1, 64),
    st.integers(1, 64),
    st.dictionaries(st.integers(0, 4095), weights, max_size=40),
    st.dictionaries(st.integers(0, 4095), st.floats(0, 2 * NOW, allow_nan=False), max_size=40),
    st.floats(0, 1),
    st.integers(0, 2**32),
)
def test_selection_gives_distinct_eligible_miners_within_the_sample(
    pool: list[Neuron],
    top_k: int,
    sample: int,
    scores: dict[int, float],
    cooling: dict[int, float],
    explore: float,
    seed: int,
) -> None:
    chosen = select_candidates(
        rank_by_incentive(pool),
        top_k=top_k,
        sample=sample,
        scores=scores,
        cooling_until=cooling,
        explore=explore,
        now=NOW,
        rng=random.Random(seed),
    )
    allowed = {n.uid for n in eligible(pool, cooling, NOW)}
    picked = [n.uid for n in chosen]
    assert len(picked) == len(set(picked))
    assert set(picked) <= allowed
    assert len(picked) == min(sample, top_k, len(allowed))
