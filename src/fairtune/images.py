"""Image data: a lazily decoded image source, seeded augmentation, and the CSV reader.

An image set is a CSV with one row per image (ISIC / Fitzpatrick17k / CheXpert
style): a column with the image path, a label column and sensitive attribute
columns. :func:`read_image_csv` turns it into a :class:`~fairtune.data.FairData`
whose inputs are an :class:`ImageSource`, decoded from disk one item at a time.

Row numbers in messages and reports count the CSV's data rows from 1, the header
not counted (row 1 is the line after the header).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from fairtune.data import GROUP_JOIN, FairData, encode_groups, encode_labels
from fairtune.errors import FairtuneError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augment",
    "ImageSource",
    "apply_binarize",
    "parse_binarize",
    "read_image_csv",
    "rotate_image",
    "with_augment",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# One-channel (grayscale) defaults: the mean of the ImageNet channel statistics.
GRAY_MEAN = (0.449,)
GRAY_STD = (0.226,)

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
)


# ---------------------------------------------------------------- augmentation


@dataclass
class Augment:
    """The papers' training augmentations, written with torch alone.

    Random horizontal flip, vertical flip and transpose (swap of H and W, for
    square images), each with probability ``p_flip``, then a rotation by an
    angle drawn uniformly from ``[-rotate, rotate]`` degrees (bilinear
    ``affine_grid``/``grid_sample``; ``padding`` is ``"zeros"``, black corners
    as torchvision's ``RandomRotation``, or ``"reflection"``). :class:`ImageSource`
    applies it to the [0, 1] pixels, before normalisation.

    Randomness: every call draws from a fresh ``torch.Generator`` seeded from
    ``(seed, epoch, key)``, where ``key`` is the image's CSV row. There is no
    shared generator state, so the same seed gives the same augmented tensors
    whatever the order of access, the subset taken, or the number of DataLoader
    workers (a shared generator would be copied into every worker and repeat its
    stream). Call :meth:`set_epoch` before each epoch to draw new augmentations;
    with DataLoader workers, call it before the epoch's iterator is created.
    """

    p_flip: float = 0.5
    rotate: float = 15.0
    padding: str = "zeros"
    seed: int = 0
    epoch: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_flip <= 1.0:
            raise FairtuneError(f"augment flip probability must lie in [0, 1], not {self.p_flip}")
        if not 0.0 <= self.rotate <= 180.0:
            raise FairtuneError(f"augment rotation must lie in [0, 180] degrees, not {self.rotate}")
        if int(self.seed) < 0:
            raise FairtuneError(f"augment seed must be a non-negative integer, not {self.seed}")
        if self.padding not in ("zeros", "reflection", "border"):
            raise FairtuneError(
                f"augment padding must be 'zeros', 'reflection' or 'border', not '{self.padding}'"
            )

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentations of epoch ``epoch`` from now on."""
        self.epoch = int(epoch)

    def generator(self, key: int) -> torch.Generator:
        """The generator for one item: a function of (seed, epoch, key) alone."""
        state = np.random.SeedSequence([self.seed, self.epoch, int(key)]).generate_state(2)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __call__(self, x: torch.Tensor, key: int) -> torch.Tensor:
        """Augment one image ``x`` of shape (C, H, W); ``key`` identifies the item."""
        if x.dim() != 3:
            raise FairtuneError(f"Augment expects one image (C, H, W), not shape {tuple(x.shape)}")
        # Always draw the same four numbers, so each draw has a fixed meaning.
        u = torch.rand(4, generator=self.generator(key), dtype=torch.float64)
        if u[0] < self.p_flip:
            x = x.flip(-1)
        if u[1] < self.p_flip:
            x = x.flip(-2)
        if u[2] < self.p_flip and x.shape[-1] == x.shape[-2]:
            x = x.transpose(-1, -2)
        if self.rotate > 0:
            x = rotate_image(x, float((2 * u[3] - 1) * self.rotate), self.padding)
        return x.contiguous()


def rotate_image(x: torch.Tensor, degrees: float, padding: str = "zeros") -> torch.Tensor:
    """Rotate a (C, H, W) image by ``degrees`` about its centre, bilinear.

    Positive angles turn the image counter-clockwise as displayed (row 0 at the
    top): 90 degrees equals ``torch.rot90(x, 1, (1, 2))``.
    """
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=x.dtype)
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    out = F.grid_sample(
        x.unsqueeze(0), grid, mode="bilinear", padding_mode=padding, align_corners=False
    )
    return out[0]


# ---------------------------------------------------------------- image source


