"""Benchmark: the autoregressive sampler against the field's generic one, transformers' GPT-2
`generate` with its key/value cache, same dimensions and random weights, in the same run, on 8x8
and 16x16 grids, at batch 1 and a large batch, and at the presets' size; and against the bound the
arithmetic sets (2 x parameters x tokens at the matmul rate measured in the same run, attention
ignored) and against the one memory sets (every weight read once per step, at the rate a large
tensor is read in the same run): at batch 1 the second is the higher. Also checks that the
sampler with its cache draws the same tokens as recomputing every earlier position (nanoGPT's
`generate`), from the same random stream (`same_tokens`, must be 1).
With --compiled, also one batch-1 step of the default model eager against the same step compiled
by torch.compile (`batch1_step`): how much of the eager step is per-operation overhead. With
--bf16, also our sampler under bf16 autocast (`vqgen_bf16_ms_per_image`; the samplers draw in
float32 today): at batch 1 the weights are read at every step.

Prints JSON. Needs the bench extra: pip install -e '.[bench]'.
Usage: python bench/ar_sampling.py [--repeats 3] [--device cuda] [--quick] [--compiled] [--bf16]
"""

import argparse
import json
import time

import torch
from timing import best_seconds, matmul_rate  # bench/timing.py, beside this file

from vqgen.priors import PRIORS

CASES = [  # grid, (layers, heads, width), batch
    ((8, 8), (4, 4, 128), 1),
    ((8, 8), (4, 4, 128), 128),
    ((16, 16), (4, 4, 128), 1),
    ((16, 16), (4, 4, 128), 64),
    ((16, 16), (12, 8, 512), 1),  # the presets' prior
]


def read_rate(device: str, n: int = 1 << 26) -> float:
    """Bytes/s at which `device` reads a float32 tensor of n elements (256 MB: beyond every cache)."""
    x = torch.ones(n, device=device)
    return 4 * n / best_seconds(lambda: x.sum(), 5, device)


def gpt2(layers: int, heads: int, width: int, vocab: int, positions: int, device: str):
    """transformers' GPT-2 of the same dimensions as our prior (random weights)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(  # no end token: every image has all its tokens
        vocab_size=vocab,
        n_positions=positions,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        bos_token_id=vocab - 1,
        eos_token_id=None,
    )
    return GPT2LMHeadModel(cfg).to(device).eval()


def recompute(model, grid, n, generator):
    """nanoGPT's sampling: the whole prefix again at every step, with the sampler's own draw (temperature 1)."""
    from vqgen.priors.base import categorical

    seq = torch.full((n, 1), model.cfg.out_size, dtype=torch.long)
    for _ in range(grid[0] * grid[1]):
        logits, _ = model(seq)
        seq = torch.cat([seq, categorical(torch.softmax(logits[:, -1], -1), generator)[:, None]], 1)
    return seq[:, 1:].view(n, *grid)


def step_overhead(device: str, repeats: int) -> dict:
    """One batch-1 decoding step of the default model (4x128, 8x8 grid) as the sampler runs it (its
    `decoder`), against the same step at a tensor position (the form a CUDA graph replays) compiled by
    torch.compile, which fuses its operations: how much of the eager step is per-operation overhead."""
    prior = PRIORS["ar"].create(256, (8, 8), n_layer=4, n_head=4, n_embd=128)
    model = prior.model.to(device).eval()
    ids = torch.randint(0, 256, (1, 64), device=device)
    positions = torch.arange(64, device=device)
    compiled = torch.compile(model.decode, dynamic=False)

    def steps(step):
        caches = model.new_caches()
        with torch.no_grad():
            model(ids[:, :1], caches=caches)
            decoder = model.decoder(caches)
            for pos in range(1, 64):
                step(decoder, ids[:, pos], caches, pos)

    def eager(decoder, idx, caches, pos):
        return decoder(idx, pos)

    def fused(decoder, idx, caches, pos):
        return compiled(idx, caches, positions[pos])

    started = time.perf_counter()
    steps(fused)
    compile_seconds = time.perf_counter() - started
    return {
        "eager_ms": 1e3 * best_seconds(lambda: steps(eager), repeats, device) / 63,
        "compiled_ms": 1e3 * best_seconds(lambda: steps(fused), repeats, device) / 63,
        "compile_seconds": compile_seconds,
    }


@torch.no_grad()
def main(repeats: int, device: str, quick: bool, compiled: bool, bf16: bool = False) -> None:
    torch.manual_seed(0)
    rate, read = matmul_rate(device), read_rate(device)
    rows = []
    for grid, (layers, heads, width), batch in CASES[:2] if quick else CASES:
        tokens = grid[0] * grid[1]
        prior = PRIORS["ar"].create(256, grid, n_layer=layers, n_head=heads, n_embd=width)
        prior.model.to(device).eval()
        peer = gpt2(layers, heads, width, 257, tokens + 1, device)
        start = torch.full((batch, 1), 256, dtype=torch.long, device=device)

        def ours():
            prior.sample(batch, temperature=1.0)  # as `generate` draws by default

        def generate():
            peer.generate(
                start,
                attention_mask=torch.ones_like(start),
                do_sample=True,
                top_k=0,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                use_cache=True,
                pad_token_id=256,
            )

        ours(), generate()  # warm-up
        n = max(1, repeats if batch > 1 or width < 512 else 1)
        mine, theirs = best_seconds(ours, n, device), best_seconds(generate, n, device)
        params = sum(p.numel() for p in prior.model.parameters() if p is not prior.model.pos_emb.weight)
        bound = 2 * params * tokens * batch / rate
        memory_bound = 4 * params * tokens / read  # every step reads every weight once, whatever the batch
        extra = {}
        if bf16:

            def low():
                with torch.autocast(device.split(":")[0], torch.bfloat16):
                    ours()

            low()
            extra = {"vqgen_bf16_ms_per_image": 1e3 * best_seconds(low, n, device) / batch}
        rows.append(
            {
                "grid": list(grid),
                "model": f"{layers}x{width}",
                "batch": batch,
                "vqgen_ms_per_image": 1e3 * mine / batch,
                "generate_ms_per_image": 1e3 * theirs / batch,
                "speedup_over_generate": theirs / mine,
                "share_of_flop_bound": bound / mine,
                "share_of_memory_bound": memory_bound / mine,
                "vqgen_ms_per_step": 1e3 * mine / tokens,
                **extra,
            }
        )
    model = PRIORS["ar"].create(256, (8, 8), n_layer=4, n_head=4, n_embd=128)
    model.model.eval()
    same = (model.sample(16, generator=torch.Generator().manual_seed(0), temperature=1.0).tokens) == recompute(
        model.model, (8, 8), 16, torch.Generator().manual_seed(0)
    )
    report = {
        "device": device,
        "threads": torch.get_num_threads(),
        "matmul_gflops": rate / 1e9,
        "read_gbytes_per_s": read / 1e9,
        "same_tokens": same.float().mean().item(),
        "cases": rows,
    }
    if compiled:
        report["batch1_step"] = step_overhead(device, repeats)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="the 8x8 cases only")
    parser.add_argument("--compiled", action="store_true", help="also the batch-1 step compiled (batch1_step)")
    parser.add_argument("--bf16", action="store_true", help="also our sampler under bf16 autocast")
    args = parser.parse_args()
    main(args.repeats, args.device, args.quick, args.compiled, args.bf16)
