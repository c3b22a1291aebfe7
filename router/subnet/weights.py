"""Validator weights from EMA scores, as a validator computes them before `set_weights`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from router.metagraph import Metagraph
from router.stats import MinerStats
from router.subnet.yuma import U16_MAX, BoolArray, FloatArray

# Float slack when checking a weight against the max-weight share.
SHARE_TOLERANCE = 1e-12


class ValidatorWeights(BaseModel):
    """One validator's weights over a pool's neurons at one epoch (parallel lists, by uid)."""

    model_config = ConfigDict(frozen=True)

    hotkey: str
    epoch: int = 0
    block: int = 0
    uids: list[int] = Field(default_factory=list)
    hotkeys: list[str] = Field(default_factory=list)
    weights: list[float] = Field(default_factory=list)

    def by_uid(self) -> dict[int, tuple[str, float]]:
        """Each uid's (miner hotkey, weight)."""
        return {
            uid: (hotkey, weight)
            for uid, hotkey, weight in zip(self.uids, self.hotkeys, self.weights, strict=True)
        }

    @property
    def empty(self) -> bool:
        """Whether no miner has any weight (nothing worth setting)."""
        return not any(w > 0 for w in self.weights)

    def to_json(self) -> bytes:
        """The JSON kept in the state store."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ValidatorWeights:
        """Rebuild from the stored JSON."""
        return cls.model_validate_json(raw)


def cap_share(weights: FloatArray, max_share: float) -> FloatArray:
    """Weights summing to 1 with none above `max_share`, the excess spread over the rest.

    When fewer miners have weight than `1 / max_share`, no split can meet the limit; they then
    share equally, which is as close as the limit allows.
    """
    total = weights.sum()
    if total <= 0:
        return np.zeros_like(weights)
    share: FloatArray = weights / total
    positive = share > 0
    count = int(positive.sum())
    if count * max_share <= 1.0 + SHARE_TOLERANCE:
        equal: FloatArray = positive / count
        return equal
    capped = np.zeros_like(positive)
    while True:
        over = (share > max_share + SHARE_TOLERANCE) & ~capped
        if not over.any():
            return share
        capped |= over
        share[capped] = max_share
        free = ~capped
        share[free] *= (1.0 - max_share * capped.sum()) / share[free].sum()


def weights_from_scores(
    scores: FloatArray, answered: BoolArray, max_share: float = 1.0
) -> FloatArray:
    """L1-normalised, non-negative weights, zero for miners that never answered, share-capped."""
    raw = np.where(answered, np.clip(scores, 0.0, None), 0.0)
    return cap_share(raw, max_share)


def compute_weights(
    metagraph: Metagraph,
    stats: Mapping[int, MinerStats],
    *,
    hotkey: str,
    max_share: float = 1.0,
    epoch: int = 0,
) -> ValidatorWeights:
    """This validator's weights over the metagraph from its EMA scores; stats of an old hotkey
    on a uid do not count."""
    neurons = metagraph.neurons
    known = [stats.get(n.uid) for n in neurons]
    current = [
        s if s is not None and s.hotkey == n.hotkey else None
        for s, n in zip(known, neurons, strict=True)
    ]
    scores = np.array([s.score if s else 0.0 for s in current], dtype=np.float64)
    answered = np.array([bool(s and s.successes > 0) for s in current], dtype=bool)
    weights = weights_from_scores(scores, answered, max_share) if neurons else np.zeros(0)
    return ValidatorWeights(
        hotkey=hotkey,
        epoch=epoch,
        block=metagraph.block,
        uids=[n.uid for n in neurons],
        hotkeys=[n.hotkey for n in neurons],
        weights=[round(float(w), 9) for w in weights],
    )


def to_u16(weights: Sequence[float]) -> list[int]:
    """Weights as set_weights sends them: scaled so the largest is 65535, rounded."""
    values = np.asarray(weights, dtype=np.float64)
    top = values.max() if values.size else 0.0
    if top <= 0:
        return [0] * len(values)
    return [int(v) for v in np.rint(values / top * U16_MAX)]