class ImageSource:
    """Images decoded from files on demand: the :class:`~fairtune.data.InputSource` of images.

    Item ``i`` is ``paths[i]`` decoded with Pillow, converted to ``channels``
    (3: RGB, grayscale replicated; 1: luma, ``L``), resized to ``image_size`` x
    ``image_size`` (bilinear), scaled to [0, 1] (16-bit images by 65535),
    augmented if ``augment`` is set, then normalised by ``mean`` and ``std``:
    a float32 tensor (channels, image_size, image_size).

    ``rows`` are the images' CSV rows (0-based positions), kept through
    :meth:`take`, so an error always names the row of the original CSV.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        image_size: int = 64,
        channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augment: Augment | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
        origin: str = "the CSV",
    ) -> None:
        if channels not in (1, 3):
            raise FairtuneError(f"channels must be 3 (RGB) or 1 (grayscale), not {channels}")
        if int(image_size) < 1:
            raise FairtuneError(f"image size must be a positive number of pixels, not {image_size}")
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        self.rows = (
            np.arange(len(self.paths), dtype=np.int64)
            if rows is None
            else np.asarray(rows, dtype=np.int64)
        )
        if len(self.rows) != len(self.paths):
            raise FairtuneError(f"{len(self.paths)} image paths but {len(self.rows)} row numbers")
        self.image_size = int(image_size)
        self.channels = channels
        default_mean, default_std = (
            (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (GRAY_MEAN, GRAY_STD)
        )
        self.mean = tuple(float(m) for m in (default_mean if mean is None else mean))
        self.std = tuple(float(s) for s in (default_std if std is None else std))
        for what, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise FairtuneError(
                    f"normalisation {what} has {len(values)} values; give 1 or {channels}"
                )
        if any(s <= 0 for s in self.std):
            raise FairtuneError(f"normalisation std must be positive, not {list(self.std)}")
        self.augment = augment
        self.origin = origin

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"image index {i} out of range for {len(self)} images")
        x = self.load(i)
        if self.augment is not None:
            x = self.augment(x, int(self.rows[i]))
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return (x - mean) / std

    def load(self, index: int) -> torch.Tensor:
        """Item ``index`` decoded, resized and scaled to [0, 1]; not augmented nor normalised."""
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                img.load()
                array = self._to_array(img)
        except _DECODE_ERRORS as exc:
            raise FairtuneError(self._describe(index, exc)) from None
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def _to_array(self, img: Image.Image) -> np.ndarray:
        """(H, W, channels) float32 in [0, 1]."""
        img = ImageOps.exif_transpose(img)
        size = (self.image_size, self.image_size)
        if img.mode in _SIXTEEN_BIT_MODES or img.mode == "F":
            scale = 1.0 if img.mode == "F" else 65535.0
            gray = np.asarray(img, dtype=np.float32) / scale
            gray = Image.fromarray(np.clip(gray, 0.0, 1.0), mode="F").resize(size, Image.BILINEAR)
            array = np.asarray(gray, dtype=np.float32)[:, :, None]
            return np.repeat(array, self.channels, axis=2)
        mode = "RGB" if self.channels == 3 else "L"
        if img.mode in ("RGBA", "LA", "P", "PA") and mode == "RGB":
            img = img.convert("RGBA").convert("RGB")
        resized = img.convert(mode).resize(size, Image.BILINEAR)
        array = np.asarray(resized, dtype=np.float32) / 255.0
        return array if array.ndim == 3 else array[:, :, None]

    def _describe(self, index: int, exc: BaseException) -> str:
        return (
            f"cannot read image '{self.paths[index]}' (row {int(self.rows[index]) + 1} of "
            f"{self.origin}): {_reason(self.paths[index], exc)}; fix or remove the file, "
            "or skip bad images (--skip-bad-images, or skip_bad=True)"
        )

    def take(self, indices: np.ndarray | Sequence[int]) -> ImageSource:
        """A source over the items at ``indices``, in that order, keeping their CSV rows."""
        idx = np.asarray(indices, dtype=np.int64)
        new = self.with_augment(self.augment)
        new.paths = self.paths[idx]
        new.rows = self.rows[idx]
        return new

    def with_augment(self, augment: Augment | None) -> ImageSource:
        """The same images with ``augment`` (``None``: none), e.g. for evaluation."""
        new = ImageSource.__new__(ImageSource)
        new.__dict__.update(self.__dict__)
        new.augment = augment
        return new

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the augmentation, if any."""
        if self.augment is not None:
            self.augment.set_epoch(epoch)

    def scan(self, decode: bool = False) -> list[dict[str, Any]]:
        """Check that every file opens; return the bad ones.

        Each file is opened and checked with Pillow's ``verify()`` (cheap: no
        pixel decoding); ``decode=True`` also decodes it fully, which also
        catches truncated JPEGs that ``verify`` lets through. Returns one dict
        per bad item: ``index`` (position in this source), ``row`` (1-based CSV
        data row), ``file`` and ``reason``.
        """
        bad = []
        for i, path in enumerate(self.paths):
            try:
                with Image.open(path) as img:
                    img.verify()
                if decode:
                    with Image.open(path) as img:
                        img.load()
            except _DECODE_ERRORS as exc:
                bad.append(
                    {
                        "index": i,
                        "row": int(self.rows[i]) + 1,
                        "file": str(path),
                        "reason": _reason(path, exc),
                    }
                )
        return bad


