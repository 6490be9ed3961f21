"""The demo: a model trained on skewed historical Adult data, debiased by every method.

It emulates the papers' situation. The baseline is trained on a training split
in which only ``keep`` (10%) of the women with a positive label are left, as a
model trained on skewed historical data; sex is a model input, as skin tone is
visible to a skin-lesion model. The external and test splits stay
representative. ``keep=1`` gives the representative (unskewed) comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fairtune import report
from fairtune.baseline import TrainConfig, train_tabular
from fairtune.comparison import CompareSettings, compare
from fairtune.data import TabularPreprocessor, frame_to_data, skew_groups, split_frame
from fairtune.datasets import load_adult

LABEL, ATTRIBUTE, GROUP = "income", "sex", "Female"


@dataclass
class DemoSettings:
    """How the demo's baseline is made; saved beside its results."""

    keep: float = 0.1
    train_epochs: int = 10


def demo_rows(
    settings: DemoSettings, compare_settings: CompareSettings, progress: bool = False
) -> list[dict[str, Any]]:
    """Split, skew, train the baseline and compare the methods, once per seed."""
    frame = load_adult()
    rows: list[dict[str, Any]] = []
    for seed in compare_settings.seeds:
        train, external, test = split_frame(frame, LABEL, [ATTRIBUTE], (0.6, 0.2, 0.2), seed)
        if settings.keep < 1:
            train = skew_groups(train, LABEL, ATTRIBUTE, GROUP, settings.keep, seed)
        model, config = train_tabular(
            train,
            LABEL,
            [ATTRIBUTE],
            TrainConfig(epochs=settings.train_epochs, seed=seed),
            sensitive_as_feature=True,
            progress=progress,
        )
        prep = TabularPreprocessor.from_dict(config.preprocessing)
        ext, tst = (
            frame_to_data(part, LABEL, [ATTRIBUTE], prep, config.group_names)
            for part in (external, test)
        )
        one_seed = replace(compare_settings, seeds=[seed])
        rows += compare(model, ext, tst, one_seed, progress=progress)
    return rows


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
        f"{'settings chosen per method on a grid' if compare_settings.grid else 'default settings'}"
        f"; seeds {compare_settings.seeds}."
    )


def run_demo(
    out: str | Path,
    settings: DemoSettings,
    compare_settings: CompareSettings,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the demo, print its table and write results.json, results.csv and the plot."""
    text = describe(settings, compare_settings)
    report.console.print(text)
    rows = demo_rows(settings, compare_settings, progress)
    title = "Adult, " + ("skewed training data" if settings.keep < 1 else "representative data")
    report.write_comparison(
        out, rows, title, compare_settings, {"demo": asdict(settings), "description": text}
    )
    return rows
