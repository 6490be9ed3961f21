"""What every sub-command shares: the parser, options generated from settings dataclasses,
the data options, ``--set KEY=VALUE`` parsing and reading data the way a model expects."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NoReturn

from fairtune.datasets import BUILTIN
from fairtune.datasets.layouts import ImageRoots
from fairtune.datasets.presets import formats_help
from fairtune.distributed import process_device
from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import DEFAULT_OBJECTIVE, OBJECTIVE_HELP, OBJECTIVE_NAMES
from fairtune.image_csv import ImageReading
from fairtune.images import MAX_PIXELS
from fairtune.loading import IMAGE_ROOT, MedicalReading, Split, load_for_model, preset_of
from fairtune.methods import method_class
from fairtune.modelio import ModelConfig, load_model
from fairtune.settings import check_value, default_of, range_text
from fairtune.splits import PART_NAMES

THRESHOLD = {f.name: f for f in fields(ModelConfig)}["threshold"]
DATA_HELP = (
    f"CSV file, built-in set ({', '.join(repr(name) for name in BUILTIN)}; NAME:PART for a "
    f"part of its seeded split, PART one of {', '.join(PART_NAMES)}) or published medical "
    "set FORMAT:DIR[:PART], FORMAT one of: " + formats_help().replace("%", "%%")
)


@dataclass(frozen=True)
class Command:
    """A sub-command: its name, one-line help, how it adds its options, and its handler."""

    name: str
    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], None]


class Parser(argparse.ArgumentParser):
    """argparse with its errors in one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def load_model_here(directory: str) -> tuple[Any, Any]:
    """A saved model and its config (``load_model``), the model on this process's device:
    its GPU under torchrun on a CUDA machine, else the CPU (``process_device``)."""
    model, config = load_model(directory)
    return model.to(process_device()), config


def add_dataclass_options(
    parser: argparse.ArgumentParser | Any, cls: type, skip: Sequence[str] = ()
) -> None:
    """One ``--option`` per field of the settings dataclass ``cls``, with the field's help
    text, default and valid range (the range itself is checked by the dataclass)."""
    for f in fields(cls):
        if f.name in skip:
            continue
        default = default_of(f)
        kwargs: dict[str, Any] = {"default": default}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, (tuple, list)):
            kwargs.update(nargs="+", type=type(default[0]) if default else int)
        elif default is not None:
            kwargs["type"] = type(default)
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        limits = "" if "choices" in f.metadata else range_text(f)
        kwargs["help"] = (
            f.metadata.get("help", "")
            + " (default: %(default)s"
            + (f"; {limits}" if limits else "")
            + ")"
        )
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kwargs)


def add_objective_option(p: argparse.ArgumentParser, note: str = "") -> None:
    """``--objective``: the fairness objective
    (:data:`fairtune.evaluation.criterion.OBJECTIVES`)."""
    p.add_argument(
        "--objective",
        default=DEFAULT_OBJECTIVE,
        choices=OBJECTIVE_NAMES,
        help=f"{OBJECTIVE_HELP}{note} (default: %(default)s)",
    )


def dataclass_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The parsed values of ``cls``'s fields, tuples restored."""
    out = {}
    for f in fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            out[f.name] = tuple(value) if isinstance(default_of(f), tuple) else value
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
    add_split_seed(parser)


def add_split_seed(p: argparse.ArgumentParser) -> None:
    """``--split-seed`` and ``--split-by``: which seeded 60/20/20 split of a built-in or
    published set a part name means."""
    p.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the 60/20/20 split of a built-in data set (default: %(default)s)",
    )
    p.add_argument(
        "--split-by",
        choices=("patient", "image"),
        default="patient",
        help="a published medical set (FORMAT:DIR) is split by patient, no patient in two "
        "parts, or by image, when too few patients: patients then leak across parts, and a "
        "warning says how many (default: %(default)s)",
    )


def split_of(args: argparse.Namespace) -> Split:
    """The split the command line names (``--split-seed``, ``--split-by``)."""
    return Split(args.split_seed, args.split_by == "image")


def medical_reading(args: argparse.Namespace, saved_root: str | None = None) -> MedicalReading:
    """How the command line reads a published medical set: split by image or by patient, and
    ``--image-root`` (else the model's ``saved_root`` when its own folders lack the images)."""
    given = getattr(args, "image_root", None)
    roots = ImageRoots(Path(given) if given else None, Path(saved_root) if saved_root else None)
    return MedicalReading(getattr(args, "split_by", "patient") == "image", roots)


def add_image_reading_options(p: Any) -> None:
    """Options of every command that may read an image CSV."""
    p.add_argument(
        "--image-root",
        help="folder the image paths are relative to (default: the model's when it was "
        "trained with one, else the CSV's folder)",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip unreadable or missing images and report them, instead of stopping",
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="let image paths lead outside the image root (refused by default)",
    )
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=MAX_PIXELS,
        help="larger images are refused, not decoded (default: %(default)s)",
    )