def _reason(path: str, exc: BaseException) -> str:
    """Why a file could not be read, on one line."""
    if not os.path.exists(path):
        return "file not found"
    return " ".join(f"{type(exc).__name__}: {exc}".split())


# ---------------------------------------------------------------- binarised attributes


_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class _Rule:
    """One binarisation rule: an inclusive numeric range or a list of values."""

    text: str
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()

    def contains(self, value: Any) -> bool:
        number = _as_number(value)
        if self.low is not None and self.high is not None:
            return number is not None and self.low <= number <= self.high
        if str(value).strip() in self.values:
            return True
        return number is not None and any(_as_number(v) == number for v in self.values)


def _as_number(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_rule(column: str, text: str) -> _Rule:
    text = str(text).strip()
    match = _RANGE.match(text)
    if match:
        low, high = float(match.group(1)), float(match.group(2))
        if low > high:
            raise FairtuneError(
                f"binarize rule '{column}:{text}': the range's start exceeds its end"
            )
        return _Rule(text, low=low, high=high)
    values = tuple(v.strip() for v in text.split(","))
    if not text or any(not v for v in values):
        raise FairtuneError(
            f"binarize rule '{column}:{text}' is malformed: give a range like 'fitzpatrick:1-3' "
            "or a list like 'fitzpatrick:1,2,3'"
        )
    return _Rule(text, values=values)


def parse_binarize(specs: str | Sequence[str]) -> dict[str, str]:
    """Parse ``"column:rule"`` strings into ``{column: rule}``.

    A rule is an inclusive numeric range (``"fitzpatrick:1-3"``) or a comma list
    of values (``"fitzpatrick:1,2,3"``, ``"race:Black,Asian"``).
    """
    if isinstance(specs, str):
        specs = [specs]
    rules: dict[str, str] = {}
    for spec in specs:
        column, sep, rule = str(spec).rpartition(":")
        column, rule = column.strip(), rule.strip()
        if not sep or not column or not rule:
            raise FairtuneError(
                f"binarize rule '{spec}' is malformed: write column:rule, e.g. 'fitzpatrick:1-3' "
                "or 'fitzpatrick:1,2,3'"
            )
        if column in rules:
            raise FairtuneError(f"binarize names column '{column}' twice")
        _parse_rule(column, rule)
        rules[column] = rule
    return rules


def apply_binarize(
    frame: pd.DataFrame, binarize: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, dict[str, list[str]]]]:
    """Replace each named column by two groups, ``"<col> <rule>"`` and ``"<col> other"``.

    Returns the new frame and, per column, which raw values went to which group
    (so a code such as -1 for "unknown" landing in "other" is visible).
    Missing values stay missing, so the group encoding reports them.
    """
    frame = frame.copy()
    summary: dict[str, dict[str, list[str]]] = {}
    for column, text in binarize.items():
        if column not in frame.columns:
            raise FairtuneError(
                f"binarize names column '{column}', not in the data; "
                f"columns are {list(frame.columns)[:20]}"
            )
        rule = _parse_rule(column, text)
        inside, other = f"{column} {rule.text}", f"{column} other"
        series = frame[column]
        present = series.notna()
        member = series[present].map(rule.contains).astype(bool)
        new = pd.Series(np.where(present, other, None), index=frame.index, dtype=object)
        new[member[member].index] = inside
        summary[column] = {
            inside: sorted({str(v) for v in series[present][member]}),
            other: sorted({str(v) for v in series[present][~member]}),
        }
        frame[column] = new.where(present, np.nan)
    return frame, summary


# ---------------------------------------------------------------- CSV reader


