"""Faces on request, measured: the requests the sampling stages show, and how well a prior meets them.

`cond_accuracy` is the judge's balanced accuracy on the requested attributes: for each attribute
of `MEASURED` that both the prior and the judge know, as many samples requesting it present as
absent, every other attribute unspecified; averaged over those the judge sees (`Judge.seen`;
over all of them, uninformative, where it sees none: `cond_seen` counts them). `cond_fd` is the fd
of samples each requesting the whole attribute vector of one real test image, against those images.
"""

from __future__ import annotations

import numpy as np

from vqgen.evaluate import balanced_accuracy, frechet_distance
from vqgen.judge import Judge
from vqgen.pipeline import Pipeline

FIGURE = (  # the rows of a prior's figure of requests
    ("no request", {}),
    ("Male", {"Male": 1}),
    ("not Male", {"Male": 0}),
    ("Smiling", {"Smiling": 1}),
    ("Eyeglasses", {"Eyeglasses": 1}),
    ("Blond_Hair", {"Blond_Hair": 1}),
    ("Bald", {"Bald": 1}),
    ("Wearing_Hat", {"Wearing_Hat": 1}),
    ("Eyeglasses + Smiling", {"Eyeglasses": 1, "Smiling": 1}),
    ("Male with a beard", {"Male": 1, "No_Beard": 0}),
)
MEASURED = ("Male", "Smiling", "Eyeglasses", "Blond_Hair", "Bald", "Wearing_Hat", "No_Beard", "Mustache", "Gray_Hair")
SWEEP = (1.0, 1.5, 2.0, 3.0, 5.0)  # guidance scales of the fd-against-cond_accuracy curve
PER_CLASS = 16  # samples requesting each measured attribute present, and as many absent


def per_class(num_samples: int) -> int:
    """How many samples request each measured attribute present (and absent) for `cond_accuracy`, for
    a judge of `num_samples` images: `PER_CLASS`, fewer for a small judge, never under 2."""
    return min(PER_CLASS, max(2, num_samples // 8))


def figure_rows(pipe: Pipeline, prior: str, per_row: int, seed: int, **settings) -> list[tuple[str, np.ndarray]]:
    """(label, images) of each request of `FIGURE` whose attributes the prior knows."""
    known = set(pipe.prior(prior).attributes)
    rows = []
    for i, (label, request) in enumerate(FIGURE):
        if set(request) <= known:
            rows.append((label, pipe.generate(per_row, prior, seed=seed + i, attributes=request, **settings).images))
    return rows


def cond_accuracy(pipe: Pipeline, prior: str, judge: Judge, per_class: int, seed: int, **settings) -> dict[str, float]:
    """`cond_accuracy` (the mean over attributes) and `cond_accuracy_<attribute>`, from `per_class`
    samples requesting each measured attribute present and as many requesting it absent."""
    names = pipe.prior(prior).attributes
    out, seen = {}, []
    for i, name in enumerate(a for a in MEASURED if a in names and a in judge.attributes):
        column = judge.attributes.index(name)
        if judge.seen[column]:
            seen.append(name)
        calls, wanted = [], []
        for value in (1, 0):
            drawn = pipe.generate(per_class, prior, seed=seed + 2 * i + value, attributes={name: value}, **settings)
            calls.append(judge.calls(drawn.images)[:, column])
            wanted.append(np.full(per_class, value))
        called, asked = np.concatenate(calls)[:, None], np.concatenate(wanted)[:, None]
        out[name] = float(balanced_accuracy(called, asked)[0])
    if not out:
        return {}
    mean = np.mean([out[n] for n in seen or out])
    return {"cond_accuracy": float(mean), "cond_seen": len(seen), **{f"cond_accuracy_{n}": a for n, a in out.items()}}


def cond_fd(pipe: Pipeline, prior: str, judge: Judge, seed: int, **settings) -> float:
    """The fd of samples requesting the attribute vectors of the judge's real test images, against them."""
    names = pipe.prior(prior).attributes
    if names != judge.attributes:
        raise ValueError("the prior and the judge know different attributes; train both on the same data.")
    drawn = pipe.generate(len(judge.real_attributes), prior, seed=seed, attributes=judge.real_attributes, **settings)
    return frechet_distance(judge.real["features"], judge.view(drawn.images)["features"])
