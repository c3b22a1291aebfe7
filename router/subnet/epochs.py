"""Local Yuma Consensus for self-run pools: validators' weights in, incentive written back.

A local pool's miners come from its metagraph file and its validators, with their stakes,
from the pools file. Each epoch gathers every validator's weights (this gateway's from its
scores, the others' from the pools file or the state store), runs one Yuma epoch, and writes
consensus, trust, incentive, dividends, validator trust, bonds and emission back into the
metagraph that selection reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    ValidationError,
    model_validator,
)

from router.metagraph import NOT_SERVING_IP, Metagraph, Neuron
from router.store import StateStore
from router.subnet.weights import ValidatorWeights
from router.subnet.yuma import (
    U16_MAX,
    EpochResult,
    FloatArray,
    YumaParams,
    epoch,
    max_upscale,
    normalize,
    normalize_rows,
    top_stake_permits,
)

logger = logging.getLogger(__name__)

DECIMALS = 9


class LocalValidator(BaseModel):
    """A validator of a local pool: its hotkey, its stake, and fixed weights if it has any."""

    model_config = ConfigDict(extra="forbid")

    hotkey: str = Field(min_length=1)
    stake: NonNegativeFloat
    weights: dict[int, NonNegativeFloat] | None = Field(
        default=None, description="fixed weights by miner uid; unset: from the state store"
    )


class LocalConfig(BaseModel):
    """A local pool's validators and Yuma hyperparameters (the chain's defaults)."""

    model_config = ConfigDict(extra="forbid")

    hotkey: str | None = Field(default=None, description="this gateway's validator (the first)")
    validators: list[LocalValidator] = Field(min_length=1)
    yuma: YumaParams = Field(default_factory=YumaParams)
    emission: NonNegativeFloat = 1.0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        hotkeys = [v.hotkey for v in self.validators]
        if len(hotkeys) != len(set(hotkeys)):
            raise ValueError("validator hotkeys must be unique")
        if not any(v.stake > 0 for v in self.validators):
            raise ValueError("at least one validator must hold stake")
        if self.hotkey is not None and self.hotkey not in hotkeys:
            raise ValueError(f"hotkey {self.hotkey!r} is not one of the validators")
        return self

    @property
    def own_hotkey(self) -> str:
        """The hotkey of the validator this gateway is."""
        return self.hotkey or self.validators[0].hotkey


class BondsState(BaseModel):
    """The bonds after an epoch, with the validators (rows) and miners (columns) they cover."""

    epoch: int
    validators: list[str]
    miner_uids: list[int]
    miner_hotkeys: list[str]
    bonds: list[list[float]]

    def aligned(self, validators: Sequence[str], miners: Sequence[Neuron]) -> FloatArray:
        """The bonds over the given rows and columns; new validators or miners start at 0."""
        rows = {hotkey: i for i, hotkey in enumerate(self.validators)}
        cols = {
            (uid, hotkey): j
            for j, (uid, hotkey) in enumerate(zip(self.miner_uids, self.miner_hotkeys, strict=True))
        }
        old = np.asarray(self.bonds, dtype=np.float64).reshape(len(rows), len(cols))
        out = np.zeros((len(validators), len(miners)))
        have_rows = [(i, rows[h]) for i, h in enumerate(validators) if h in rows]
        have_cols = [
            (j, cols[(n.uid, n.hotkey)]) for j, n in enumerate(miners) if (n.uid, n.hotkey) in cols
        ]
        if have_rows and have_cols:
            new_r, old_r = (list(x) for x in zip(*have_rows, strict=True))
            new_c, old_c = (list(x) for x in zip(*have_cols, strict=True))
            out[np.ix_(new_r, new_c)] = old[np.ix_(old_r, old_c)]
        return out


def _weight_row(
    validator: LocalValidator,
    submitted: ValidatorWeights | None,
    miners: Sequence[Neuron],
    columns: Mapping[int, int],
) -> FloatArray:
    """One validator's weights over the miners (fixed, else submitted) as raw u16 values."""
    row = np.zeros(len(miners))
    if validator.weights is not None:
        for uid, weight in validator.weights.items():
            if uid in columns:
                row[columns[uid]] = weight
    elif submitted is not None:
        for uid, hotkey, weight in zip(
            submitted.uids, submitted.hotkeys, submitted.weights, strict=True
        ):
            # Weights set for an earlier hotkey on the uid are dropped, as the chain drops
            # weights older than the miner's registration.
            if uid in columns and miners[columns[uid]].hotkey == hotkey:
                row[columns[uid]] = weight
    top = row.max()
    return np.rint(row / top * U16_MAX) if top > 0 else row


