#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go, each result a file in DIR: the tests of the captured
# sampling steps (their output in DIR/log); the AR sampler against transformers' `generate`
# (bench/ar_sampling.py); the masked prior's latency against the AR prior's, at the presets' size
# too (bench/sampling.py --presets); the tokenizer's step with the discriminator's two passes made
# one (bench/discriminator_pass.py); and each model's training speed and MFU at the celeba64 preset
# (bench/gpu.py, one model a run).
# It runs the checkout as it is (PYTHONPATH=src, nothing installed): a Python with torch,
# transformers, h5py, safetensors, typer, pyyaml and pytest will do. Each check has its own time
# limit (under ten minutes in all); one that fails does not stop the next, and the exit status is 1
# if any failed. Every check's stderr goes to DIR/log.
# Usage: bench/gpu_checks.sh DIR [PYTHON]
set -u
out=${1:?usage: bench/gpu_checks.sh DIR [PYTHON]}
py=${2:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=0

check() { # check SECONDS FILE COMMAND...: COMMAND's stdout to DIR/FILE (to DIR/log if FILE is log)
    local limit=$1 file=$2
    shift 2
    echo "== $file: $*" >>"$out/log"
    timeout "$limit" "$@" >>"$out/$file" 2>>"$out/log" || {
        echo "== $file failed (exit $?)" >>"$out/log"
        failed=1
    }
}

rm -f "$out"/*.json "$out/log"
check 45 log "$py" -m pytest -q -o addopts= -p no:cacheprovider tests/test_priors.py -k "captured or replayed"
check 105 ar_sampling.json "$py" bench/ar_sampling.py --device cuda
check 75 sampling.json "$py" bench/sampling.py --device cuda --presets --repeats 3
check 45 discriminator_pass.json "$py" bench/discriminator_pass.py --device cuda
# compiled as the presets train them: the first steps wait for torch.compile
for model_limit in vqvae:90 ar:75 diffusion:75 evaluator:45; do
    check "${model_limit#*:}" "gpu_${model_limit%:*}.json" "$py" bench/gpu.py --models "${model_limit%:*}" --steps 200
done
exit $failed
