"""What `bitgate subnet simulate` records each epoch, and how it is printed and plotted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """One epoch of the simulation: per-miner and per-validator results."""

    epoch: int
    incentive: list[float]
    requests: list[int]
    dividends: list[float]
    validator_trust: list[float]


@dataclass(slots=True)
class History:
    """The simulated subnet: who the miners and validators are, and every epoch."""

    miners: list[str]
    validators: list[str]
    honest: list[bool]
    stake: list[float]
    good: list[bool]
    epochs: list[EpochRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for `--json`."""
        return asdict(self)

    def good_share(self, record: EpochRecord) -> float:
        """The incentive share of the miners whose profile answers well."""
        return sum(i for i, good in zip(record.incentive, self.good, strict=True) if good)

    def stake_share(self) -> list[float]:
        """Each validator's share of the stake."""
        total = sum(self.stake)
        return [s / total for s in self.stake]


def _row(label: str, values: list[float]) -> str:
    return f"{label:<14}" + "".join(f"{v:>10.3f}" for v in values)


def epoch_table(history: History, record: EpochRecord) -> str:
    """One epoch as lines of text."""
    lines = [f"epoch {record.epoch}"]
    lines.append(f"{'miner':<14}" + "".join(f"{m[:9]:>10}" for m in history.miners))
    lines.append(_row("incentive", record.incentive))
    lines.append(f"{'asked':<14}" + "".join(f"{n:>10d}" for n in record.requests))
    lines.append(f"{'validator':<14}" + "".join(f"{v[:9]:>10}" for v in history.validators))
    lines.append(_row("dividends", record.dividends))
    lines.append(_row("vtrust", record.validator_trust))
    return "\n".join(lines)


def summary(history: History) -> str:
    """The outcome in a few lines: incentive to good miners, dividends against stake."""
    first, last = history.epochs[0], history.epochs[-1]
    lines = [
        f"good miners' incentive share: epoch {first.epoch} {history.good_share(first):.3f}"
        f" -> epoch {last.epoch} {history.good_share(last):.3f}"
    ]
    for name, honest, share, dividends, trust in zip(
        history.validators,
        history.honest,
        history.stake_share(),
        last.dividends,
        last.validator_trust,
        strict=True,
    ):
        kind = "honest" if honest else "dishonest"
        lines.append(
            f"{name} ({kind}): stake share {share:.3f}, dividends {dividends:.3f}, "
            f"validator trust {trust:.3f}"
        )
    return "\n".join(lines)


def plot(history: History, path: Path) -> bool:
    """Incentive per miner and dividends per validator by epoch, as a PNG; False without
    matplotlib (`pip install 'bitgate[load]'`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [r.epoch for r in history.epochs]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    for j, miner in enumerate(history.miners):
        style = "-" if history.good[j] else ":"
        top.plot(epochs, [r.incentive[j] for r in history.epochs], style, marker="o", label=miner)
    top.set_ylabel("incentive")
    top.set_title("Miner incentive by epoch (solid: good answers)")
    top.legend(fontsize="small", ncol=2)
    for i, validator in enumerate(history.validators):
        style = "-" if history.honest[i] else "--"
        values = [r.dividends[i] for r in history.epochs]
        bottom.plot(epochs, values, style, marker="o", label=validator)
        bottom.axhline(history.stake_share()[i], color="grey", linewidth=0.5)
    bottom.set_ylabel("dividends")
    bottom.set_xlabel("epoch")
    bottom.set_title("Validator dividends by epoch (dashed: dishonest; grey: stake share)")
    bottom.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
