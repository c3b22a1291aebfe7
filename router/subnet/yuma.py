"""One Yuma Consensus epoch, vectorised with numpy, as the Bittensor chain computes it.

Validators (rows) hold stake and set weights over miners (columns). Consensus is the
stake-weighted median of each column; weights above it are clipped; miners earn incentive
from the clipped ranks and validators earn dividends through their bonds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

U16_MAX = 65535
# Float slack for "at least kappa of the stake": exactly half the stake must still decide.
STAKE_TOLERANCE = 1e-9

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class YumaParams(BaseModel):
    """Subnet hyperparameters for the epoch, in the chain's units and with its defaults."""

    model_config = ConfigDict(frozen=True)

    kappa: int = Field(default=32767, ge=0, le=U16_MAX)
    bonds_moving_average: int = Field(default=900_000, ge=0, le=1_000_000)
    tempo: int = Field(default=360, ge=0, le=U16_MAX)
    yuma_version: Literal[2, 3] = 2
    max_validators: int = Field(default=64, ge=1)

    @property
    def majority(self) -> float:
        """Kappa as a fraction of the stake: the share that decides consensus."""
        return self.kappa / U16_MAX

    @property
    def alpha(self) -> float:
        """The bonds EMA rate: 1 - bonds_moving_average / 1e6."""
        return 1.0 - self.bonds_moving_average / 1_000_000


DEFAULT_PARAMS = YumaParams()


@dataclass(frozen=True)
class EpochResult:
    """What one epoch yields: per-miner and per-validator vectors and the new bonds."""

    consensus: FloatArray
    incentive: FloatArray
    dividends: FloatArray
    validator_trust: FloatArray
    rank: FloatArray
    bonds: FloatArray
    miner_emission: FloatArray
    validator_emission: FloatArray


def _numbers(name: str, value: Any, ndim: int) -> FloatArray:
    """An array of finite, non-negative numbers with `ndim` dimensions, or a ValueError."""
    if ndim == 2 and isinstance(value, list | tuple) and value and isinstance(value[0], Sequence):
        for i, row in enumerate(value):
            if not isinstance(row, Sequence):
                raise ValueError(f"{name}: row {i} is not a list")
            if len(row) != len(value[0]):
                raise ValueError(
                    f"{name}: row {i} has {len(row)} entries, row 0 has {len(value[0])}"
                )
    try:
        raw = np.asarray(value)
    except ValueError:
        raise ValueError(
            f"{name}: must be a {'matrix' if ndim == 2 else 'list'} of numbers"
        ) from None
    if raw.ndim != ndim:
        kind = "a matrix (one row per validator)" if ndim == 2 else "a flat list"
        raise ValueError(f"{name}: must be {kind}, got {raw.ndim} dimension(s)")
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"{name}: must contain only numbers")
    array = raw.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: must contain only finite numbers")
    if (array < 0).any():
        raise ValueError(f"{name}: must not contain negative numbers")
    return array


def _check_length(name: str, array: npt.NDArray[Any], expected: int, what: str) -> None:
    """Raise a ValueError unless `array` has one entry per `what`."""
    if array.shape[0] != expected:
        raise ValueError(f"{name}: has {array.shape[0]} entries, expected {expected} ({what})")


def _flags(name: str, value: Any, length: int) -> BoolArray:
    """A boolean vector with one entry per validator; all True when not given."""
    if value is None:
        return np.ones(length, dtype=bool)
    flags = np.asarray(value)
    if flags.ndim != 1 or flags.dtype.kind not in "biu":
        raise ValueError(f"{name}: must be a flat list of booleans")
    _check_length(name, flags, length, "one per validator")
    return flags.astype(bool)


def _weights_u16(value: Any, validators: int) -> FloatArray:
    """Raw set_weights values as a validators x miners array of whole numbers in [0, 65535]."""
    weights = _numbers("weights", value, ndim=2)
    _check_length("weights", weights, validators, "one row per validator")
    if weights.shape[1] == 0:
        raise ValueError("weights: rows must cover at least one miner")
    if (weights > U16_MAX).any():
        raise ValueError(f"weights: must not exceed {U16_MAX} (u16 set_weights values)")
    if (weights != np.floor(weights)).any():
        raise ValueError("weights: must be whole numbers (raw u16 set_weights values)")
    return weights


