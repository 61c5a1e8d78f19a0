"""Every network's shapes and the config validation that guards checkpoint metadata."""
from __future__ import annotations

import pytest
import torch

from core.models import (
    Classifier,
    ClassifierConfig,
    Discriminator,
    DiscriminatorConfig,
    Encoder,
    EncoderConfig,
    Generator,
    GeneratorConfig,
    config_from_dict,
)


@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
@pytest.mark.parametrize("z_dim", [16, 128])
def test_generator_shapes_and_range(upsample, z_dim):
    g = Generator(GeneratorConfig(z_dim=z_dim, width=8, upsample=upsample)).eval()
    x = g(torch.randn(3, z_dim))
    assert x.shape == (3, 3, 64, 64)
    assert x.min() >= -1 and x.max() <= 1
    assert g.z_dim == z_dim


@pytest.mark.parametrize("norm", ["batch", "spectral", "layer", "none"])
def test_discriminator_one_logit_per_image(norm):
    d = Discriminator(DiscriminatorConfig(width=8, norm=norm))
    assert d(torch.randn(5, 3, 64, 64)).shape == (5,)


def test_classifier_logits_features_and_maps():
    c = Classifier(ClassifierConfig(num_attributes=40, width=8)).eval()
    x = torch.randn(2, 3, 64, 64)
    assert c(x).shape == (2, 40)
    assert c.features(x).shape == (2, c.feature_dim)
    maps = c.feature_maps(x)
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4]


def test_encoder_maps_image_to_z():
    e = Encoder(EncoderConfig(z_dim=64, width=8))
    assert e(torch.randn(4, 3, 64, 64)).shape == (4, 64)


def test_smaller_image_size_supported():
    g = Generator(GeneratorConfig(z_dim=8, width=8, image_size=32)).eval()
    d = Discriminator(DiscriminatorConfig(width=8, image_size=32))
    x = g(torch.randn(2, 8))
    assert x.shape == (2, 3, 32, 32) and d(x).shape == (2,)


@pytest.mark.parametrize("cls, data, message", [
    (GeneratorConfig, {"z_dim": 0}, "z_dim"),
    (GeneratorConfig, {"width": 10**9}, "width"),
    (GeneratorConfig, {"upsample": "magic"}, "upsample"),
    (GeneratorConfig, {"image_size": 48}, "power of two"),
    (DiscriminatorConfig, {"norm": "weird"}, "norm"),
    (ClassifierConfig, {"dropout": 1.5}, "dropout"),
    (EncoderConfig, {"bogus": 1}, "no field"),
    (EncoderConfig, ["not", "a", "dict"], "must be a dict"),
])
def test_config_from_untrusted_metadata_is_validated(cls, data, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(cls, data)


def test_config_round_trip():
    cfg = GeneratorConfig(z_dim=32, width=16, upsample="transposed")
    assert config_from_dict(GeneratorConfig, cfg.__dict__.copy()) == cfg
