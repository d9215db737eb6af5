"""Where a run keeps its files, relative to its directory (the project root): what each stage
writes and the next one reads, in one place for the stages, the user commands and `Pipeline`."""

from __future__ import annotations

from pathlib import Path

RAW = Path("data/raw")
IMAGES = Path("data/images.h5")
TOKENS = Path("data/tokens")
VQVAE = Path("models/vqvae.safetensors")
AR = Path("models/ar.safetensors")
DIFFUSION = Path("models/diffusion.safetensors")
EVALUATOR = Path("models/evaluator.safetensors")
MODELS = {"ar": AR, "diffusion": DIFFUSION}  # each prior's checkpoint, by its params.yaml section
TRAINED_BY = {VQVAE: "train_vqvae", AR: "train_ar", DIFFUSION: "train_diffusion", EVALUATOR: "train_evaluator"}
FIGURES = Path("figures")
SAMPLES = Path("samples")
METRICS = Path("metrics")
RESUME = Path("scratch/resume")  # a training stage's saved state, outside its DVC outputs (DVC deletes those)
OUTPUTS = (Path("data"), Path("models"), SAMPLES, FIGURES, METRICS, Path("dvclive"))  # the pipeline's own
