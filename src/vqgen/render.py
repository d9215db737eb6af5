"""Figures: image grids, side-by-side comparisons, the reverse-diffusion strip and GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vqgen.files import writing


def grid(images: np.ndarray, cols: int, pad: int = 2, scale: int = 1) -> np.ndarray:
    """uint8 (N, S, S, 3) -> one uint8 image with the N images in rows of `cols`, white padding."""
    n, s = len(images), images.shape[1]
    rows = -(-n // cols)
    out = np.full((rows * (s + pad) + pad, cols * (s + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (s + pad) : pad + r * (s + pad) + s, pad + c * (s + pad) : pad + c * (s + pad) + s] = img
    return out.repeat(scale, 0).repeat(scale, 1) if scale > 1 else out


def _figure(**kwargs):
    """A matplotlib Figure of its own, outside pyplot's global state; matplotlib is imported only by
    the commands that draw figures (it takes a third of a second)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save_figure(fig, path: str | Path, dpi: int) -> None:
    with writing(path) as tmp:
        fig.savefig(tmp, dpi=dpi)


def side_by_side(path: str | Path, rows: list[list[tuple[str, np.ndarray]]], title: str = "", dpi: int = 150) -> None:
    """Save uint8 pictures in rows of panels, each under its name, none shown below 1.5x its pixel size."""
    ncols = max(len(r) for r in rows)
    width = max(3.4, 1.5 * max(img.shape[1] for r in rows for _, img in r) / dpi)  # inches per panel
    height = max(img.shape[0] / img.shape[1] for r in rows for _, img in r)
    fig = _figure(figsize=(width * ncols, width * height * len(rows) + 0.4))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for axs, row in zip(axes, rows):
        for ax, (name, img) in zip(axs, row):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save_figure(fig, path, dpi)


def labelled_rows(
    path: str | Path, rows: list[tuple[str, np.ndarray]], title: str = "", scale: int = 2, dpi: int = 100
) -> None:
    """Save rows of uint8 pictures (N, S, S, 3), each row one line at `scale` times their pixel size with
    its label at its left (requests down, samples across), laid out to the pixel."""
    grids = [grid(images, len(images), scale=scale) for _, images in rows]
    label = int(8.5 * max(len(name) for name, _ in rows)) + 16  # pixels for the labels at 11 points
    gap, top, margin = 4, 36 if title else 6, 6
    width = label + max(g.shape[1] for g in grids) + margin
    height = top + sum(g.shape[0] for g in grids) + gap * (len(grids) - 1) + margin
    fig = _figure(figsize=(width / dpi, height / dpi))
    y = height - top
    for (name, _), g in zip(rows, grids):
        y -= g.shape[0]
        ax = fig.add_axes((label / width, y / height, g.shape[1] / width, g.shape[0] / height))
        ax.imshow(g, interpolation="nearest")
        ax.axis("off")
        fig.text((label - 8) / width, (y + g.shape[0] / 2) / height, name, ha="right", va="center", fontsize=11)
        y -= gap
    if title:
        fig.text(0.5, 1 - 18 / height, title, ha="center", va="center", fontsize=12)
    _save_figure(fig, path, dpi)


def row(path: str | Path, named: list[tuple[str, np.ndarray]], scale: int = 3, dpi: int = 150) -> None:
    """Save uint8 pictures side by side in one row, each under its short caption, at `scale` times
    their pixel size (an inpainting panel: input, masked input, reconstruction, completions)."""
    side = scale * max(img.shape[1] for _, img in named) / dpi  # inches per picture
    fig = _figure(figsize=(side * len(named), side + 0.35))
    axes = fig.subplots(1, len(named), squeeze=False)
    for ax, (name, img) in zip(axes[0], named):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=side / (side + 0.35), wspace=0.05)
    _save_figure(fig, path, dpi)


def panels(path: str | Path, named_images: list[list[tuple[str, np.ndarray]]], cols: int, title: str = "") -> None:
    """Save rows of image grids side by side, each under its name (e.g. generated | VQ reconstruction)."""
    side_by_side(path, [[(name, grid(images, cols)) for name, images in row] for row in named_images], title)


