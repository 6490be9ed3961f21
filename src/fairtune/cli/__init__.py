"""The ``fairtune`` command: split, train, evaluate, predict, methods, debias, compare, demo,
study."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from fairtune.cli import compare, debias, evaluate, predict, study, train
from fairtune.cli.options import Parser
from fairtune.errors import FairtuneError
from fairtune.models import current_versions

COMMANDS = (
    *train.COMMANDS,
    *evaluate.COMMANDS,
    *predict.COMMANDS,
    *debias.COMMANDS,
    *compare.COMMANDS,
    *study.COMMANDS,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command, each with its handler as ``handler``."""
    parser = Parser(
        prog="fairtune",
        description="Debias a trained PyTorch classifier by fine-tuning the weights that "
        "carry the bias (BMFT, SWiFT) and compare against the usual baselines.",
        epilog="Data: a CSV file, or a built-in set by name: 'adult', 'german', optionally with "
        "a part of its seeded 60/20/20 split, e.g. 'adult:test'.",
    )
    versions = current_versions()
    parser.add_argument(
        "--version",
        action="version",
        version=f"fairtune {versions['fairtune']} (torch {versions['torch']}, "
        f"Python {versions['python']})",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_args(p)
        p.set_defaults(handler=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: bad input is one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _one_line_warning(args.command)
            args.handler(args)
    except (FairtuneError, OSError) as exc:  # OSError: an unreadable or unwritable path
        print(f"fairtune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fairtune: interrupted; no output was written half-way", file=sys.stderr)
        return 130
    return 0


def _one_line_warning(command: str) -> Callable[..., None]:
    """Warnings as one line in the command's own format, without Python's source line."""

    def show(message: Warning | str, *_: object, **__: object) -> None:
        print(f"fairtune {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    return show
