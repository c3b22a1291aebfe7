"""Tests for router.subnet.yuma: one Yuma Consensus epoch."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from router.subnet.yuma import (
    U16_MAX,
    YumaParams,
    epoch,
    max_upscale,
    weighted_median_columns,
)

STAKE = [0.5, 0.3, 0.2]
AGREE = [4, 3, 2, 1]
ONLY_LAST = [0, 0, 0, 1]
# The worked example: the two larger validators agree, the smallest backs miner 3 only.
EXAMPLE = [AGREE, AGREE, ONLY_LAST]
# The same weights with the 0.5 validator dissenting: it backs miner 3 only.
DISSENT = [ONLY_LAST, AGREE, AGREE]
YUMA3 = YumaParams(yuma_version=3)

# Raw rows are max-upscaled with floor, [4,3,2,1] -> [65535, 49151, 32767, 16383], so the
# normalised row is 0.4 +- 4e-6 rather than exactly 0.4; hand values hold to 1e-4.
HAND = 1e-4


def random_case(seed: int, validators: int = 8, miners: int = 16) -> tuple[list[float], list]:
    """Random stake and raw u16 weights for property tests."""
    rng = np.random.default_rng(seed)
    stake = (rng.random(validators) + 0.01).tolist()
    weights = rng.integers(0, U16_MAX + 1, (validators, miners)).tolist()
    return stake, weights


def brute_force_median(stake: np.ndarray, column: np.ndarray, majority: float) -> float:
    """The chain's definition, one candidate at a time."""
    candidates = [w for w in column if stake[column >= w].sum() >= majority]
    return float(max(candidates, default=0.0))


def test_params_defaults_are_the_chains() -> None:
    params = YumaParams()
    assert (params.kappa, params.bonds_moving_average, params.tempo) == (32767, 900_000, 360)
    assert (params.yuma_version, params.max_validators) == (2, 64)
    assert params.majority == pytest.approx(0.49999237, abs=1e-8)
    assert params.alpha == pytest.approx(0.1)


def test_params_are_frozen_and_checked() -> None:
    with pytest.raises(ValidationError):
        YumaParams().kappa = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        YumaParams(yuma_version=4)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        YumaParams(kappa=70000)


def test_max_upscale_floors_like_set_weights() -> None:
    rows = np.array([[4, 3, 2, 1], [0, 0, 0, 1], [0, 0, 0, 0], [65535, 2, 0, 0]], dtype=float)
    assert max_upscale(rows).tolist() == [
        [65535, 49151, 32767, 16383],
        [0, 0, 0, 65535],
        [0, 0, 0, 0],
        [65535, 2, 0, 0],
    ]


def test_worked_example_yuma2() -> None:
    # Columns 0-2: the 0.8 of stake that sets 0.4/0.3/0.2 decides; the 0.2 validator sets 0.
    # Column 3: 1.0 from 0.2 of stake is not a majority, 0.1 from all of it is: C = 0.1.
    # Clipped rows: [.4,.3,.2,.1] twice and [0,0,0,.1]; ranks .8*[.4,.3,.2] and .1 (sum .82).
    # Bonds (fresh): columns 0-2 split .625/.375/0, column 3 .5/.3/.2, so
    # D = [(.625*.72 + .5*.1), (.375*.72 + .3*.1), .2*.1] / .82.
    result = epoch(STAKE, EXAMPLE)
    assert result.consensus == pytest.approx([0.4, 0.3, 0.2, 0.1], abs=HAND)
    assert result.incentive == pytest.approx([0.3902, 0.2927, 0.1951, 0.1220], abs=HAND)
    assert result.validator_trust == pytest.approx([1.0, 1.0, 0.1], abs=HAND)
    assert result.rank == pytest.approx([0.32, 0.24, 0.16, 0.1], abs=HAND)
    assert result.dividends == pytest.approx([0.6098, 0.3659, 0.0244], abs=HAND)
    assert result.bonds[:, 0] == pytest.approx([0.625, 0.375, 0.0])
    assert result.bonds[:, 3] == pytest.approx([0.5, 0.3, 0.2], abs=HAND)


def test_worked_example_yuma3() -> None:
    # Bonds are 0.1 * clipped weights; per column they split 1/2,1/2,0 (miners 0-2) and
    # 1/3 each (miner 3). D ~ S * sum_j share_ij * I_j: .5*(.5*.878 + .122/3), .3*(same),
    # .2*(.122/3), normalised -> [.6120, .3672, .0207].
    result = epoch(STAKE, EXAMPLE, params=YUMA3)
    assert result.bonds[0] == pytest.approx([0.04, 0.03, 0.02, 0.01], abs=1e-5)
    assert result.bonds[2] == pytest.approx([0.0, 0.0, 0.0, 0.01], abs=1e-5)
    assert result.dividends == pytest.approx([0.6120, 0.3672, 0.0207], abs=HAND)


