"""Sample the autoregressive prior: unconditional samples, completions of test images from their
first token rows (half, quarter, first token), timings and the judge's measures."""

from __future__ import annotations

from stages import sampling
from vqgen import judge
from vqgen.config import Params

PARAMS = (
    *("ar.temperature", "ar.top_k", "ar.min_p", "ar.guidance", "ar.guidance_schedule", "ar.mix_guidance"),
    "sample",
    *judge.PARAMS,
)


def run(p: Params) -> None:
    sampling.run(p, "ar")
