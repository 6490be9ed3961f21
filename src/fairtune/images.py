"""Image decoding: a lazily decoded image source, and holding decoded images in memory.

An :class:`ImageSource` is the :class:`~fairtune.data.InputSource` of an image
set: item ``i`` is file ``i`` decoded as :class:`Decoding` says, augmented if
an :class:`~fairtune.augment.Augment` is set. Row numbers in messages count the
CSV's data rows from 1, the header not counted (row 1 is the line after the
header).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fairtune.augment import Augment
from fairtune.data import FairData
from fairtune.errors import FairtuneError

__all__ = [
    "GRAY_MEAN",
    "GRAY_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_PIXELS",
    "Decoding",
    "ImageSource",
    "ImageTooLarge",
    "in_memory",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# One-channel (grayscale) defaults: the mean of the ImageNet channel statistics.
GRAY_MEAN = (0.449,)
GRAY_STD = (0.226,)

MAX_PIXELS = 89_478_485
"""Default limit on an image's decoded pixels (Pillow's own warning threshold): a larger
file is refused, not decoded into gigabytes (a decompression bomb, or the wrong file)."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class ImageTooLarge(ValueError):
    """An image with more pixels than the reading allows."""


_DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
)


@dataclass(frozen=True)
class Decoding:
    """How a file becomes a tensor: its square size, channels and normalisation.

    ``channels`` is 3 (RGB, grayscale replicated) or 1 (luma); ``mean`` and
    ``std`` normalise the [0, 1] pixels, one value or one per channel (None:
    the ImageNet statistics, or their mean for one channel).
    """

    image_size: int = 64
    channels: int = 3
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None


class ImageSource:
    """Images decoded from files on demand: the :class:`~fairtune.data.InputSource` of images.

    Item ``i`` is ``paths[i]`` decoded with Pillow, converted to the
    ``decoding``'s channels (3: RGB, grayscale replicated; 1: luma, ``L``),
    resized to its ``image_size`` x ``image_size`` (bilinear), scaled to [0, 1]
    (16-bit images by 65535), augmented if ``augment`` is set, then normalised
    by its mean and std: a float32 tensor (channels, image_size, image_size).

    ``rows`` are the images' CSV rows (0-based positions), kept through
    :meth:`take`, so an error always names the row of the original CSV. A file
    of more than ``max_pixels`` pixels is refused before it is decoded.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        decoding: Decoding = Decoding(),
        augment: Augment | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
        origin: str = "the CSV",
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        image_size, channels = decoding.image_size, decoding.channels
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
        mean = default_mean if decoding.mean is None else decoding.mean
        std = default_std if decoding.std is None else decoding.std
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        for what, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise FairtuneError(
                    f"normalisation {what} has {len(values)} values; give 1 or {channels}"
                )
        if any(s <= 0 for s in self.std):
            raise FairtuneError(f"normalisation std must be positive, not {list(self.std)}")
        self.augment = augment
        self.origin = origin
        self.max_pixels = int(max_pixels)

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
            with self._open(path) as img:
                img.load()
                array = self._to_array(img)
        except _DECODE_ERRORS as exc:
            raise FairtuneError(self._describe(index, exc)) from None
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def _open(self, path: str) -> Image.Image:
        """The file opened lazily (no pixels decoded yet), refused if over ``max_pixels``.

        Pillow's own limit (``Image.MAX_IMAGE_PIXELS``, refused at twice it) is set to
        ``max_pixels`` too, so a limit raised above Pillow's default takes effect."""
        advice = "(raise it with --max-image-pixels, or max_pixels=, if the file is right)"
        Image.MAX_IMAGE_PIXELS = self.max_pixels
        with warnings.catch_warnings():  # the limit below replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                img = Image.open(path)
            except Image.DecompressionBombError:
                raise ImageTooLarge(
                    f"more than twice the limit of {self.max_pixels} pixels {advice}"
                ) from None
        width, height = img.size
        if width * height > self.max_pixels:
            img.close()
            raise ImageTooLarge(
                f"{width}x{height} pixels, over the limit of {self.max_pixels} {advice}"
            )
        return img

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
        new = copy.copy(self)
        new.paths = self.paths[idx]
        new.rows = self.rows[idx]
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
                with self._open(path) as img:
                    img.verify()
                if decode:
                    with self._open(path) as img:
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
    return data.replace(inputs=inputs)
