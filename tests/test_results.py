"""The README's tables of the default run quote its committed metrics: each number as printed is
the metric rounded to the digits printed."""

import json

import pytest
from conftest import ROOT

PRIORS = {"autoregressive prior": ("ar", "sample_ar"), "masked diffusion prior": ("diffusion", "sample_diffusion")}
RESULTS_COLUMNS = [  # the keys of a prior's row of the results table, in order; None: not a metric
    "fd",
    "precision",
    "recall",
    "attr_tv",
    "rates_off",
    "null_fd",
    "cond_accuracy",
    "cond_fd",
    "mean_steps",
    "seconds_per_image",
    "seconds_per_image_batch1",
]
BASELINE_ROWS = {  # row label -> keys of metrics/baselines.json for fd, precision, recall, attr_tv, rates_off
    "real val images": ("floor_fd", "floor_precision", "floor_recall", "floor_attr_tv", None),
    "VQ-VAE reconstructions": ("rfd", "recon_precision", "recon_recall", "recon_attr_tv", "recon_rates_off"),
}


def metrics(name: str) -> dict:
    return json.loads((ROOT / "metrics" / f"{name}.json").read_text())


def rows(heading: str) -> list[list[str]]:
    """The cells of every table row under the README's `## {heading}`, up to the next heading."""
    text = (ROOT / "README.md").read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip().strip("*") for c in line.strip("|").split("|")] for line in text.splitlines() if line[:1] == "|"]


def quotes(printed: str, value: float) -> bool:
    digits = len(printed.split(".")[1]) if "." in printed else 0
    return abs(float(printed) - value) <= 0.5 * 10**-digits + 1e-12


def row(table: list[list[str]], label: str) -> list[str]:
    found = [r for r in table if r[0].startswith(label)]
    assert len(found) == 1, f"no single row starting {label!r} in the README's results"
    return found[0]


@pytest.mark.parametrize("label", PRIORS)
def test_the_readme_results_quote_each_priors_committed_metrics(label):
    section, stage = PRIORS[label]
    m = metrics(stage) | {"rates_off": metrics("report")[f"rates_off_{section}"]}
    cells = row(rows("Results of the default run"), label)[1:]
    assert len(cells) == len(RESULTS_COLUMNS)
    wrong = [(key, printed, m[key]) for key, printed in zip(RESULTS_COLUMNS, cells) if not quotes(printed, m[key])]
    assert not wrong, f"the README's {label} row is stale: (metric, printed, committed) {wrong}"


@pytest.mark.parametrize("label", BASELINE_ROWS)
def test_the_readme_results_quote_the_committed_baselines(label):
    m = metrics("baselines")
    cells = row(rows("Results of the default run"), label)[1:6]
    wrong = [(k, c, m[k]) for k, c in zip(BASELINE_ROWS[label], cells) if k and not quotes(c, m[k])]
    assert not wrong, f"the README's {label} row is stale: (metric, printed, committed) {wrong}"


def test_the_readme_attribute_rates_quote_the_committed_metrics():
    table = [r for r in rows("Results of the default run") if len(r) == 5 and r[0] not in ("attribute", "---")]
    assert len(table) >= 5
    base, ar, masked = metrics("baselines"), metrics("sample_ar"), metrics("sample_diffusion")
    for name, *printed in table:
        committed = [base[f"test_rate_{name}"], base[f"recon_rate_{name}"], ar[f"rate_{name}"], masked[f"rate_{name}"]]
        assert all(quotes(p, c) for p, c in zip(printed, committed)), (
            f"{name}: printed {printed}, committed {committed}"
        )
