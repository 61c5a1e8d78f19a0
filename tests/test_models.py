"""Every network's shapes and the config validation that guards checkpoint metadata."""
from __future__ import annotations

import pytest
import torch

from core.checkpoint import state_hash
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
    prepare_for_inference,
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
@pytest.mark.parametrize("downsample", ["strided", "pool"])
def test_discriminator_one_logit_per_image(norm, downsample):
    d = Discriminator(DiscriminatorConfig(width=8, norm=norm, downsample=downsample))
    assert d(torch.randn(5, 3, 64, 64)).shape == (5,)


@pytest.mark.parametrize("size", [64, 128])
def test_cpu_shaped_layers_keep_shapes_and_every_pixel(size):
    """The sub-pixel last layer draws every output pixel from its own channel, and the pooling D's
    space-to-depth first layer sees every input pixel: a change in any one pixel moves D's logit."""
    g = Generator(GeneratorConfig(width=8, to_rgb="subpixel", image_size=size)).eval()
    img = g(torch.randn(2, 128))
    assert img.shape == (2, 3, size, size) and img.min() >= -1 and img.max() <= 1
    d = Discriminator(DiscriminatorConfig(width=8, norm="none", downsample="pool", image_size=size))
    x = torch.randn(1, 3, size, size, requires_grad=True)
    d(x).sum().backward()
    assert (x.grad.abs().sum(1) > 0).all()
    # a config written before these options existed still builds the original layers
    assert config_from_dict(GeneratorConfig, {"z_dim": 128, "width": 32, "upsample": "nearest", "image_size": 64}
                            ).to_rgb == "resize"
    assert config_from_dict(DiscriminatorConfig, {"width": 32, "norm": "batch", "image_size": 64}).downsample == "strided"
    with pytest.raises(ValueError, match="downsample"):
        DiscriminatorConfig(downsample="maxpool").validate()


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


def _with_trained_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN statistics, as after training, so folding has something to get wrong."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return model.eval()


@pytest.mark.parametrize("make, shape", [
    (lambda: Generator(GeneratorConfig(width=8)), (3, 128)),
    (lambda: Generator(GeneratorConfig(width=8, upsample="transposed")), (3, 128)),
    (lambda: Classifier(ClassifierConfig(width=8)), (3, 3, 64, 64)),
    (lambda: Encoder(EncoderConfig(width=8)), (3, 3, 64, 64)),
])
def test_inference_copy_folds_batchnorm_without_changing_outputs_or_gradients(make, shape):
    model = _with_trained_batchnorm(make())
    fast = prepare_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    assert state_hash(fast) == state_hash(model)  # directions fitted for the original still pair
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = model(x), fast(x2)
    assert torch.allclose(y, y2, atol=1e-4), (y - y2).abs().max()
    (g,) = torch.autograd.grad(y.square().sum(), x)
    (g2,) = torch.autograd.grad(y2.square().sum(), x2)
    assert torch.allclose(g, g2, atol=1e-3, rtol=1e-3)