def pairs(path: str | Path, real: np.ndarray, fake: np.ndarray, cols: int = 4) -> None:
    """Real | reconstruction pairs, `cols` pairs per row (Fig 1 of the blog post)."""
    n = min(len(real), len(fake))
    inter = np.stack([real[:n], fake[:n]], 1).reshape(2 * n, *real.shape[1:])
    save_image(path, grid(inter, 2 * cols, scale=2))


def pick(frames: list, count: int) -> list:
    """At most `count` evenly spaced frames, the first and the last included."""
    idx = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    return [frames[i] for i in idx]


def strip_image(trajectory: list[np.ndarray], columns: int = 10) -> np.ndarray:
    """Rows of samples, columns of evenly spaced steps of the reverse diffusion (first and last included)."""
    picks = pick(trajectory, columns)
    rows = [np.stack([frame[i] for frame in picks]) for i in range(len(trajectory[0]))]
    return grid(np.concatenate(rows), len(picks))


def gif(path: str | Path, trajectory: list[np.ndarray], cols: int = 4, ms: int = 120, hold: int = 15) -> None:
    """Animated GIF of the reverse diffusion, each frame a grid of samples shown `ms`; the last frame
    is held `hold` times as long."""
    frames = [Image.fromarray(grid(images, cols, scale=2)) for images in trajectory]
    durations = [ms] * (len(frames) - 1) + [ms * hold]
    with writing(path) as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=durations, loop=0)


def save_image(path: str | Path, image: np.ndarray) -> None:
    with writing(path) as tmp:
        Image.fromarray(image).save(tmp)


def frontier(path: str | Path, curves: dict[str, list[dict]]) -> None:
    """fd against seconds per image, one labelled curve per prior, each point marked with its steps."""
    curve_plot(
        path,
        curves,
        ("seconds_per_image", "seconds per image (log scale)"),
        ("fd", "fd (lower is better)"),
        ("steps", "{:.0f}"),
        "Speed and quality; labels: steps per image",
        log_x=True,
    )


def guidance(path: str | Path, curves: dict[str, list[dict]]) -> None:
    """fd of samples on request against the judge's accuracy on the request, one curve per prior, each
    point marked with its guidance scale."""
    curve_plot(
        path,
        curves,
        ("cond_accuracy", "cond_accuracy (higher is better)"),
        ("cond_fd", "cond_fd (lower is better)"),
        ("guidance", "s={:g}"),
        "Faces on request: quality against accuracy; labels: guidance scale",
    )


def curve_plot(
    path,
    curves: dict[str, list[dict]],
    x: tuple[str, str],
    y: tuple[str, str],
    label: tuple[str, str],
    title: str,
    log_x: bool = False,
) -> None:
    """One labelled curve per entry of `curves` through its points' (x, y) keys, sorted by x, each point
    annotated with its `label` key in the given format; axes named as given."""
    fig = _figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for name, points in curves.items():
        points = sorted(points, key=lambda q: q[x[0]])
        ax.plot([q[x[0]] for q in points], [q[y[0]] for q in points], "o-", label=name)
        for q in points:
            ax.annotate(
                label[1].format(q[label[0]]), (q[x[0]], q[y[0]]), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x[1])
    ax.set_ylabel(y[1])
    ax.set_title(title, fontsize=10)
    if any(curves.values()):
        ax.legend(fontsize=9)
    else:
        ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    _save_figure(fig, path, 150)


def report(
    path: str | Path,
    title: str,
    tables: list[tuple[dict[str, dict[str, float]], tuple[str, ...]]],
    notes: list[str],
    figures: tuple[tuple[str, str], ...],
) -> None:
    """A Markdown report: tables of (rows, columns), one row per image set, blank where a measure does
    not apply; notes; then each figure under its caption (figure paths relative to the report)."""
    lines = [f"# {title}", ""]
    for rows, columns in tables:
        lines += ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, values in rows.items():
            cells = [f"{values[c]:.4g}" if c in values else "" for c in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"- {note}" for note in notes] + [""]
    for caption, file in figures:
        lines += [f"## {caption}", "", f"![{caption}]({file})", ""]
    with writing(path) as tmp:
        tmp.write_text("\n".join(lines))
