"""The runs behind README "What the studies show", in one command.

Adult: ``fairtune train --data adult`` (the bundled set's train part, the MLP's
defaults), then every study kind from that model on ``adult:external``,
measured on ``adult:test``. Images: the SYNTHETIC skin-tone set
(``make_skin_tone_images``, 32x32 pixels, 2000/600/1000 rows, seed 0) written
as image CSVs under OUT/images; a small CNN and the small ViT trained on its
training CSV for 10 epochs (``fairtune train --arch cnn|vit``), then the keep,
steps and mask studies from each on its external CSV, measured on its test CSV.

Every step is the ``fairtune`` command run in this process (torch threads from
--threads), printed before it runs. Each study writes OUT/NAME/study.json and
study.png; the figure is copied to DOCS/NAME.png (in 128 colours, a quarter of the
bytes) and study.json to DOCS/NAME.json,
for the curve studies with each record cut to its point, seed, threshold and
headline metrics at t with their bootstrap intervals. ``--publish-only`` does that
copying alone, from the study folders an earlier run left in OUT.

    .venv/bin/python benchmarks/studies.py [--only adult-keep cnn-mask ...] [--threads 1]

from the repository root (the paths study.json records are relative to it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

from _common import console, set_threads
from PIL import Image

from fairtune.cli import main as fairtune
from fairtune.datasets import SyntheticSpec, make_skin_tone_images
from fairtune.evaluation.criterion import Criterion
from fairtune.studies.summary import headline

SEEDS = ["--seeds", "0", "1", "2"]
IMAGE_SPEC = SyntheticSpec(image_size=32)
IMAGE_EPOCHS = "10"
IMAGE_KEEPS = ["--keeps", "0.1", "0.25", "0.5", "1.0"]
STUDIES = {
    **{f"adult-{kind}": ("adult", kind, []) for kind in ("keep", "steps", "external-size", "lr")},
    "adult-mask": ("adult", "mask", []),
    **{f"{arch}-keep": (arch, "keep", IMAGE_KEEPS) for arch in ("cnn", "vit")},
    **{f"{arch}-{kind}": (arch, kind, []) for arch in ("cnn", "vit") for kind in ("steps", "mask")},
}
"""Each run's name: (model, study kind, options beyond the seeds)."""
COLOURS = 128


def run(argv: list[str]) -> None:
    """Print ``fairtune ARGV`` and run it; stop on failure."""
    console.print(f"\n$ fairtune {shlex.join(argv)}", style="bold")
    start = time.perf_counter()
    if fairtune(argv) != 0:
        raise SystemExit(f"fairtune {shlex.join(argv)} failed")
    console.print(f"({time.perf_counter() - start:.0f} s)")


def sources(model: str, out: Path) -> tuple[list[str], list[str]]:
    """``fairtune train``'s arguments for ``model`` and the study's data arguments."""
    if model == "adult":
        return ["--data", "adult"], ["--external", "adult:external", "--test", "adult:test"]
    images = out / "images"
    train = ["--data", str(images / "synthetic_train.csv"), "--image-col", "image"]
    train += ["--label", "malignant", "--sensitive", "skin_tone", "--image-size", "32"]
    train += ["--arch", model, "--epochs", IMAGE_EPOCHS]
    data = ["--external", str(images / "synthetic_external.csv")]
    return train, [*data, "--test", str(images / "synthetic_test.csv")]


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    """A curve study's record cut to its point, seed, threshold and headline metrics at t
    with their bootstrap intervals and the degenerate flag on each test set."""
    kept = {k: record[k] for k in ("series", "x", "seed", "failed")}
    if record["failed"]:
        return kept
    tests = {
        name: {
            **{m: measured["at_t"][m] for m in (*headline(Criterion()), "degenerate")},
            "ci_at_t": measured["ci_at_t"],
        }
        for name, measured in record["test"].items()
    }
    return {**kept, "threshold": record["threshold"], "test": tests}


def publish(folder: Path, docs: Path, name: str) -> None:
    """Copy ``folder``'s figure to DOCS/NAME.png in :data:`COLOURS` colours and its
    study.json (curve studies' records cut by :func:`_brief`) to DOCS/NAME.json."""
    figure = Image.open(folder / "study.png").convert("RGB")
    figure.quantize(COLOURS, method=Image.Quantize.MEDIANCUT).save(
        docs / f"{name}.png", optimize=True
    )
    saved = json.loads((folder / "study.json").read_text())
    if saved["kind"] != "mask":
        saved["records"] = [_brief(r) for r in saved["records"]]
    (docs / f"{name}.json").write_text(json.dumps(saved, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(STUDIES), default=list(STUDIES))
    p.add_argument("--out", type=Path, default=Path("studies-output"), help="study folders")
    p.add_argument("--docs", type=Path, default=Path("docs/studies"), help="figures, summaries")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--publish-only", action="store_true", help="only copy OUT's studies to DOCS")
    args = p.parse_args(argv)
    if args.publish_only:
        for name in args.only:
            publish(args.out / name, args.docs, name)
        return
    console.print(f"torch threads: {set_threads(args.threads)}")
    args.out.mkdir(parents=True, exist_ok=True)
    args.docs.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys(STUDIES[name][0] for name in args.only))
    if any(m != "adult" for m in models):
        make_skin_tone_images(args.out / "images", IMAGE_SPEC, seed=0)
    for model in models:
        train, data = sources(model, args.out)
        run(["train", *train, "--out", str(args.out / f"{model}-model")])
        for name in (n for n in args.only if STUDIES[n][0] == model):
            _, kind, extra = STUDIES[name]
            folder = args.out / name
            argv_ = ["study", kind, "--model", str(args.out / f"{model}-model"), *data]
            run([*argv_, "--out", str(folder), *SEEDS, *extra])
            publish(folder, args.docs, name)


if __name__ == "__main__":
    main()
