"""The `bitgate` command: one argparse tree whose subcommands are imported only when used.

Each row of `COMMANDS` names a command (its words), the module that defines it, and a line of
help. The module has `register(parser)`: it adds its arguments (or its own subcommands) to
`parser` and sets `run`, a function of the parsed arguments that returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol


@dataclass(frozen=True, slots=True)
class Command:
    """One `bitgate` subcommand, or a group whose module adds its own subcommands."""

    words: tuple[str, ...]
    module: str
    help: str
    default: bool = False  # run when the group is given arguments that name no subcommand


COMMANDS: tuple[Command, ...] = (
    Command(
        ("serve",), "gateway.commands.serve", "serve one pool (--metagraph) or several (--pools)"
    ),
    Command(("demo",), "gateway.commands.demo", "a simulated miner pool with a gateway in front"),
    Command(("miner",), "miners.cli", "miner programs: sim, serve, keygen"),
    Command(("load", "run"), "load.run_cli", "load a gateway or a pool; write a report", True),
    Command(("load", "compare"), "load.compare", "two report.json files side by side"),
    Command(("load", "capacity"), "load.capacity_cli", "the highest rate that meets an objective"),
    Command(("load", "bench"), "load.bench.gateway", "the benchmark suite (BENCHMARKS.md)"),
    Command(("load", "clients"), "load.bench.clients", "fan-out throughput of HTTP clients"),
    Command(("subnet", "epoch"), "router.subnet.cli", "one Yuma Consensus epoch over a file"),
    Command(
        ("subnet", "simulate"), "gateway.commands.simulate", "validators and miners through epochs"
    ),
    Command(("eval", "ranking"), "ranking.cli", "rankers' accuracy and latency on the eval set"),
    Command(("keys",), "gateway.commands.keys", "API keys, their limits and usage (Redis)"),
)
# Top-level packages of the optional extras, and the extra that installs each.
EXTRAS = {"matplotlib": "load", "hdrh": "load", "locust": "locust", "bittensor": "chain"}
GROUPS = {
    "load": "load runs, comparisons, capacity searches and the benchmarks",
    "subnet": "subnet calculations and simulations",
    "eval": "evaluations",
}


class UsageError(Exception):
    """Arguments the parser refuses: one line for stderr."""


class DefaultsHelp(argparse.HelpFormatter):
    """Help that ends each option with its default, so no help string repeats one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        quiet = action.default in (None, False, [], argparse.SUPPRESS)
        if quiet or not action.option_strings or "default" in text:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing its usage and exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelp)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise the parse error, prefixed with the command, as a `UsageError`."""
        raise UsageError(f"{self.prog}: error: {message}")


class MissingExtra(Exception):
    """A command needs an optional extra that is not installed: one line for stderr."""


class Registrar(Protocol):
    """What a command's module offers: `register(parser)`."""

    def register(self, parser: argparse.ArgumentParser) -> None: ...  # pragma: no cover


def _wanted(command: Command, argv: Sequence[str] | None) -> bool:
    """Whether the command's module is needed to parse `argv` (None: every module)."""
    if argv is None:
        return True
    words = [word for word in argv if not word.startswith("-")][: len(command.words)]
    return tuple(words) == command.words


def _subparsers(parser: argparse.ArgumentParser, title: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    return parser.add_subparsers(dest=title, required=True, metavar="COMMAND", parser_class=Parser)


def _load(command: Command) -> Registrar:
    """The command's module; `MissingExtra` when it needs an extra that is not installed."""
    try:
        module: Registrar = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        name = " ".join(command.words)
        raise MissingExtra(
            f"bitgate {name} needs the '{extra}' extra: pip install 'bitgate[{extra}]'"
        ) from None
    return module


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `bitgate` parser, with the modules `argv` needs registered (None: all of them)."""
    parser = Parser(prog="bitgate", description="A query-routing gateway for miner pools.")
    top = _subparsers(parser, "command")
    groups: dict[str, argparse._SubParsersAction] = {}  # type: ignore[type-arg]
    for command in COMMANDS:
        head, *rest = command.words
        if rest:
            if head not in groups:
                group = top.add_parser(head, help=GROUPS[head], description=GROUPS[head])
                groups[head] = _subparsers(group, f"{head}_command")
            leaf = groups[head].add_parser(rest[0], help=command.help, description=command.help)
        else:
            leaf = top.add_parser(head, help=command.help, description=command.help)
        if _wanted(command, argv):
            _load(command).register(leaf)
    return parser


def with_default(argv: list[str]) -> list[str]:
    """`argv` with a group's default subcommand put in when the words name none."""
    for command in COMMANDS:
        group = command.words[:-1]
        if not command.default or tuple(argv[: len(group)]) != group:
            continue
        rest = argv[len(group) :]
        names = {c.words[-1] for c in COMMANDS if c.words[:-1] == group}
        if rest and rest[0] not in names and rest[0] not in ("-h", "--help"):
            return [*group, command.words[-1], *rest]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bitgate` command; returns the exit status."""
    words = with_default(list(sys.argv[1:] if argv is None else argv))
    try:
        args = build_parser(words).parse_args(words)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
