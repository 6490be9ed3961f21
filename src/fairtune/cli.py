"""The ``fairtune`` command: split, train, evaluate, debias, compare, demo."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, NoReturn

from fairtune.errors import FairtuneError

Handler = Callable[[argparse.Namespace], None]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, help_text: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register a sub-command with its arguments and handler."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = (help_text, add_args, handler)
        return handler

    return register


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()):
    """One ``--option`` per dataclass field, with the field's help text and default."""
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kwargs: dict[str, Any] = {"default": default, "help": f.metadata.get("help", "")}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kwargs.update(nargs="+", type=type(default[0]) if default else int)
        elif default is not None:
            kwargs["type"] = type(default)
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        kwargs["help"] += " (default: %(default)s)"
        parser.add_argument(flag, dest=f.name, **kwargs)


def dataclass_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The parsed values of ``cls``'s fields, tuples restored."""
    out = {}
    for f in fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            out[f.name] = tuple(value) if isinstance(f.default, tuple) else value
    return out


def add_data_options(parser: argparse.ArgumentParser, data_help: str) -> None:
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument(
        "--label",
        help="label column (0/1, or two values with --positive); "
        "default: the model's or the built-in set's",
    )
    parser.add_argument(
        "--sensitive",
        nargs="+",
        help="sensitive attribute column(s); several are crossed "
        "into intersectional groups; default: the model's or the built-in set's",
    )
    parser.add_argument("--positive", help="label value that counts as positive (1)")
    parser.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the 60/20/20 split of a built-in data set (default: %(default)s)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fairtune",
        description="Debias a trained PyTorch classifier by fine-tuning the weights that "
        "carry the bias (BMFT, SWiFT) and compare against the usual baselines.",
        epilog="Data: a CSV file, or a built-in set by name: 'adult', 'german', optionally with "
        "a part of its seeded 60/20/20 split, e.g. 'adult:test'.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for name, (help_text, add_args, handler) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: bad input is one line on stderr and exit status 2."""
    from fairtune import commands  # noqa: F401  (registers the sub-commands)

    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            args.handler(args)
    except (FairtuneError, OSError) as exc:  # OSError: an unreadable or unwritable path
        print(f"fairtune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fairtune: interrupted; no output was written half-way", file=sys.stderr)
        return 130
    return 0
