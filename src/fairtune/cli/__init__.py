"""The ``fairtune`` command: split, train, evaluate, predict, methods, debias, compare, demo,
study, data.

Run it as ``fairtune ...``, ``python -m fairtune ...`` or under torchrun:
``torchrun --nproc-per-node N -m fairtune debias ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout

import torch.distributed as dist

from fairtune.cli import compare, data, debias, evaluate, predict, study, train
from fairtune.cli.options import Parser, one_value_per_set
from fairtune.console import console
from fairtune.datasets.presets import formats_help
from fairtune.distributed import Processes, torchrun_group
from fairtune.errors import FairtuneError
from fairtune.modelio import current_versions

COMMANDS = (
    *train.COMMANDS,
    *evaluate.COMMANDS,
    *predict.COMMANDS,
    *debias.COMMANDS,
    *compare.COMMANDS,
    *study.COMMANDS,
    *data.COMMANDS,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command, each with its handler as ``handler``."""
    parser = Parser(
        prog="fairtune",
        description="Debias a trained PyTorch classifier by fine-tuning the weights that "
        "carry the bias (BMFT, SWiFT) and compare against the usual baselines.",
        epilog=textwrap.fill(
            "Data: a CSV file, or a built-in set by name: 'adult', 'german', optionally with "
            "a part of its seeded 60/20/20 split, e.g. 'adult:test', or a published medical "
            "set read from its download folder, FORMAT:DIR[:PART], split alike by patient "
            "('fairtune data check FORMAT:DIR' says what it holds). Formats:"
        )
        + "\n  "
        + formats_help("\n  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    """Entry point: bad input is one line on stderr and exit status 2.

    Under torchrun every process runs the command on its share of the data; only
    the first process (rank 0) prints and writes, and a failure in any process
    fails all of them, reported once.
    """
    args = build_parser().parse_args(one_value_per_set(sys.argv[1:] if argv is None else argv))
    try:
        with torchrun_group() as processes:
            status = _run(args, processes)
    except FairtuneError as exc:  # _run reports its own: this process could not join the others
        print(f"fairtune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if status == 0 and processes.failed:
        return 2  # another process failed and said why
    return status


def _run(args: argparse.Namespace, processes: Processes) -> int:
    """Run the command's handler in this process: its exit status."""
    try:
        with warnings.catch_warnings(), _silent(processes.rank != 0):
            warnings.simplefilter("default" if processes.rank == 0 else "ignore")
            warnings.showwarning = _one_line_warning(args.command)
            args.handler(args)
    except (FairtuneError, OSError) as exc:  # OSError: an unreadable or unwritable path
        if processes.first_to_fail():
            where = f" (process {processes.rank} of {processes.size})" if processes.size > 1 else ""
            print(f"fairtune {args.command}: error{where}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        processes.failed = True
        print("fairtune: interrupted; no output was written half-way", file=sys.stderr)
        return 130
    except dist.DistError as exc:  # a peer process died mid-communication
        if processes.first_to_fail():
            print(f"fairtune {args.command}: error: a process stopped: {exc}", file=sys.stderr)
        return 2
    return 0


@contextmanager
def _silent(silent: bool) -> Iterator[None]:
    """Nothing printed to stdout inside, when ``silent`` (the processes besides rank 0)."""
    if not silent:
        yield
        return
    quiet = console.quiet
    console.quiet = True
    try:
        with open(os.devnull, "w") as null, redirect_stdout(null):
            yield
    finally:
        console.quiet = quiet


def _one_line_warning(command: str) -> Callable[..., None]:
    """Warnings as one line in the command's own format, without Python's source line."""

    def show(message: Warning | str, *_: object, **__: object) -> None:
        print(f"fairtune {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    return show
