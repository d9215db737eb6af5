"""Parameters: defaults, params.yaml, validation messages."""

from pathlib import Path

import pytest
import yaml

from vqgen import config

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_is_complete_and_valid():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw) == set(config.SECTIONS)
    p = config.load_params(ROOT / "params.yaml")
    for section, cls in config.SECTIONS.items():
        assert set(raw[section]) == {f for f in cls.__dataclass_fields__}, section
    assert p.data.source == "synthetic"


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"colour": {}}, "unknown section 'colour'"),
        ({"ar": {"lr_max": 1}}, "'ar.lr_max' is not a parameter"),
        ({"ar": {"lr": "fast"}}, "ar.lr is 'fast'; use a value of type float"),
        ({"data": {"source": "imagenet"}}, "data.source is 'imagenet'; use one of synthetic, celeba, folder"),
        ({"data": {"image_size": 60}}, "data.image_size is 60; use a multiple of vqvae.downsample (8)"),
        ({"vqvae": {"downsample": 6}}, "vqvae.downsample is 6; use a power of two"),
        ({"diffusion": {"temperature": 0}}, "diffusion.temperature is 0.0; use a positive number"),
        ({"ar": {"temperature": -1.0}}, "ar.temperature is -1.0; use a positive number"),
        ({"diffusion": {"min_p": -0.1}}, "diffusion.min_p is -0.1; use 0 (off) up to 1 (the likeliest only)"),
        ({"ar": {"n_embd": 100, "n_head": 3}}, "ar.n_embd is 100; use a multiple of ar.n_head (3)"),
        ({"ar": {"seed": -1}}, "ar.seed is -1; use 0 up to 4294967295."),
        ({"vqvae": {"beta1": 1.0}}, "vqvae.beta1 is 1.0; use 0 up to below 1."),
        ({"diffusion": {"lr_floor": 1.5}}, "diffusion.lr_floor is 1.5; use a fraction from 0 to 1."),
        ({"evaluate": {"warmup": -1}}, "evaluate.warmup is -1; use 0 or more."),
        ({"compute": {"checkpoint_every": -10}}, "compute.checkpoint_every is -10; use 0 (never) or more steps."),
        ({"compute": {"memory_gb": -1}}, "compute.memory_gb is -1.0; use 0 (always read from disk) or more."),
        ({"sample": {"seed": 2**32}}, "sample.seed is 4294967296; use 0 up to 4294967295."),
        ({"data": {"seed": 2**40}}, "data.seed is 1099511627776; use 0 up to 4294967295."),
        ({"compute": {"device": "cudaXYZ"}}, "compute.device is 'cudaXYZ'; use auto, cpu, cuda, cuda:N or mps."),
        ({"compute": {"device": "cuda:x"}}, "compute.device is 'cuda:x'"),
        ({"diffusion": {"temperature": float("nan")}}, "diffusion.temperature is nan; use a finite number."),
        ({"ar": {"lr": float("inf")}}, "ar.lr is inf; use a finite number."),
        ({"vqvae": {"beta": float("-inf")}}, "vqvae.beta is -inf; use a finite number."),
        ({"vqvae": {"beta": -0.25}}, "vqvae.beta is -0.25; use 0 or more."),
        ({"vqvae": {"perceptual_weight": -1}}, "vqvae.perceptual_weight is -1.0; use 0 or more."),
        ({"vqvae": {"edge_weight": -4}}, "vqvae.edge_weight is -4.0; use 0 or more."),
        ({"vqvae": {"adversarial_weight": -0.1}}, "vqvae.adversarial_weight is -0.1; use 0 or more."),
        ({"diffusion": {"weight_decay": -0.01}}, "diffusion.weight_decay is -0.01; use 0 or more."),
        ({"diffusion": {"lr": -1e-3}}, "diffusion.lr is -0.001; use a positive number."),
        ({"diffusion": {"confidence_noise": float("inf")}}, "diffusion.confidence_noise is inf; use a finite number."),
        ({"ar": {"mix_guidance": -1}}, "ar.mix_guidance is -1.0; use a scale of 0 or more (1: off)."),
        ({"diffusion": {"guidance": -2}}, "diffusion.guidance is -2.0; use a scale of 0 or more (1: off)."),
        ({"evaluate": {"k": 399}}, "evaluate.k is 399; use 1 to 398"),
        ({"evaluate": {"num_samples": 12, "k": 11}}, "evaluate.k is 11; use 1 to 10"),
    ],
)
def test_bad_values_are_named(raw, message):
    with pytest.raises(config.ConfigError) as err:
        config.parse_params(raw)
    assert message in str(err.value)


def test_ints_are_accepted_for_floats_and_keys_expand():
    p = config.parse_params({"ar": {"lr": 1}})
    assert p.ar.lr == 1.0 and isinstance(p.ar.lr, float)
    assert "vqvae.beta" in config.keys(("vqvae",))
    assert config.keys(("ar.lr", "data.seed")) == ["ar.lr", "data.seed"]


def test_nan_and_infinity_in_params_yaml_are_refused(tmp_path):
    path = tmp_path / "params.yaml"
    for text, message in (
        ("ar:\n  temperature: .nan\n", "ar.temperature is nan; use a finite number."),
        ("vqvae:\n  lr: .inf\n", "vqvae.lr is inf; use a finite number."),
    ):
        path.write_text(text)
        with pytest.raises(config.ConfigError, match=message):
            config.load_params(path)


def test_a_cuda_device_that_is_not_there_is_refused_before_any_work():
    import torch

    from vqgen import train

    count = torch.cuda.device_count()
    with pytest.raises(config.ConfigError, match=rf"compute.device is 'cuda:99'; this machine has {count} CUDA"):
        train.pick_device("cuda:99")
    if not count:
        with pytest.raises(config.ConfigError, match="compute.device is 'cuda'; this machine has 0 CUDA devices"):
            train.pick_device("cuda")


def test_rewrite_sets_values_in_place_keeping_comments_and_adds_what_is_missing():
    text = "# top\ndata:\n  source: synthetic  # where from\n  celeba_dir: ''\n\nar:\n  lr: 0.001\n"
    out = config.rewrite(
        text, {"data.source": "celeba", "data.celeba_dir": "/d e", "ar.lr": 5e-4, "ar.top_k": 3, "sample.seed": 7}
    )
    assert out.splitlines() == [
        "# top",
        "data:",
        "  source: celeba  # where from",
        "  celeba_dir: /d e",
        "",
        "ar:",
        "  lr: 0.0005",
        "  top_k: 3",
        "",
        "sample:",
        "  seed: 7",
    ]
    assert yaml.safe_load(out)["data"]["celeba_dir"] == "/d e"


@pytest.mark.parametrize("name", ["celeba64", "celeba128"])
def test_each_preset_makes_a_valid_16x16_configuration_of_real_celeba(name):
    preset = yaml.safe_load((ROOT / "presets" / f"{name}.yaml").read_text())
    changes = config.dotted(preset)
    p = config.parse_params(yaml.safe_load(config.rewrite((ROOT / "params.yaml").read_text(), changes)))
    assert p.data.source == "celeba" and p.data.image_size == int(name.removeprefix("celeba"))
    assert p.data.image_size // p.vqvae.downsample == 16
    for key, value in changes.items():
        section, field = key.split(".")
        assert getattr(getattr(p, section), field) == value, key