def max_upscale(weights_u16: FloatArray) -> FloatArray:
    """Scale each row so its largest entry is 65535, flooring as set_weights does."""
    ints = weights_u16.astype(np.int64)
    row_max = ints.max(axis=1, keepdims=True)
    scaled = (ints * U16_MAX) // np.maximum(row_max, 1)
    return np.where(row_max > 0, scaled, ints).astype(np.float64)


def normalize(vector: FloatArray) -> FloatArray:
    """The vector scaled to sum 1, or zeros when it sums to 0."""
    total = vector.sum()
    return vector / total if total > 0 else np.zeros_like(vector)


def _normalize_along(matrix: FloatArray, axis: int) -> FloatArray:
    """The matrix scaled to sum 1 along `axis`; all-zero slices stay zero."""
    sums = matrix.sum(axis=axis, keepdims=True)
    scaled = np.zeros_like(matrix)
    np.divide(matrix, sums, out=scaled, where=sums > 0)
    return scaled


def normalize_rows(matrix: FloatArray) -> FloatArray:
    """Each row scaled to sum 1; zero rows stay zero."""
    return _normalize_along(matrix, axis=1)


def normalize_columns(matrix: FloatArray) -> FloatArray:
    """Each column scaled to sum 1; zero columns stay zero."""
    return _normalize_along(matrix, axis=0)


def weighted_median_columns(stake: FloatArray, weights: FloatArray, majority: float) -> FloatArray:
    """Per column, the largest w such that validators with W_ij >= w hold >= majority stake."""
    # Work on miners x validators so each sort runs over contiguous memory; ties may sort in
    # any order, since the first position that reaches the majority still names the median.
    scores = np.ascontiguousarray(np.where(stake[:, None] > 0, weights, 0.0).T)
    order = np.argsort(-scores, axis=1)
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    held = np.cumsum(stake[order], axis=1)
    reached = held >= majority - STAKE_TOLERANCE
    first = reached.argmax(axis=1)[:, None]
    median = np.take_along_axis(sorted_scores, first, axis=1)[:, 0]
    return np.where(reached.any(axis=1), median, 0.0)


def top_stake_permits(stake: FloatArray, max_validators: int) -> BoolArray:
    """Validator permits for the `max_validators` largest stakes (ties to the lower index)."""
    permits = np.zeros(stake.shape[0], dtype=bool)
    permits[np.argsort(-stake, kind="stable")[:max_validators]] = True
    return permits


def _stale_mask(
    validators: int, miners: int, uids: tuple[Any, Any], blocks: tuple[Any, Any]
) -> BoolArray:
    """Entries to drop: self-weights (same uid) and weights set at or before registration."""
    stale = np.zeros((validators, miners), dtype=bool)
    for names, pair in (("validator_uids/miner_uids", uids), ("last_update/registered_at", blocks)):
        if (pair[0] is None) != (pair[1] is None):
            raise ValueError(f"{names}: give both or neither")
    if uids[0] is not None:
        validator_uids = _numbers("validator_uids", uids[0], ndim=1)
        miner_uids = _numbers("miner_uids", uids[1], ndim=1)
        _check_length("validator_uids", validator_uids, validators, "one per validator")
        _check_length("miner_uids", miner_uids, miners, "one per miner")
        stale |= validator_uids[:, None] == miner_uids[None, :]
    if blocks[0] is not None:
        last_update = _numbers("last_update", blocks[0], ndim=1)
        registered_at = _numbers("registered_at", blocks[1], ndim=1)
        _check_length("last_update", last_update, validators, "one per validator")
        _check_length("registered_at", registered_at, miners, "one per miner")
        stale |= last_update[:, None] <= registered_at[None, :]
    return stale