def load_data(args: argparse.Namespace, spec: str, config: Any, part: str) -> tuple[Any, str]:
    """The data named by ``spec`` (a built-in name means its ``part``), read as the model's.

    ``--positive`` overrides the model's positive label; ``--image-root`` the image
    root the model was trained with (:func:`image_root`). A published medical set
    finds its own images, ``--image-root`` given, else its folder, else the model's.
    """
    if args.positive is not None:
        config = replace(config, positive=args.positive)
    return load_for_model(
        spec,
        config,
        args.label,
        args.sensitive,
        default_part=part,
        split=split_of(args),
        reading=image_reading(
            args, args.image_root if preset_of(spec) else image_root(args, config)
        ),
    )


def image_root(args: argparse.Namespace, config: Any) -> str | None:
    """``--image-root`` if given, else the one the model was trained with (saved by train),
    else None: the folder of each image CSV."""
    return args.image_root or (config.images or {}).get(IMAGE_ROOT)


def image_reading(args: argparse.Namespace, root: str | None, augment: Any = None) -> ImageReading:
    """The image reading options of the command line, with the image folder ``root``."""
    return ImageReading(
        root,
        args.skip_bad_images,
        augment=augment,
        allow_outside_root=args.allow_outside_root,
        max_pixels=args.max_image_pixels,
    )


def decision_threshold(given: float | None) -> float | None:
    """``--threshold`` checked as a saved model's threshold is, in (0, 1); None if not given."""
    if given is not None:
        check_value("--threshold:", THRESHOLD, given)
    return given


def add_comparison_inputs(p: argparse.ArgumentParser) -> None:
    """The inputs of compare and study: the starting model, the external set, one or more
    test sets, and the columns (the model's by default)."""
    p.add_argument("--model", required=True, help="model directory every fit starts from")
    p.add_argument(
        "--external",
        required=True,
        help="external set (CSV or e.g. 'adult:external'; a published set FORMAT:DIR means "
        "its external part) the methods fine-tune on",
    )
    p.add_argument(
        "--test",
        required=True,
        action="append",
        help="test set (CSV or e.g. 'adult:test'); used only to measure; repeat it for several "
        "(e.g. in- and out-of-distribution), each reported on its own",
    )
    p.add_argument("--label", help="label column (default: the model's)")
    p.add_argument("--sensitive", nargs="+", help="sensitive column(s) (default: the model's)")
    p.add_argument("--positive", help="label value that counts as positive (default: the model's)")
    add_split_seed(p)


def add_set_option(p: argparse.ArgumentParser, metavar: str, example: str) -> None:
    """``--set KEY=VALUE ...``: one or more settings after each ``--set``, which repeats."""
    p.add_argument(
        "--set",
        action="extend",
        nargs="+",
        metavar=metavar,
        help=f"change a method's setting, e.g. --set {example} (several after one --set; "
        "repeatable)",
    )


def one_value_per_set(argv: Sequence[str]) -> list[str]:
    """``argv`` with each ``--set K=V K2=V2`` written ``--set=K=V --set=K2=V2``: the values
    of ``--set`` end at the first word without '=', which stays a positional argument
    (``study --set bmft.keep=0.25 keep`` is the ``keep`` study)."""
    out: list[str] = []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            return out + words[i - 1 :]
        if word != "--set" or i >= len(words) or "=" not in words[i]:
            out.append(word)
            continue
        while i < len(words) and "=" in words[i] and not words[i].startswith("-"):
            out.append(f"--set={words[i]}")
            i += 1
    return out


def parse_settings(
    pairs: list[str] | None, method: str | None = None, option: str = "--set", lists: bool = False
) -> dict[str, Any]:
    """``KEY=VALUE`` (or ``METHOD.KEY=VALUE``) pairs, typed by the method's config fields.

    With ``lists``, VALUE is a comma-separated list and each setting maps to the
    list of its typed values (``--grid-set``).
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or (lists and not all(raw.split(","))):
            shape = "METHOD.KEY=V1,V2,..." if lists else "KEY=VALUE"
            raise FairtuneError(f"{option} '{pair}' must look like {shape}")
        name, _, field_name = key.rpartition(".") if "." in key else (method, "", key)
        if name is None:
            raise FairtuneError(f"{option} '{pair}': name the method, e.g. swift.{key}=...")
        try:
            cls = method_class(name)
        except FairtuneError as exc:
            raise FairtuneError(f"{option} '{pair}': {exc}") from None
        types = {f.name: type(default_of(f)) for f in fields(cls.config_class)}
        if field_name not in types:
            raise FairtuneError(
                f"{name} has no setting '{field_name}'; see 'fairtune methods {name}'"
            )
        kind = {bool: _boolean}.get(types[field_name], types[field_name])
        try:
            values = [kind(v) for v in raw.split(",")] if lists else kind(raw)
        except ValueError:
            raise FairtuneError(
                f"{option} '{pair}': '{raw}' is not a {types[field_name].__name__}"
                + (" or a comma-separated list of them" if lists else "")
            ) from None
        out.setdefault(name, {})[field_name] = values
    return out


def _boolean(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ValueError(raw)
