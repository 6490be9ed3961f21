"""Debiasing quality: every method, the selected model and the reference, on eight protocols.

Per protocol and seed, ``compare`` runs every registered method, the
``threshold_optimizer`` reference (group thresholds; needs the sensitive
attribute at prediction time) and the ``selected`` row (the one choice across
methods and the unchanged starting model). The table reports, per row, the
cut in EOdds (mean) at the chosen threshold t relative to the baseline of the
same seed (mean ± sample std over seeds, and as a % of the baseline's mean),
the AUC change, the seeds in which the row was degenerate at t and, for
``selected``, the selection regret (with the regret the test rows' noise alone shows for
the best model on test) and what it chose per seed. A cut is called
"beyond the seed spread" only when mean − 2·std/√n > 0 and no seed was
degenerate at t.

Protocols (all from bundled data; external and test parts representative):

- ``adult_sex``: the demo's skewed Adult (``fairtune.demo.demo_rows``, keep 10%
  of the women with income >50K in the training part);
- ``adult_race``: Adult with race binarised to White / other
  (``apply_binarize(frame, {"race": "White"})``), keep 10% of the positive rows
  of the non-White group in the training part; MLP as in the demo;
- ``adult_natural``: the demo with keep=1;
- ``german``: German credit, sensitive sex, natural training part, MLP trained
  with ``TrainConfig()`` (the CLI's defaults);
- ``images``: the synthetic skin-tone images with the small CNN
  (``fairtune.demo.image_demo_rows``, ``ImageDemoSettings(arch="cnn")``);
- ``adult_no_sex``: ``adult_sex``'s split and skew, but sex is NOT a model input:
  the model sees it only through proxies (relationship, marital status);
- ``german_age``: German credit, sensitive age (25 and under / over 25), natural
  training part, ``TrainConfig()``;
- ``images_64``: ``images`` at 64x64.

The sensitive attribute is a model input in every tabular protocol but
``adult_no_sex``, as in the demo. Under each table: the achievable front on the
held-out part (``fairtune.selection.front``) and the selected model's distance from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _common import RESULTS, console, environment, recorded_args, set_threads, table, write_json
from rich.console import Console

from fairtune.binarize import apply_binarize
from fairtune.columns import Columns
from fairtune.data import FairData
from fairtune.datasets import load_adult, load_german, skew_groups
from fairtune.demo import (
    DemoSettings,
    ImageDemoSettings,
    demo_rows,
    image_demo_rows,
    with_training,
)
from fairtune.erm import TrainConfig, train_tabular
from fairtune.finetune.losses import BIAS_KINDS
from fairtune.methods import REGISTRY
from fairtune.modelio import ModelConfig
from fairtune.selection.comparison import CompareSettings, compare
from fairtune.selection.references import REFERENCE
from fairtune.selection.results import SELECTED, ResultRow
from fairtune.splits import split_frame
from fairtune.tabular import TabularPreprocessor, frame_to_data

BASELINE = "baseline"
TAKE_BIAS_KIND = ("bmft", "swift", "fullft", "bias_gd")
"""The methods whose grids ``--bias-kinds`` extends (the at-threshold losses, METHODS.md)."""
wide = Console(width=150)  # the tables are quoted whole in benchmarks/README.md


@dataclass
class TabularProtocol:
    """A bundled table, its sensitive attribute, the skew of its training part and the
    starting model's training settings (the seed is set per seed)."""

    load: Callable[[], pd.DataFrame]
    label: str
    attribute: str
    group: str
    keep: float
    train: TrainConfig
    attribute_as_input: bool = True


def _adult_race() -> pd.DataFrame:
    return apply_binarize(load_adult(), {"race": "White"})[0]


ADULT_RACE = TabularProtocol(
    _adult_race, "income", "race", "race other", 0.1, TrainConfig(epochs=DemoSettings.train_epochs)
)
GERMAN = TabularProtocol(load_german, "credit_risk", "sex", "female", 1.0, TrainConfig())
ADULT_NO_SEX = TabularProtocol(
    load_adult,
    "income",
    "sex",
    "Female",
    0.1,
    TrainConfig(epochs=DemoSettings.train_epochs),
    attribute_as_input=False,
)
GERMAN_AGE = TabularProtocol(
    load_german, "credit_risk", "age_group", "25 and under", 1.0, TrainConfig()
)


@dataclass
class TabularParts:
    """One seed of a tabular protocol: the starting model, its config, external and test."""

    model: torch.nn.Module
    config: ModelConfig
    external: FairData
    test: FairData


