"""`bitgate subnet`: run subnet calculations, such as one Yuma Consensus epoch, from a file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from router.subnet.yuma import EpochResult, YumaParams, epoch

USAGE_ERROR = 2
DECIMALS = 6


class UsageError(Exception):
    """Bad arguments or a bad input file: one line for stderr."""


def register(parser: argparse.ArgumentParser) -> None:
    """`bitgate subnet epoch FILE [--emission E]`."""
    parser.description = (
        'FILE: {"yuma_version": 2|3, "validator_stake": [...], "weights": [[...], ...], '
        '"bonds": optional}, one row of raw set_weights integers per validator, over the miners.'
    )
    parser.add_argument("file", type=Path, help="JSON file with validator_stake and weights")
    parser.add_argument("--emission", type=float, default=1.0, help="the pot to split")
    parser.set_defaults(run=run)


def load_epoch_file(path: Path) -> dict[str, Any]:
    """Read the epoch JSON file and check its top-level fields."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path}: must be a JSON object")
    for key in ("validator_stake", "weights"):
        if key not in document:
            raise UsageError(f"{path}: missing field {key!r}")
    version = document.get("yuma_version", 2)
    if isinstance(version, bool) or version not in (2, 3):
        raise UsageError(f"{path}: yuma_version must be 2 or 3")
    return document


def _rounded(values: np.ndarray[Any, Any]) -> Any:
    """Numbers rounded for printing, as nested lists."""
    return (np.round(values, DECIMALS) + 0.0).tolist()


def epoch_report(result: EpochResult, yuma_version: int) -> dict[str, Any]:
    """The printed JSON: per-miner and per-validator results and the new bonds."""
    return {
        "yuma_version": yuma_version,
        "consensus": _rounded(result.consensus),
        "incentive": _rounded(result.incentive),
        "miner_emission": _rounded(result.miner_emission),
        "dividends": _rounded(result.dividends),
        "validator_trust": _rounded(result.validator_trust),
        "validator_emission": _rounded(result.validator_emission),
        "bonds": _rounded(result.bonds),
    }


def run_epoch(path: Path, emission: float) -> dict[str, Any]:
    """Run one epoch over the file's validators and miners, returning the report."""
    document = load_epoch_file(path)
    version: Literal[2, 3] = 3 if document.get("yuma_version", 2) == 3 else 2
    stake = document["validator_stake"]
    permits = [True] * len(stake) if isinstance(stake, list) else None
    try:
        result = epoch(
            stake,
            document["weights"],
            document.get("bonds"),
            params=YumaParams(yuma_version=version),
            validator_permit=permits,
            emission=emission,
        )
    except ValueError as exc:
        # The epoch speaks of `stake`; the file calls it `validator_stake`.
        message = str(exc)
        if message.startswith("stake:"):
            message = "validator_" + message
        raise UsageError(f"{path}: {message}") from None
    return epoch_report(result, version)


def run(args: argparse.Namespace) -> int:
    """Print one epoch's results as JSON, or one error line to stderr (exit 2)."""
    try:
        report = run_epoch(args.file, args.emission)
    except UsageError as exc:
        print(f"bitgate subnet epoch: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(json.dumps(report))
    return 0