def read_image_csv(
    csv_path: str | os.PathLike[str],
    image_root: str | os.PathLike[str] | None,
    image_col: str,
    label: str,
    sensitive: str | Sequence[str],
    image_size: int = 64,
    positive: Any = None,
    group_names: Sequence[str] | None = None,
    binarize: dict[str, str] | None = None,
    skip_bad: bool = False,
    augment: Augment | None = None,
    channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[FairData, dict[str, Any]]:
    """Read an image set described by a CSV into :class:`~fairtune.data.FairData`.

    ``image_col`` holds paths relative to ``image_root`` (default: the CSV's
    folder) or absolute ones. ``sensitive`` names one column or several
    (crossed). ``binarize`` maps a sensitive column to a rule (see
    :func:`parse_binarize`). Missing files always fail here, before any
    training, unless ``skip_bad``: then every file is checked
    (:meth:`ImageSource.scan`) and the bad rows are dropped and listed in the
    report.

    Returns the data and a report: ``csv``, ``rows_read``, ``rows_used``,
    ``bad_rows`` (row, file, reason) and, with ``binarize``, ``binarized``.
    """
    csv_path = Path(csv_path)
    sensitive = [sensitive] if isinstance(sensitive, str) else list(sensitive)
    if not csv_path.is_file():
        raise FairtuneError(f"image CSV '{csv_path}' does not exist")
    try:
        frame = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FairtuneError(
            f"cannot parse CSV '{csv_path}': {' '.join(str(exc).split())}"
        ) from None
    missing = [c for c in dict.fromkeys([image_col, label, *sensitive]) if c not in frame.columns]
    if missing:
        raise FairtuneError(
            f"column(s) {missing} not in '{csv_path.name}'; columns are {list(frame.columns)[:20]}"
        )
    if binarize:
        outside = [c for c in binarize if c not in sensitive]
        if outside:
            raise FairtuneError(
                f"binarize names {outside}, which are not sensitive columns ({sensitive})"
            )
    report: dict[str, Any] = {"csv": str(csv_path), "rows_read": len(frame)}

    names = frame[image_col]
    empty = names.isna() | (names.astype(str).str.strip() == "")
    if empty.any():
        raise FairtuneError(
            f"image column '{image_col}' is empty in {int(empty.sum())} row(s) of "
            f"'{csv_path.name}' (first: row {int(np.flatnonzero(empty.to_numpy())[0]) + 1})"
        )
    root = Path(image_root) if image_root is not None else csv_path.parent
    paths = [str(root / p) if not os.path.isabs(p) else p for p in names.astype(str).str.strip()]
    source = ImageSource(
        paths,
        image_size=image_size,
        channels=channels,
        mean=mean,
        std=std,
        augment=augment,
        rows=np.arange(len(frame)),
        origin=f"'{csv_path.name}'",
    )

    keep = np.arange(len(frame))
    if skip_bad:
        bad = source.scan(decode=True)  # verify() alone lets a truncated JPEG through
    else:
        absent = [i for i, p in enumerate(paths) if not os.path.isfile(p)]
        if absent:
            first = absent[0]
            raise FairtuneError(
                f"{len(absent)} image file(s) listed in '{csv_path.name}' do not exist, first "
                f"'{paths[first]}' (row {first + 1}); check the image root ('{root}') or "
                "skip bad images (--skip-bad-images, or skip_bad=True)"
            )
        bad = []
    if bad:
        keep = np.setdiff1d(keep, [b["index"] for b in bad])
        source = source.take(keep)
        frame = frame.iloc[keep]
    report["bad_rows"] = [{k: b[k] for k in ("row", "file", "reason")} for b in bad]
    report["rows_used"] = len(frame)
    if len(frame) == 0:
        raise FairtuneError(f"no readable images left in '{csv_path.name}'")

    if binarize:
        frame, report["binarized"] = apply_binarize(frame, binarize)
    labels = encode_labels(frame[label], positive)
    groups, names_ = encode_groups(frame, sensitive, group_names)
    data = FairData(
        source,
        torch.tensor(labels),
        torch.tensor(groups),
        names_,
        attribute=GROUP_JOIN.join(sensitive),
    )
    return data, report


def with_augment(data: FairData, augment: Augment | None) -> FairData:
    """``data`` with its image source's augmentation replaced (``None``: off)."""
    if not isinstance(data.inputs, ImageSource):
        raise FairtuneError("augmentation needs image inputs (an ImageSource)")
    return FairData(
        data.inputs.with_augment(augment),
        data.labels,
        data.groups,
        data.group_names,
        data.attribute,
    )


def in_memory(data: FairData, batch_size: int = 256, num_workers: int = 0) -> FairData:
    """Decode every image once and keep the tensors: for sets that fit in memory.

    Every later pass (importance, each epoch, evaluation) then reads tensors
    instead of files. Augmented sources are refused: one frozen random view per
    image is not augmentation.
    """
    if isinstance(data.inputs, torch.Tensor):
        return data
    if getattr(data.inputs, "augment", None) is not None:
        raise FairtuneError("augmented images cannot be held in memory; read them lazily")
    batches = [x for x, _, _ in data.loader(batch_size, num_workers=num_workers)]
    inputs = torch.cat(batches) if batches else torch.empty(0)
    return FairData(inputs, data.labels, data.groups, data.group_names, data.attribute)