def tabular_parts(protocol: TabularProtocol, frame: pd.DataFrame, seed: int) -> TabularParts:
    """Split, skew and train the starting MLP for one seed (as the demo does)."""
    train, external, test = split_frame(
        frame, protocol.label, [protocol.attribute], (0.6, 0.2, 0.2), seed
    )
    if protocol.keep < 1:
        train = skew_groups(
            train, protocol.label, protocol.attribute, protocol.group, protocol.keep, seed
        )
    model, config = train_tabular(
        train,
        Columns(protocol.label, [protocol.attribute]),
        replace(protocol.train, seed=seed),
        sensitive_as_feature=protocol.attribute_as_input,
    )
    prep = TabularPreprocessor.from_dict(config.preprocessing)
    ext, tst = (
        frame_to_data(part, protocol.label, [protocol.attribute], prep, config.group_names)
        for part in (external, test)
    )
    return TabularParts(model, config, ext, tst)


def tabular_rows(protocol: TabularProtocol, settings: CompareSettings) -> list[ResultRow]:
    """The protocol's parts and a comparison from them, once per seed."""
    frame = protocol.load()
    rows: list[ResultRow] = []
    for seed in settings.seeds:
        parts = tabular_parts(protocol, frame, seed)
        one_seed = with_training(replace(settings, seeds=[seed]), parts.config.history)
        rows += compare(parts.model, parts.external, parts.test, one_seed)
    return rows


PROTOCOLS: dict[str, tuple[str, Callable[[CompareSettings], list[ResultRow]]]] = {
    "adult_sex": (
        "Adult, sex skewed (10% of women >50K kept in training)",
        lambda s: demo_rows(DemoSettings(keep=0.1), s),
    ),
    "adult_race": (
        "Adult, race skewed (White / other; 10% of other >50K kept in training)",
        lambda s: tabular_rows(ADULT_RACE, s),
    ),
    "adult_natural": (
        "Adult, natural training part (sex)",
        lambda s: demo_rows(DemoSettings(keep=1.0), s),
    ),
    "german": ("German credit, natural training part (sex)", lambda s: tabular_rows(GERMAN, s)),
    "images": (
        "SYNTHETIC skin-tone images, small CNN",
        lambda s: image_demo_rows(ImageDemoSettings(arch="cnn"), s),
    ),
    "adult_no_sex": (
        "Adult, sex skewed as adult_sex, sex NOT an input (only its proxies)",
        lambda s: tabular_rows(ADULT_NO_SEX, s),
    ),
    "german_age": (
        "German credit, natural training part (age: 25 and under / over 25)",
        lambda s: tabular_rows(GERMAN_AGE, s),
    ),
    "images_64": (
        "SYNTHETIC skin-tone images at 64x64, small CNN",
        lambda s: image_demo_rows(ImageDemoSettings(arch="cnn", image_size=64), s),
    ),
}
IMAGE_PROTOCOLS = ("images", "images_64")


def _by_seed(rows: list[ResultRow], method: str) -> dict[int, ResultRow]:
    return {r.seed: r for r in rows if r.method == method}


def _pm(values: np.ndarray, digits: int = 3) -> str:
    finite = values[~np.isnan(values)]
    if len(finite) == 0:
        return "n/a"
    mean = f"{finite.mean():+.{digits}f}"
    return mean + (f"±{finite.std(ddof=1):.{digits}f}" if len(finite) > 1 else "")


def summarise_row(rows: list[ResultRow], method: str) -> dict[str, Any]:
    """One row's figures against the baseline of the same seed, over seeds."""
    base = _by_seed(rows, BASELINE)
    mine = _by_seed(rows, method)
    seeds = sorted(mine)
    eodds = np.array([mine[s].metrics_tuned.eodds_mean for s in seeds], dtype=float)
    base_eodds = np.array([base[s].metrics_tuned.eodds_mean for s in seeds], dtype=float)
    cut = base_eodds - eodds
    aucs = np.array([mine[s].metrics_tuned.auc for s in seeds], dtype=float)
    auc = aucs - np.array([base[s].metrics_tuned.auc for s in seeds])
    finite = cut[~np.isnan(cut)]
    n = len(finite)
    degenerate = [s for s in seeds if mine[s].metrics_tuned.degenerate]
    failed = [s for s in seeds if mine[s].failed]
    mean = float(finite.mean()) if n else math.nan
    std = float(finite.std(ddof=1)) if n > 1 else math.nan
    return {
        "seeds": seeds,
        "eodds_t": eodds.tolist(),
        "eodds_05": [mine[s].metrics.eodds_mean for s in seeds],
        "cut": cut.tolist(),
        "cut_mean": mean,
        "cut_std": std,
        "cut_percent": 100 * mean / float(np.nanmean(base_eodds)) if n else math.nan,
        "auc": aucs.tolist(),
        "auc_change": auc.tolist(),
        "degenerate_seeds": degenerate,
        "failed_seeds": failed,
        "beyond_seed_spread": bool(
            n > 1 and not degenerate and not failed and mean - 2 * std / math.sqrt(n) > 0
        ),
    }