def test_dissent_with_exactly_half_the_stake() -> None:
    # The 0.5 validator backs miner 3 only (row [0,0,0,1]); the 0.3 and 0.2 ones set [4,3,2,1].
    # Each side holds exactly half the stake, and half is >= kappa (0.49999237), so both decide:
    # columns 0-2 take the pair's .4/.3/.2 and column 3 takes the dissenter's 1.0.
    # Nothing is clipped, so trust is 1 all round; ranks are .5*[.4,.3,.2] and .5*1 + .5*.1.
    # Bonds: columns 0-2 split 0/.6/.4, column 3 .5/.03/.02 over .55, so D = [.5, .3, .2].
    result = epoch(STAKE, DISSENT)
    assert result.consensus == pytest.approx([0.4, 0.3, 0.2, 1.0], abs=HAND)
    assert result.incentive == pytest.approx([0.2, 0.15, 0.1, 0.55], abs=HAND)
    assert result.validator_trust == pytest.approx([1.0, 1.0, 1.0], abs=HAND)
    assert result.dividends == pytest.approx([0.5, 0.3, 0.2], abs=HAND)


def test_exactly_half_decides_despite_float_rounding() -> None:
    # 0.03 + 0.29 + 0.18 is 0.5 exactly, but sums to 0.49999999999999994 in floats.
    stake = np.array([0.03, 0.29, 0.18, 0.5])
    column = np.array([[0.8], [0.8], [0.8], [0.2]])
    assert weighted_median_columns(stake, column, majority=0.5)[0] == 0.8


@pytest.mark.parametrize("majority", [0.0, 0.25, 32767 / 65535, 0.5, 0.75, 1.0])
def test_weighted_median_matches_the_definition(majority: float) -> None:
    rng = np.random.default_rng(7)
    stake = rng.random(9)
    stake[2] = 0.0
    stake /= stake.sum()
    weights = rng.integers(0, 4, (9, 12)) / 4.0
    expected = [brute_force_median(stake, weights[:, j], majority) for j in range(12)]
    assert weighted_median_columns(stake, weights, majority).tolist() == expected


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("version", [2, 3])
def test_incentive_and_dividends_sum_to_one(seed: int, version: int) -> None:
    stake, weights = random_case(seed)
    result = epoch(stake, weights, params=YumaParams(yuma_version=version))  # type: ignore[arg-type]
    assert result.incentive.sum() == pytest.approx(1.0)
    assert result.dividends.sum() == pytest.approx(1.0)
    assert result.miner_emission.sum() + result.validator_emission.sum() == pytest.approx(1.0)
    assert (result.incentive >= 0).all() and (result.dividends >= 0).all()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("version", [2, 3])
def test_departing_from_consensus_lowers_dividends(seed: int, version: int) -> None:
    rng = np.random.default_rng(seed)
    common = rng.integers(1, U16_MAX + 1, 10).tolist()
    stake = [0.4, 0.35, 0.25]
    params = YumaParams(yuma_version=version)  # type: ignore[arg-type]
    agreeing = epoch(stake, [common, common, common], params=params)
    departed = rng.integers(0, U16_MAX + 1, 10).tolist()
    departing = epoch(stake, [common, common, departed], params=params)
    assert agreeing.dividends == pytest.approx(stake)
    assert departing.dividends[2] < agreeing.dividends[2]
    assert departing.validator_trust[2] < 1.0


def test_yuma3_bonds_stay_within_unit_interval() -> None:
    stake, weights = random_case(3)
    bonds: np.ndarray = np.full((8, 16), 1.5)
    for seed in range(30):
        _, weights = random_case(seed)
        bonds = epoch(stake, weights, bonds, params=YUMA3).bonds
        assert (bonds >= 0).all() and (bonds <= 1).all()


def test_yuma3_bonds_are_an_absolute_moving_average() -> None:
    old = np.full((3, 4), 0.5)
    result = epoch(STAKE, EXAMPLE, old, params=YUMA3)
    clipped_row0 = np.array([0.4, 0.3, 0.2, 0.1])
    assert result.bonds[0] == pytest.approx(0.9 * 0.5 + 0.1 * clipped_row0, abs=1e-5)


def test_yuma2_bonds_move_by_alpha() -> None:
    # Epoch 1 column 0 bonds are [.625, .375, 0]; epoch 2's delta (DISSENT) is [0, .6, .4];
    # B = .9 * old + .1 * delta = [.5625, .3975, .04], already column-normalised.
    first = epoch(STAKE, EXAMPLE)
    second = epoch(STAKE, DISSENT, first.bonds)
    assert second.bonds[:, 0] == pytest.approx([0.5625, 0.3975, 0.04])
    assert second.bonds.sum(axis=0) == pytest.approx(np.ones(4))


