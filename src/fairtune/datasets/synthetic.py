"""A SYNTHETIC skin-lesion image benchmark with a skin-tone shortcut.

:func:`make_skin_tone_images` draws lesion-like blobs on skin backgrounds of
six Fitzpatrick-like tones. These are synthetic pictures, not dermoscopy: they
exist to test the image pipeline and to give a classifier a known, measurable
bias, in the layout of ISIC / Fitzpatrick17k style sets (a CSV per split with
an image path column), so :func:`fairtune.image_csv.read_image_csv` reads them.

The visual cue: a malignant blob has a more irregular border, a sharper edge,
is darker and more variegated (blue-grey patches and dark blotches) than a
benign one. Each cue is drawn from class distributions that overlap, and pixel
noise and skin texture are added, so the task is learnable but not trivial.
On darker skin the lesion contrasts less with the background.

The shortcut: in the training split, a fraction ``bias`` of the malignant
lesions sit on light skin (Fitzpatrick 1-3) and the same fraction of the benign
ones on dark skin (4-6), so skin tone predicts the label. The external and test
splits are balanced over (skin tone, label). A model trained on the training
split therefore learns tone as a shortcut and is measurably biased on the test
split (lower true positive rate on dark skin).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fairtune.errors import FairtuneError
from fairtune.io import atomic_dir
from fairtune.splits import PARTS

__all__ = ["SKIN_TONES", "SPLITS", "SyntheticSpec", "make_skin_tone_images"]

SPLITS = PARTS
README = "README.txt"
_TITLE = "SYNTHETIC skin-tone lesion benchmark"

# Fitzpatrick-like skin colours (sRGB in [0, 1]), types 1 (lightest) to 6.
SKIN_TONES = np.array(
    [
        [0.96, 0.84, 0.76],
        [0.90, 0.75, 0.64],
        [0.80, 0.63, 0.50],
        [0.66, 0.48, 0.35],
        [0.48, 0.33, 0.23],
        [0.30, 0.20, 0.14],
    ]
)
_BROWN = np.array([1.0, 0.80, 0.66])
_BLUE_GREY = np.array([0.30, 0.34, 0.44])
_HARMONICS = np.arange(2, 7)
_CHUNK = 256


@dataclass(frozen=True)
class SyntheticSpec:
    """The sizes and the shortcut of the SYNTHETIC skin-tone set.

    ``n_train``, ``n_external`` and ``n_test`` are the rows per split (at least 4
    each), ``image_size`` the side of the square images in pixels (8..512).
    ``bias`` in [0, 1] is the share of malignant training lesions on light skin
    (and of benign ones on dark skin); 0.5 means no shortcut. ``malignant_rate``
    in (0, 1) is the share of malignant rows in the training split; the external
    and test splits are balanced over (skin tone, label).
    """

    n_train: int = 2000
    n_external: int = 600
    n_test: int = 1000
    image_size: int = 32
    bias: float = 0.9
    malignant_rate: float = 0.5

    def __post_init__(self) -> None:
        for name, count in self.sizes().items():
            if int(count) < 4:
                raise FairtuneError(f"n_{name} must be at least 4, not {count}")
        if not 8 <= int(self.image_size) <= 512:
            raise FairtuneError(f"image_size must lie in 8..512 pixels, not {self.image_size}")
        if not 0.0 <= self.bias <= 1.0:
            raise FairtuneError(f"bias must lie in [0, 1], not {self.bias}")
        if not 0.0 < self.malignant_rate < 1.0:
            raise FairtuneError(f"malignant_rate must lie in (0, 1), not {self.malignant_rate}")

    def sizes(self) -> dict[str, int]:
        """The rows of each split, by split name, as given."""
        return {"train": self.n_train, "external": self.n_external, "test": self.n_test}


def _interp_matrix(size: int, knots: int) -> np.ndarray:
    """(size, knots) bilinear interpolation weights: a knots-point grid up-sampled to size."""
    pos = np.linspace(0.0, knots - 1.0, size)
    low = np.minimum(np.floor(pos).astype(int), knots - 2)
    frac = pos - low
    w = np.zeros((size, knots))
    w[np.arange(size), low] = 1.0 - frac
    w[np.arange(size), low + 1] = frac
    return w


def _smooth_field(rng: np.random.Generator, n: int, size: int, knots: int) -> np.ndarray:
    """(n, size, size) smooth random fields, standard normal at the knots."""
    w = _interp_matrix(size, knots)
    grid = rng.standard_normal((n, knots, knots))
    return np.einsum("sg,ngh,th->nst", w, grid, w)


def _uniform(rng: np.random.Generator, malignant: np.ndarray, benign: tuple, mal: tuple):
    """One draw per image from U(benign) or U(mal) by class (the ranges overlap)."""
    lo = np.where(malignant, mal[0], benign[0])
    hi = np.where(malignant, mal[1], benign[1])
    return lo + (hi - lo) * rng.random(len(malignant))


def _draw(
    rng: np.random.Generator, fitzpatrick: np.ndarray, malignant: np.ndarray, size: int
) -> np.ndarray:
    """(n, size, size, 3) uint8 images of lesions on skin."""
    n = len(fitzpatrick)
    col = lambda v: v[:, None, None]  # noqa: E731 - per-image value against the pixel grid
    mal = malignant.astype(bool)

    # Skin: tone, per-image lighting, smooth texture, colour per channel.
    skin = SKIN_TONES[fitzpatrick - 1] * (1.0 + 0.06 * rng.standard_normal((n, 1)))
    texture = 0.035 * _smooth_field(rng, n, size, 8)
    background = skin[:, None, None, :] * (1.0 + texture[..., None])

    # Lesion shape: a rotated ellipse whose radius varies with the angle.
    axis = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    cx, cy = rng.uniform(-0.15, 0.15, n), rng.uniform(-0.15, 0.15, n)
    angle = rng.uniform(0.0, np.pi, n)
    aspect = rng.uniform(0.65, 1.0, n)
    radius = rng.uniform(0.32, 0.52, n)
    dx, dy = xx[None] - col(cx), yy[None] - col(cy)
    u = dx * col(np.cos(angle)) + dy * col(np.sin(angle))
    v = (-dx * col(np.sin(angle)) + dy * col(np.cos(angle))) / col(aspect)
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    irregular = _uniform(rng, mal, (0.0, 0.12), (0.06, 0.22))
    amps = irregular[:, None] * rng.uniform(0.3, 1.0, (n, len(_HARMONICS)))
    amps /= np.sqrt(_HARMONICS - 1.0)
    phases = rng.uniform(0.0, 2 * np.pi, (n, len(_HARMONICS)))
    wobble = np.einsum(
        "nk,nkst->nst",
        amps,
        np.cos(_HARMONICS[None, :, None, None] * theta[:, None] + phases[:, :, None, None]),
    )
    edge = col(radius) * (1.0 + wobble)
    softness = _uniform(rng, mal, (0.03, 0.08), (0.015, 0.055))
    mask = 1.0 / (1.0 + np.exp(-(edge - rho) / col(softness)))

    # Lesion colour: darker than the skin, brown, with variegation.
    darkness = _uniform(rng, mal, (0.5, 0.85), (0.35, 0.72))
    variegation = _uniform(rng, mal, (0.0, 0.40), (0.22, 0.90))
    base = skin * darkness[:, None] * _BROWN
    patches = 1.0 / (1.0 + np.exp(-2.0 * _smooth_field(rng, n, size, 4)))
    blotches = 1.0 / (1.0 + np.exp(-2.0 * _smooth_field(rng, n, size, 5)))
    mix = (col(variegation) * patches)[..., None]
    brightness = skin.mean(axis=1)[:, None, None, None]
    lesion = base[:, None, None, :] * (1.0 - mix) + mix * _BLUE_GREY * (0.5 + 0.5 * brightness)
    lesion = lesion * (1.0 - 0.45 * col(variegation) * blotches)[..., None]

    image = background * (1.0 - mask[..., None]) + lesion * mask[..., None]
    image = image + 0.025 * rng.standard_normal(image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _train_design(rng: np.random.Generator, n: int, bias: float, malignant_rate: float):
    """Labels and tone groups with the shortcut: exact counts, shuffled."""
    n_mal = round(n * malignant_rate)
    n_ben = n - n_mal
    mal_light = round(bias * n_mal)
    ben_dark = round(bias * n_ben)
    label = np.repeat([1, 1, 0, 0], [mal_light, n_mal - mal_light, n_ben - ben_dark, ben_dark])
    dark = np.repeat([0, 1, 0, 1], [mal_light, n_mal - mal_light, n_ben - ben_dark, ben_dark])
    order = rng.permutation(n)
    return label[order], dark[order]


def _balanced_design(rng: np.random.Generator, n: int):
    """Labels and tone groups with every (tone, label) cell the same size (within 1)."""
    cell = np.arange(n) % 4
    order = rng.permutation(n)
    return (cell[order] // 2), (cell[order] % 2)


def _split_frame(
    rng: np.random.Generator, split: str, spec: SyntheticSpec, images: Path
) -> pd.DataFrame:
    """Draw the rows of ``split``, write their PNGs under ``images``; return its table."""
    n, image_size = int(spec.sizes()[split]), int(spec.image_size)
    if split == "train":
        label, dark = _train_design(rng, n, spec.bias, spec.malignant_rate)
    else:
        label, dark = _balanced_design(rng, n)
    fitzpatrick = 1 + 3 * dark + rng.integers(0, 3, n)
    sex = np.where(rng.random(n) < 0.5, "female", "male")
    names = [f"images/synthetic_{split}_{i:05d}.png" for i in range(n)]
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        pixels = _draw(rng, fitzpatrick[start:stop], label[start:stop], image_size)
        for offset, array in enumerate(pixels):
            buffer = io.BytesIO()
            Image.fromarray(array, mode="RGB").save(buffer, format="PNG")
            (images.parent / names[start + offset]).write_bytes(buffer.getvalue())
    return pd.DataFrame(
        {
            "image": names,
            "malignant": label.astype(np.int64),
            "fitzpatrick": fitzpatrick.astype(np.int64),
            "skin_tone": np.where(dark == 1, "dark", "light"),
            "sex": sex,
        }
    )


def _readme(frames: dict[str, pd.DataFrame], params: dict[str, object]) -> str:
    lines = [
        f"{_TITLE} (fairtune.datasets.synthetic)",
        "",
        "These images are SYNTHETIC: drawn lesion-like blobs on flat skin-coloured",
        "backgrounds, made by fairtune.datasets.synthetic.make_skin_tone_images.",
        "They are not dermoscopy and carry no medical meaning. They exist to test an",
        "image pipeline and to give a classifier a known skin-tone shortcut.",
        "",
        "Parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()),
        "",
        "Files: images/*.png and one CSV per split (synthetic_train.csv,",
        "synthetic_external.csv, synthetic_test.csv) with the columns",
        "  image        path of the PNG, relative to this folder",
        "  malignant    the label: 1 malignant, 0 benign",
        "  fitzpatrick  skin type 1 (lightest) to 6 (darkest)",
        "  skin_tone    light (fitzpatrick 1-3) or dark (4-6)",
        "  sex          female or male, independent of everything else",
        "",
        "Malignant blobs have a more irregular border, a sharper edge, are darker and",
        "more variegated than benign ones; the class distributions of each cue",
        "overlap. In the training split a fraction `bias` of the malignant lesions lie",
        "on light skin and the same fraction of the benign ones on dark skin; the",
        "external and test splits are balanced over (skin_tone, malignant).",
        "",
        "Rows per (skin_tone, malignant) cell:",
    ]
    for split, frame in frames.items():
        counts = frame.groupby(["skin_tone", "malignant"]).size()
        cells = ", ".join(f"{tone}/{label}: {c}" for (tone, label), c in counts.items())
        lines.append(f"  {split:<9} {len(frame):>6} rows  ({cells})")
    return "\n".join(lines) + "\n"


def make_skin_tone_images(
    out_dir: str | Path, spec: SyntheticSpec = SyntheticSpec(), seed: int = 0
) -> Path:
    """Write the SYNTHETIC skin-tone lesion benchmark described by ``spec`` into
    ``out_dir``; return ``out_dir``.

    Writes ``images/synthetic_<split>_<i>.png``, the CSVs ``synthetic_train.csv``,
    ``synthetic_external.csv`` and ``synthetic_test.csv`` (columns ``image``,
    ``malignant``, ``fitzpatrick``, ``skin_tone``, ``sex``) and a ``README.txt``
    saying the data is synthetic and how it was made.

    The output is a function of ``spec`` and ``seed`` alone: the same seed gives
    byte-identical PNGs and CSVs. Each split draws from its own random stream, so
    changing one split's size leaves the other splits unchanged. The folder appears
    whole or not at all; an existing folder is replaced only if fairtune wrote it
    (or it is empty).
    """
    out = Path(out_dir)
    streams = np.random.SeedSequence(int(seed)).spawn(len(SPLITS))
    params = {**asdict(spec), "seed": seed}
    with atomic_dir(out) as tmp:
        images = tmp / "images"
        images.mkdir()
        frames = {}
        for split, stream in zip(SPLITS, streams, strict=True):
            rng = np.random.default_rng(stream)
            frame = _split_frame(rng, split, spec, images)
            frame.to_csv(tmp / f"synthetic_{split}.csv", index=False, lineterminator="\n")
            frames[split] = frame
        (tmp / README).write_text(_readme(frames, params))
    return out
