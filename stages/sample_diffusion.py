"""Sample the discrete-diffusion prior (the process it was trained with): samples from the start of
the process, completions from the first token rows, inpainting, reverse-diffusion strips at a low
and a high temperature and the GIF, the speed-quality frontier over the number of steps, timings
and the judge's measures."""

from __future__ import annotations

from stages import sampling
from vqgen import judge
from vqgen.config import Params

PARAMS = (
    "diffusion.temperature",
    "diffusion.min_p",
    "diffusion.steps",
    "diffusion.tolerance",
    "diffusion.order",
    "diffusion.confidence_noise",
    "diffusion.guidance",
    "diffusion.guidance_schedule",
    "diffusion.mix_guidance",
    "sample",
    *judge.PARAMS,
)


def run(p: Params) -> None:
    sampling.run(p, "diffusion")