def test_yuma2_steady_weights_are_a_fixed_point() -> None:
    first = epoch(STAKE, EXAMPLE)
    second = epoch(STAKE, EXAMPLE, first.bonds)
    assert second.bonds == pytest.approx(first.bonds)
    assert second.dividends == pytest.approx(first.dividends)


def test_self_weights_are_dropped() -> None:
    # Validator 0 is also miner uid 0, so its row [4,3,2,1] loses miner 0; the others are
    # validator-only uids. The plain run re-upscales [0,3,2,1], hence the 1e-4 tolerance.
    result = epoch(STAKE, EXAMPLE, validator_uids=[0, 7, 8], miner_uids=[0, 1, 2, 3])
    plain = epoch(STAKE, [[0, 3, 2, 1], AGREE, ONLY_LAST])
    assert result.consensus == pytest.approx(plain.consensus, abs=HAND)
    assert result.incentive == pytest.approx(plain.incentive, abs=HAND)
    assert result.dividends == pytest.approx(plain.dividends, abs=HAND)
    assert result.bonds[0, 0] == 0.0


@pytest.mark.parametrize("last_update", [50, 100])
def test_weights_set_before_registration_are_dropped(last_update: int) -> None:
    result = epoch(STAKE, EXAMPLE, last_update=[last_update] * 3, registered_at=[0, 0, 0, 100])
    assert result.consensus[3] == 0.0
    assert result.incentive[3] == 0.0
    assert result.incentive == pytest.approx([4 / 9, 3 / 9, 2 / 9, 0.0], abs=HAND)


def test_permits_and_activity_mask_stake() -> None:
    by_permit = epoch(STAKE, EXAMPLE, params=YumaParams(max_validators=2))
    inactive = epoch(STAKE, EXAMPLE, active=[True, True, False])
    assert by_permit.dividends[2] == 0.0
    assert by_permit.validator_trust[2] == 0.0
    assert inactive.dividends[2] == 0.0
    assert inactive.dividends == pytest.approx([0.625, 0.375, 0.0], abs=HAND)
    explicit = epoch(STAKE, EXAMPLE, validator_permit=[True, True, False])
    assert explicit.dividends == pytest.approx(by_permit.dividends)


def test_emission_splits_between_miners_and_validators() -> None:
    result = epoch(STAKE, EXAMPLE, emission=100.0)
    assert result.miner_emission == pytest.approx(result.incentive * 50)
    assert result.validator_emission == pytest.approx(result.dividends * 50)


def test_emission_goes_to_validators_by_stake_without_weights() -> None:
    result = epoch([3, 1], [[0, 0], [0, 0]], emission=8.0)
    assert result.incentive.tolist() == [0.0, 0.0]
    assert result.miner_emission.tolist() == [0.0, 0.0]
    assert result.validator_emission == pytest.approx([6.0, 2.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights_u16": [[1, 2], [3]]}, "weights: row 1 has 1 entries, row 0 has 2"),
        ({"weights_u16": [[1, 2], 3]}, "weights: row 1 is not a list"),
        ({"weights_u16": [1, 2]}, "weights: must be a matrix"),
        ({"weights_u16": [[1, -2], [3, 4]]}, "weights: must not contain negative"),
        ({"weights_u16": [[1, 65536], [3, 4]]}, "weights: must not exceed 65535"),
        ({"weights_u16": [[1, 2.5], [3, 4]]}, "weights: must be whole numbers"),
        ({"weights_u16": [[1, "a"], [3, 4]]}, "weights: must contain only numbers"),
        ({"weights_u16": [[1, 2], [3, 4], [5, 6]]}, "weights: has 3 entries, expected 2"),
        ({"weights_u16": [[], []]}, "weights: rows must cover at least one miner"),
        ({"stake": [1, -1]}, "stake: must not contain negative"),
        ({"stake": [1, float("nan")]}, "stake: must contain only finite"),
        ({"stake": [0, 0]}, "stake: no active validator with a permit holds any stake"),
        ({"active": [False, False]}, "stake: no active validator"),
        ({"active": [True]}, "active: has 1 entries, expected 2"),
        ({"bonds": [[0.1, 0.2]]}, "bonds: shape (1, 2) does not match weights (2, 2)"),
        ({"bonds": [[0.1, -0.2], [0, 0]]}, "bonds: must not contain negative"),
        ({"emission": -1.0}, "emission: must be a non-negative finite number"),
        ({"validator_uids": [0, 1]}, "validator_uids/miner_uids: give both or neither"),
        ({"last_update": [1, 2], "registered_at": [0]}, "registered_at: has 1 entries"),
    ],
)
def test_bad_input_raises_one_clear_error(kwargs: dict, message: str) -> None:
    args = {"stake": [1.0, 2.0], "weights_u16": [[1, 2], [3, 4]], **kwargs}
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        epoch(**args)
