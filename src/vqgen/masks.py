"""Masks of completion and inpainting: `known` (N, h, w) is True where a token is given and False
where a prior draws it. Pixel masks (True where the image is to be regenerated) become token masks:
a token is drawn again if its patch holds one masked pixel or more.

`vqgen inpaint --mask` names a mask as `bottom`, `top`, `left`, `right` (that half regenerated),
`centre` (the middle half of each side), `box:X0,Y0,X1,Y1` (pixels of the model's image, the ends
excluded) or the path of an image whose white pixels are regenerated.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from vqgen.config import ConfigError
from vqgen.priors import prefix_mask

HALVES = ("bottom", "top", "left", "right", "centre")
SPECS = "bottom, top, left, right, centre, box:X0,Y0,X1,Y1 or the path of a mask image (white: regenerate)"


def from_rows(grid: tuple[int, int]) -> list[tuple[str, int, str]]:
    """(name, tokens given, caption) of the completions from the first half, quarter of the rows and the first token."""
    h, w = grid
    half, quarter = max(1, h // 2), max(1, h // 4)  # at least one row on small grids
    return [
        ("half", half * w, f"first {half} of {h} token rows"),
        ("quarter", quarter * w, f"first {quarter} of {h} token rows"),
        ("first_token", 1, "first token only"),
    ]


def figure_masks(grid: tuple[int, int], n: int, seed: int) -> dict[str, torch.Tensor]:
    """The inpainting figure's (n, h, w) masks, True where a token is given: what an autoregressive
    prior cannot complete."""
    h, w = grid
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    box = (rows >= h // 4) & (rows < h - h // 4) & (cols >= w // 4) & (cols < w - w // 4)
    scores = torch.rand(n, h * w, generator=torch.Generator().manual_seed(seed))
    random = (scores.argsort(1).argsort(1) < round(0.25 * h * w)).view(n, h, w)
    masks = {
        "bottom half masked": rows < h // 2,
        "left half masked": cols >= w // 2,
        "centre box masked": ~box,
        "random 75% masked": random,
    }
    return {name: m.expand(n, h, w) for name, m in masks.items()}


def pixels(spec: str, size: int, photo_size: tuple[int, int] | None = None, crop: float = 1.0) -> np.ndarray:
    """(S, S) True on the pixels of the model's S x S image that `spec` regenerates. A mask image is
    taken at the model's size, or at the photo's `photo_size` (width, height) and then cropped (the
    centre square keeping `crop` of the shorter side) and resized as the photo is."""
    rows, cols = np.mgrid[:size, :size]
    half, quarter = size // 2, size // 4
    named = {
        "bottom": rows >= half,
        "top": rows < half,
        "left": cols < half,
        "right": cols >= half,
        "centre": (rows >= quarter) & (rows < size - quarter) & (cols >= quarter) & (cols < size - quarter),
    }
    if spec in named:
        return named[spec]
    if spec.startswith("box:"):
        return _box(spec, size, rows, cols)
    return _image(Path(spec), size, photo_size, crop)


def _box(spec: str, size: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    found = re.fullmatch(r"box:(\d+),(\d+),(\d+),(\d+)", spec.replace(" ", ""))
    if not found:
        raise ConfigError(
            f"--mask {spec} is not box:X0,Y0,X1,Y1 with four whole numbers of pixels, such as box:16,16,48,48."
        )
    x0, y0, x1, y1 = map(int, found.groups())
    if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
        raise ConfigError(
            f"--mask {spec} does not lie inside the {size}x{size} image; use 0 <= X0 < X1 <= {size} "
            f"and 0 <= Y0 < Y1 <= {size}."
        )
    return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)


def _image(path: Path, size: int, photo_size: tuple[int, int] | None, crop: float) -> np.ndarray:
    from PIL import Image

    from vqgen.data.decode import UnreadableImage, open_rgb
    from vqgen.data.folder import square

    if not path.is_file():
        raise ConfigError(f"--mask {path} is neither a mask name nor a file; use {SPECS}.")
    try:
        img = open_rgb(path).convert("L")
    except UnreadableImage as e:
        raise ConfigError(f"--mask {path} cannot be read as an image ({e}); give a PNG of white and black.") from None
    if img.size != (size, size):
        if img.size != photo_size:
            photo = f"the photo's size ({photo_size[0]}x{photo_size[1]}) or " if photo_size else ""
            raise ConfigError(
                f"--mask {path} is {img.size[0]}x{img.size[1]} pixels; use a mask of {photo}the model's "
                f"image size ({size}x{size})."
            )
        img = square(img, size, Image.Resampling.NEAREST, crop)
    return np.asarray(img) > 127


def known_tokens(hidden: np.ndarray | torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Pixel masks (S, S) or (N, S, S), True where regenerated -> token masks (N, h, w), True where a
    token is given: on the patches without one regenerated pixel."""
    hidden = torch.as_tensor(np.asarray(hidden)).bool()
    hidden = hidden[None] if hidden.dim() == 2 else hidden
    n, s, _ = hidden.shape
    h, w = grid
    patches = hidden.view(n, h, s // h, w, s // w)
    return ~patches.any(4).any(2)


def is_prefix(known: torch.Tensor) -> bool:
    """Whether every row of masks (N, h, w) gives the first tokens in raster order and none after
    them: what an autoregressive prior completes exactly."""
    flat = known.flatten(1).long()
    return bool((flat[:, 1:] <= flat[:, :-1]).all())


__all__ = ["HALVES", "SPECS", "figure_masks", "from_rows", "is_prefix", "known_tokens", "pixels", "prefix_mask"]