def _choices(rows: list[ResultRow]) -> str:
    chosen = sorted((r for r in rows if r.method == SELECTED), key=lambda r: r.seed)
    return ", ".join(f"{r.seed}: {r.selection.method}" for r in chosen)


def _regret(rows: list[ResultRow]) -> str:
    """The selection regret over seeds, with the regret the test rows' noise alone shows
    (files written before it was measured lack it)."""
    chosen = [r.selection for r in rows if r.method == SELECTED]
    values = np.array([c.regret for c in chosen], dtype=float)
    noise = np.array([c.best_on_test.noise if c.best_on_test else np.nan for c in chosen])
    if np.isnan(noise).all():
        return _pm(values)
    return f"{_pm(values)} (noise {np.nanmean(noise):.3f})"


def protocol_table(title: str, rows: list[ResultRow]) -> tuple[Any, dict[str, Any]]:
    """The printed table of one protocol and its per-row summaries."""
    methods = _methods(rows)
    summaries = {m: summarise_row(rows, m) for m in methods}
    lines = []
    for m in methods:
        s = summaries[m]
        name = m + ("*" if m == REFERENCE else "")
        lines.append(
            [
                name,
                _pm(np.array(s["auc"])).lstrip("+"),
                _pm(np.array(s["eodds_t"])).lstrip("+"),
                _pm(np.array(s["eodds_05"])).lstrip("+"),
                "" if m == BASELINE else _pm(np.array(s["cut"])),
                "" if m == BASELINE else f"{s['cut_percent']:.0f}%",
                "yes" if s["beyond_seed_spread"] else "",
                "" if m == BASELINE else _pm(np.array(s["auc_change"])),
                f"{len(s['degenerate_seeds'])}/{len(s['seeds'])}"
                + (f", failed {len(s['failed_seeds'])}" if s["failed_seeds"] else ""),
                _regret(rows) if m == SELECTED else "",
            ]
        )
    columns = [
        "row",
        "AUC",
        "EOdds t",
        "EOdds 0.5",
        "cut at t",
        "cut %",
        "beyond spread",
        "ΔAUC",
        "degen. t",
        "regret",
    ]
    return table(title, columns, lines), summaries


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds")
    p.add_argument(
        "--protocols",
        nargs="+",
        default=list(PROTOCOLS),
        choices=list(PROTOCOLS),
        help="protocols to run (default: all)",
    )
    p.add_argument(
        "--image-grid", action="store_true", help="search the grid on the images too (slow)"
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=sorted(REGISTRY),
        choices=sorted(REGISTRY),
        help="methods to compare (default: every registered one)",
    )
    p.add_argument(
        "--bias-kinds",
        nargs="+",
        default=[],
        choices=BIAS_KINDS,
        help="search these bias losses too in the grids of " + ", ".join(TAKE_BIAS_KIND),
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1: steadier on a shared machine; 0: torch's default)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=Path(os.path.relpath(RESULTS / "quality.json")),
        metavar="OUT",
        help="write the raw rows here (default: benchmarks/results/quality.json)",
    )
    p.add_argument(
        "--tables-from",
        type=Path,
        metavar="JSON",
        help="print the tables of a quality.json written before, running nothing",
    )
    p.add_argument(
        "--before",
        type=Path,
        metavar="JSON",
        help="with --tables-from: print, per protocol and row, this earlier quality.json's "
        "figures beside those of --tables-from, instead of the tables",
    )
    args = p.parse_args(argv)
    if args.before and not args.tables_from:
        p.error("--before needs --tables-from (the 'after' figures)")
    if args.tables_from:
        payload = json.loads(args.tables_from.read_text())
        if args.before:
            print_before_after(json.loads(args.before.read_text()), payload)
            return payload
        for part in payload["protocols"].values():
            print_protocol(part["caption"], [ResultRow.from_dict(r) for r in part["rows"]])
        return payload
    threads = set_threads(args.threads)
    payload = {
        "benchmark": "quality",
        "environment": environment(threads),
        "args": recorded_args(args),
        "protocols": {},
    }
    for name in args.protocols:
        title, run = PROTOCOLS[name]
        grid = args.image_grid if name in IMAGE_PROTOCOLS else True
        settings = CompareSettings(
            methods=args.methods, seeds=args.seeds, grid=grid, grids=at_threshold_grids(args)
        )
        start = time.perf_counter()
        with console.status(f"{name}: seeds {args.seeds}, grid {grid}"):
            rows = run(settings)
        seconds = time.perf_counter() - start
        caption = (
            f"{title}; seeds {args.seeds}; grid {'on' if grid else 'off'}; "
            f"threshold t: {settings.threshold_text()}; {seconds / 60:.1f} min"
        )
        payload["protocols"][name] = {
            "title": title,
            "caption": caption,
            "grid": grid,
            "seconds": seconds,
            "summary": print_protocol(caption, rows),
            "rows": [r.to_dict() for r in rows],
        }
        write_json(args.json, payload)  # after every protocol: a stopped run keeps its part
    return payload


