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


@pytest.mark.parametrize("raw,message", [
    ({"colour": {}}, "unknown section 'colour'"),
    ({"ar": {"lr_max": 1}}, "'ar.lr_max' is not a parameter"),
    ({"ar": {"lr": "fast"}}, "ar.lr is 'fast'; use a value of type float"),
    ({"data": {"source": "imagenet"}}, "data.source is 'imagenet'; use one of synthetic, celeba, folder"),
    ({"data": {"image_size": 60}}, "data.image_size is 60; use a multiple of vqvae.downsample (8)"),
    ({"vqvae": {"downsample": 6}}, "vqvae.downsample is 6; use a power of two"),
    ({"diffusion": {"temperature": 0}}, "diffusion.temperature is 0.0; use a positive number"),
    ({"ar": {"temperature": -1.0}}, "ar.temperature is -1.0; use a positive number"),
    ({"ar": {"n_embd": 100, "n_head": 3}}, "ar.n_embd is 100; use a multiple of ar.n_head (3)"),
])
def test_bad_values_are_named(raw, message):
    with pytest.raises(config.ConfigError) as err:
        config.parse_params(raw)
    assert message in str(err.value)


def test_ints_are_accepted_for_floats_and_keys_expand():
    p = config.parse_params({"ar": {"lr": 1}})
    assert p.ar.lr == 1.0 and isinstance(p.ar.lr, float)
    assert "vqvae.beta" in config.keys(("vqvae",))
    assert config.keys(("ar.lr", "data.seed")) == ["ar.lr", "data.seed"]