def _trust(
    stake: FloatArray, weights_u16: FloatArray, rank: FloatArray, params: YumaParams
) -> FloatArray:
    """Miner trust as the chain reports it: clipped rank over the rank before clipping."""
    share = normalize(np.where(top_stake_permits(stake, params.max_validators), stake, 0.0))
    prerank = share @ normalize_rows(max_upscale(weights_u16))
    trust = np.zeros_like(rank)
    np.divide(rank, prerank, out=trust, where=prerank > 0)
    return trust


def _bond_pairs(uids: npt.NDArray[np.int64], bonds: FloatArray) -> dict[str, list[Any]]:
    """A validator's non-zero bonds: miner uids and their bonds, as two lists."""
    held = np.nonzero(bonds > 0)[0]
    return {"uids": uids[held].tolist(), "bonds": bonds[held].tolist()}


def _round(value: Any) -> float:
    return round(float(value), DECIMALS)


def _validator_neuron(
    validator: LocalValidator, uid: int, base: Neuron | None, values: dict[str, Any]
) -> Neuron:
    """A validator's neuron: the file's when it is listed there, else one that serves nothing."""
    if base is not None:
        return base.model_copy(update={"stake": validator.stake, **values})
    return Neuron.model_validate(
        {
            "uid": uid,
            "hotkey": validator.hotkey,
            "axon": {"ip": NOT_SERVING_IP, "port": 0},
            "stake": validator.stake,
            "active": True,
            **values,
        }
    )


def split_neurons(base: Metagraph, config: LocalConfig) -> list[Neuron]:
    """The miners of a local pool: every neuron of the file that is not a listed validator."""
    validators = {v.hotkey for v in config.validators}
    return [n for n in base.neurons if n.hotkey not in validators]


def local_epoch(
    base: Metagraph,
    config: LocalConfig,
    submitted: Mapping[str, ValidatorWeights],
    bonds: BondsState | None,
    number: int,
) -> tuple[Metagraph, BondsState, EpochResult]:
    """Run epoch `number` of a local pool over its file metagraph; returns the new metagraph."""
    miners = split_neurons(base, config)
    if not miners:
        raise ValueError("a local pool needs at least one miner in its metagraph")
    hotkeys = [v.hotkey for v in config.validators]
    stake = np.array([v.stake for v in config.validators], dtype=np.float64)
    columns = {n.uid: j for j, n in enumerate(miners)}
    rows = np.array(
        [_weight_row(v, submitted.get(v.hotkey), miners, columns) for v in config.validators]
    )
    old = bonds.aligned(hotkeys, miners) if bonds is not None else None
    params = config.yuma
    result = epoch(stake, rows, old, params, emission=config.emission)
    trust = _trust(stake, rows, result.rank, params)
    block = number * max(params.tempo, 1)
    permits = top_stake_permits(stake, params.max_validators)
    miner_uids = np.array([n.uid for n in miners])
    new_bonds = np.round(result.bonds, DECIMALS)

    neurons = [
        miner.model_copy(
            update={
                "consensus": _round(result.consensus[j]),
                "incentive": _round(result.incentive[j]),
                "trust": _round(trust[j]),
                "dividends": 0.0,
                "emission": _round(result.miner_emission[j]),
            }
        )
        for j, miner in enumerate(miners)
    ]
    in_file = {n.hotkey: n for n in base.neurons}
    next_uid = max(n.uid for n in base.neurons) + 1
    for i, validator in enumerate(config.validators):
        listed = in_file.get(validator.hotkey)
        values = {
            "dividends": _round(result.dividends[i]),
            "emission": _round(result.validator_emission[i]),
            "validator_permit": bool(permits[i]),
            "validator_trust": _round(result.validator_trust[i]),
            "bonds": _bond_pairs(miner_uids, new_bonds[i]),
            "last_update": block,
        }
        uid = listed.uid if listed else next_uid
        next_uid += 0 if listed else 1
        neurons.append(_validator_neuron(validator, uid, listed, values))
    metagraph = base.model_copy(update={"block": block, "neurons": neurons})
    state = BondsState(
        epoch=number,
        validators=hotkeys,
        miner_uids=[n.uid for n in miners],
        miner_hotkeys=[n.hotkey for n in miners],
        bonds=result.bonds.tolist(),
    )
    return metagraph, state, result