def print_protocol(caption: str, rows: list[ResultRow]) -> dict[str, Any]:
    """Print one protocol's table and its notes; return the per-row summaries."""
    printed, summaries = protocol_table(caption, rows)
    wide.print(printed)
    wide.print(
        f"* needs the sensitive attribute at prediction time. cut = baseline − row, same "
        f"seed; ± = sample std over seeds. selected chose (seed: method): {_choices(rows)}"
    )
    fronts = front_summary(rows)
    if fronts:
        summaries["front"] = fronts
        wide.print(
            "achievable front on the held-out part (EOdds (mean) at t, AUC within the tolerance): "
            f"{_pm(np.array(fronts['front'])).lstrip('+')} ({fronts['front_by']}); one threshold, "
            f"no attribute: {_pm(np.array(fronts['one_threshold'])).lstrip('+')} "
            f"({fronts['one_threshold_by']}); selected "
            f"{_pm(np.array(fronts['selected'])).lstrip('+')}, "
            f"{_pm(np.array(fronts['distance']))} from the front"
        )
    return summaries


def front_summary(rows: list[ResultRow]) -> dict[str, Any]:
    """The held-out achievable front of each seed (``fairtune.selection.front``), in lists over
    seeds."""
    chosen = sorted((r for r in rows if r.method == SELECTED), key=lambda r: r.seed)
    fronts = [r.selection.front for r in chosen if r.selection.front is not None]
    if not fronts:
        return {}
    return {
        "front": [f.best.value for f in fronts],
        "front_by": ", ".join(str(f.best.method) for f in fronts),
        "one_threshold": [f.one_threshold.value for f in fronts],
        "one_threshold_by": ", ".join(str(f.one_threshold.method) for f in fronts),
        "selected": [f.selected for f in fronts],
        "distance": [f.distance for f in fronts],
    }


def at_threshold_grids(args: argparse.Namespace) -> dict[str, dict[str, list[Any]]]:
    """With ``--bias-kinds``: those bias losses in the grids of the methods that take one."""
    if not args.bias_kinds:
        return {}
    return {m: {"bias_kind": args.bias_kinds} for m in TAKE_BIAS_KIND if m in args.methods}


def print_before_after(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Per protocol in both runs, each row's EOdds (mean) at t, cut and ΔAUC, before → after."""
    for name, part in after["protocols"].items():
        if name not in before["protocols"]:
            continue
        runs = [
            [ResultRow.from_dict(r) for r in run["protocols"][name]["rows"]]
            for run in (before, after)
        ]
        summaries = [{m: summarise_row(rows, m) for m in _methods(rows)} for rows in runs]
        lines = []
        for m in _methods(runs[1]):
            if m == BASELINE or m not in summaries[0]:
                continue
            old, new = summaries[0][m], summaries[1][m]
            lines.append(
                [
                    m + ("*" if m == REFERENCE else ""),
                    *(_pm(np.array(s["eodds_t"])).lstrip("+") for s in (old, new)),
                    *(_pm(np.array(s["cut"])) for s in (old, new)),
                    *(f"{s['cut_percent']:.0f}%" for s in (old, new)),
                    *(_pm(np.array(s["auc_change"])) for s in (old, new)),
                    " → ".join("yes" if s["beyond_seed_spread"] else "no" for s in (old, new)),
                ]
            )
        columns = [
            "row",
            "EOdds t",
            "→",
            "cut at t",
            "→",
            "cut %",
            "→",
            "ΔAUC",
            "→",
            "beyond spread",
        ]
        title = f"{part['title']}: each figure before, then after (→)"
        wide.print(table(title, columns, lines))


def _methods(rows: list[ResultRow]) -> list[str]:
    return list(dict.fromkeys(r.method for r in rows))


if __name__ == "__main__":
    main()