def _yuma2(
    stake: FloatArray, clipped: FloatArray, incentive: FloatArray, old: FloatArray, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Yuma 2: column-normalised EMA of stake-weighted bonds; dividends from bonds x incentive."""
    delta = normalize_columns(stake[:, None] * clipped)
    bonds = normalize_columns(alpha * delta + (1.0 - alpha) * normalize_columns(old))
    return bonds, normalize(bonds @ incentive)


def _yuma3(
    stake: FloatArray, clipped: FloatArray, incentive: FloatArray, old: FloatArray, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Yuma 3: absolute EMA of clipped weights in [0, 1]; dividends scaled by stake."""
    bonds = np.clip((1.0 - alpha) * old + alpha * clipped, 0.0, 1.0)
    return bonds, normalize(stake * (normalize_columns(bonds) @ incentive))


def split_emission(
    emission: float, incentive: FloatArray, dividends: FloatArray, stake: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Split a pot between miners (by incentive) and validators (by dividends, else stake)."""
    total = incentive.sum() + dividends.sum()
    if total > 0:
        return incentive * emission / total, dividends * emission / total
    return np.zeros_like(incentive), normalize(stake) * emission


def _old_bonds(bonds: Any, shape: tuple[int, ...]) -> FloatArray:
    """Last epoch's bonds, validators x miners; zeros for a fresh subnet."""
    if bonds is None:
        return np.zeros(shape)
    old = _numbers("bonds", bonds, ndim=2)
    if old.shape != shape:
        raise ValueError(f"bonds: shape {old.shape} does not match weights {shape}")
    return old


def _stake_share(
    stake: FloatArray, active: Any, validator_permit: Any, params: YumaParams
) -> tuple[FloatArray, BoolArray]:
    """Stake normalised over active validators with a permit, and the permits."""
    is_active = _flags("active", active, stake.shape[0])
    if validator_permit is None:
        permit = top_stake_permits(stake, params.max_validators)
    else:
        permit = _flags("validator_permit", validator_permit, stake.shape[0])
    active_stake = np.where(is_active & permit, stake, 0.0)
    if active_stake.sum() <= 0:
        raise ValueError("stake: no active validator with a permit holds any stake")
    return normalize(active_stake), permit


def epoch(
    stake: Any,
    weights_u16: Any,
    bonds: Any = None,
    params: YumaParams = DEFAULT_PARAMS,
    active: Any = None,
    validator_permit: Any = None,
    *,
    emission: float = 1.0,
    validator_uids: Any = None,
    miner_uids: Any = None,
    last_update: Any = None,
    registered_at: Any = None,
) -> EpochResult:
    """Run one Yuma Consensus epoch over validators (rows) and miners (columns)."""
    raw_stake = _numbers("stake", stake, ndim=1)
    validators = raw_stake.shape[0]
    weights = _weights_u16(weights_u16, validators)
    miners = weights.shape[1]
    old = _old_bonds(bonds, weights.shape)
    if not (isinstance(emission, int | float) and math.isfinite(emission) and emission >= 0):
        raise ValueError("emission: must be a non-negative finite number")
    stake_share, permit = _stake_share(raw_stake, active, validator_permit, params)

    stale = _stale_mask(
        validators, miners, (validator_uids, miner_uids), (last_update, registered_at)
    )
    kept = permit[:, None] & ~stale
    normalized = normalize_rows(np.where(kept, max_upscale(weights), 0.0))
    consensus = weighted_median_columns(stake_share, normalized, params.majority)
    clipped = np.minimum(normalized, consensus[None, :])
    rank = stake_share @ clipped
    incentive = normalize(rank)

    old = np.where(kept, old, 0.0)
    update = _yuma3 if params.yuma_version == 3 else _yuma2
    new_bonds, dividends = update(stake_share, clipped, incentive, old, params.alpha)
    miner_emission, validator_emission = split_emission(
        float(emission), incentive, dividends, stake_share
    )
    return EpochResult(
        consensus=consensus,
        incentive=incentive,
        dividends=dividends,
        validator_trust=clipped.sum(axis=1),
        rank=rank,
        bonds=new_bonds,
        miner_emission=miner_emission,
        validator_emission=validator_emission,
    )
