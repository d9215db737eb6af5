"""Benchmarks still run: the tiny CPU version of bench/gpu.py, whose FLOP count MFU rests on."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_tiny_on_a_cpu_and_counts_the_transformers_flops_exactly():
    r = subprocess.run(
        [sys.executable, "bench/gpu.py", "--tiny", "--device", "cpu", "--steps", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["tiny"] and set(out["models"]) == {"vqvae", "ar", "diffusion", "evaluator"}
    layers, width, codes, batch, tokens = 2, 32, 64, 4, 16 * 16  # bench/gpu.py's tiny celeba64
    forward = 2 * (12 * layers * width**2 + width * codes) * batch * tokens + 4 * layers * batch * tokens**2 * width
    for name in ("ar", "diffusion"):
        model = out["models"][name]
        assert model["flops_per_step"] == 3 * forward, name  # backward costs twice the forward
        assert model["tokens_per_second"] == model["tokens_per_step"] / model["seconds_per_step"]
        assert model["of_matmul"] == model["flop_per_second"] / out["matmul_flop_per_second"]