YUMA_FIELDS = ("consensus", "incentive", "trust", "dividends", "emission")


def overlay(base: Metagraph, last: Metagraph, config: LocalConfig) -> Metagraph:
    """A reloaded file metagraph with the last epoch's results kept for the same miners and
    validators; new miners keep the file's values until the next epoch."""
    previous = {(n.uid, n.hotkey): n for n in last.neurons}
    validators = {v.hotkey for v in config.validators}
    neurons = []
    for neuron in split_neurons(base, config):
        seen = previous.get((neuron.uid, neuron.hotkey))
        if seen is not None:
            neuron = neuron.model_copy(update={f: getattr(seen, f) for f in YUMA_FIELDS})
        neurons.append(neuron)
    taken = {n.uid for n in neurons}
    next_uid = max(taken | {n.uid for n in base.neurons}, default=-1) + 1
    for neuron in last.neurons:
        if neuron.hotkey in validators:
            if neuron.uid in taken:
                neuron = neuron.model_copy(update={"uid": next_uid})
                next_uid += 1
            neurons.append(neuron)
            taken.add(neuron.uid)
    return base.model_copy(update={"block": max(base.block, last.block), "neurons": neurons})


def _parse_weights(hotkey: str, raw: bytes) -> ValidatorWeights | None:
    try:
        return ValidatorWeights.from_json(raw)
    except ValidationError:
        logger.warning("ignoring unreadable weights of validator %s", hotkey)
        return None


def _parse_bonds(raw: bytes | None) -> BondsState | None:
    if raw is None:
        return None
    try:
        return BondsState.model_validate_json(raw)
    except ValidationError:
        logger.warning("stored bonds are unreadable; starting from fresh bonds")
        return None


class LocalEpochs:
    """Runs a local pool's epochs against the state store, one replica per epoch."""

    def __init__(self, pool: str, config: LocalConfig, store: StateStore, epoch_s: float) -> None:
        self.pool = pool
        self.config = config
        self.store = store
        self.epoch_s = epoch_s
        self.epochs_run = 0
        self.last_epoch: int | None = None
        self.last_result: EpochResult | None = None
        self.no_consensus: int | None = None  # the last epoch that gave no miner incentive

    async def gather(self, own: ValidatorWeights) -> dict[str, ValidatorWeights]:
        """Every validator's latest weights from the store, with this gateway's own."""
        stored = await self.store.load_weights(self.pool)
        submitted = {
            hotkey: parsed
            for hotkey, raw in stored.items()
            if (parsed := _parse_weights(hotkey, raw)) is not None
        }
        submitted[own.hotkey] = own
        return submitted

    async def run(self, base: Metagraph, own: ValidatorWeights, number: int) -> Metagraph | None:
        """Run epoch `number` if this replica claims it, saving bonds and the metagraph
        snapshot; None when another replica has it, or when the validators reached no
        consensus on any miner (before any traffic): the pool then keeps its metagraph."""
        if not await self.store.claim_epoch(self.pool, number, ttl_s=self.epoch_s * 2):
            return None
        submitted = await self.gather(own)
        bonds = _parse_bonds(await self.store.load_bonds(self.pool))
        metagraph, state, result = local_epoch(base, self.config, submitted, bonds, number)
        if result.incentive.sum() <= 0:
            logger.info("pool %s: epoch %d reached no consensus; kept as it was", self.pool, number)
            self.no_consensus = number
            return None
        await self.store.save_bonds(self.pool, state.model_dump_json().encode())
        await self.store.save_metagraph(self.pool, metagraph.model_dump_json().encode())
        self.epochs_run += 1
        self.last_epoch = number
        self.last_result = result
        return metagraph
