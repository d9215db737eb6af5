"""Figures: image grids, side-by-side comparisons, the reverse-diffusion strip and GIF."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def grid(images: np.ndarray, cols: int, pad: int = 2, scale: int = 1) -> np.ndarray:
    """uint8 (N, S, S, 3) -> one uint8 image with the N images in rows of `cols`, white padding."""
    n, s = len(images), images.shape[1]
    rows = -(-n // cols)
    out = np.full((rows * (s + pad) + pad, cols * (s + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (s + pad):pad + r * (s + pad) + s, pad + c * (s + pad):pad + c * (s + pad) + s] = img
    return out.repeat(scale, 0).repeat(scale, 1) if scale > 1 else out


def _atomic(path: str | Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, path.with_name(f".{path.stem}.tmp{path.suffix}")


def panels(path: str | Path, named_images: list[tuple[str, np.ndarray]], cols: int, title: str = "") -> None:
    """Save grids side by side, each under its name (e.g. generated | VQ reconstruction)."""
    path, tmp = _atomic(path)
    fig, axes = plt.subplots(1, len(named_images), figsize=(3.2 * len(named_images), 3.6), squeeze=False)
    for ax, (name, images) in zip(axes[0], named_images):
        ax.imshow(grid(images, cols))
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    os.replace(tmp, path)


def pairs(path: str | Path, real: np.ndarray, fake: np.ndarray, cols: int = 4) -> None:
    """Real | reconstruction pairs, `cols` pairs per row (Fig 1 of the blog post)."""
    n = min(len(real), len(fake))
    inter = np.stack([real[:n], fake[:n]], 1).reshape(2 * n, *real.shape[1:])
    save_image(path, grid(inter, 2 * cols, scale=2))


def strip(path: str | Path, trajectory: list[np.ndarray], columns: int = 10) -> None:
    """Rows of samples, columns of evenly spaced steps of the reverse diffusion (first and last included)."""
    picks = np.unique(np.linspace(0, len(trajectory) - 1, min(columns, len(trajectory))).round().astype(int))
    rows = [np.stack([trajectory[t][i] for t in picks]) for i in range(len(trajectory[0]))]
    save_image(path, grid(np.concatenate(rows), len(picks), scale=2))


def gif(path: str | Path, trajectory: list[np.ndarray], cols: int = 4, ms: int = 120, hold: int = 15) -> None:
    """Animated GIF of the reverse diffusion, each frame a grid of samples; the last frame is held."""
    path, tmp = _atomic(path)
    frames = [Image.fromarray(grid(images, cols, scale=2)) for images in trajectory]
    frames += [frames[-1]] * hold
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=ms, loop=0)
    os.replace(tmp, path)


def save_image(path: str | Path, image: np.ndarray) -> None:
    path, tmp = _atomic(path)
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)


def report(path: str | Path, title: str, rows: dict[str, dict[str, float]], columns: tuple[str, ...],
           notes: list[str], figures: tuple[tuple[str, str], ...]) -> None:
    """A Markdown report: a table (one row per image set, blank where a measure does not apply),
    notes, then each figure under its caption (figure paths relative to the report)."""
    path, tmp = _atomic(path)
    lines = [f"# {title}", "", "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in rows.items():
        cells = [f"{values[c]:.4g}" if c in values else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {note}" for note in notes] + [""]
    for caption, file in figures:
        lines += [f"## {caption}", "", f"![{caption}]({file})", ""]
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
