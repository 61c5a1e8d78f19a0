"""FD_cls, PSNR and accuracy against values computed by hand."""
from __future__ import annotations

import math

import torch

from core.metrics import attribute_accuracy, frechet_distance, psnr


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    torch.manual_seed(0)
    n, d = 200_000, 3
    mu_a, mu_b = torch.tensor([0.0, 1.0, -1.0]), torch.tensor([0.5, 1.0, 0.0])
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.0, 1.0, 1.5])
    a = mu_a + sd_a * torch.randn(n, d)
    b = mu_b + sd_b * torch.randn(n, d)
    expected = float((mu_a - mu_b).square().sum() + (sd_a - sd_b).square().sum())  # = 1.25 + 2.0
    assert abs(frechet_distance(a, b) - expected) < 0.05
    assert frechet_distance(a, a) < 1e-6


def test_frechet_distance_is_symmetric_with_correlated_covariances():
    torch.manual_seed(1)
    a = torch.randn(5000, 8) @ torch.randn(8, 8)
    b = torch.randn(5000, 8) @ torch.randn(8, 8) + 0.3
    assert math.isclose(frechet_distance(a, b), frechet_distance(b, a), rel_tol=1e-6)


def test_psnr_in_unit_range():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[0] += 0.2  # 0.1 in [0, 1] units -> MSE 0.01 -> 20 dB
    values = psnr(y, x)
    assert abs(float(values[0]) - 20.0) < 1e-4 and values[1] > 90


def test_attribute_accuracy_counts_decisions():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):  # attribute 0 predicted from the mean brightness, attribute 1 always "no"
            m = x.mean((1, 2, 3))
            return torch.stack([m, -torch.ones_like(m)], 1)

    images = torch.cat([torch.full((3, 3, 4, 4), 200, dtype=torch.uint8), torch.full((1, 3, 4, 4), 10, dtype=torch.uint8)])
    labels = torch.tensor([[1, 0], [1, 1], [0, 0], [0, 0]])
    acc = attribute_accuracy(Fixed(), images, labels)
    assert acc.tolist() == [0.75, 0.75]


class _Scaled(torch.nn.Module):
    """A toy 'generator': a fixed random pattern of z that varies `gain` times as fast; gain 0 ignores z."""

    def __init__(self, gain: float):
        super().__init__()
        self.z_dim, self.gain = 16, gain
        self.proj = torch.nn.Linear(16, 3 * 64 * 64)
        torch.nn.init.normal_(self.proj.weight, std=0.3, generator=torch.Generator().manual_seed(3))
        torch.nn.init.zeros_(self.proj.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 0.8 * torch.sin(self.proj(self.gain * z)).view(-1, 3, 64, 64)


def test_path_length_is_zero_for_a_generator_that_ignores_z_and_grows_with_sharpness():
    from core.metrics import path_length
    from core.models import Classifier, ClassifierConfig, Generator, GeneratorConfig

    torch.manual_seed(0)
    classifier = Classifier(ClassifierConfig(num_attributes=4, width=8)).eval()
    flat, mild, sharp = (path_length(_Scaled(g), classifier, n=40, batch=20) for g in (0.0, 0.5, 2.0))
    assert flat < 1e-6
    assert mild > 0 and sharp > 2 * mild
    # the same seed walks the same paths
    assert path_length(_Scaled(0.5), classifier, n=40, batch=20) == mild
    dcgan = Generator(GeneratorConfig(z_dim=8, width=8)).eval()
    try:
        path_length(dcgan, classifier, space="w", n=4)
    except ValueError as exc:
        assert "w space" in str(exc)
    else:
        raise AssertionError("a DCGAN has no w space to measure")


def test_path_length_in_w_for_a_style_generator():
    from core.metrics import path_length
    from core.models import Classifier, ClassifierConfig, StyleGenerator, StyleGeneratorConfig

    torch.manual_seed(0)
    classifier = Classifier(ClassifierConfig(num_attributes=4, width=8)).eval()
    g = StyleGenerator(StyleGeneratorConfig(z_dim=8, w_dim=8, width=8, mapping_layers=2)).eval()
    w_len, z_len = path_length(g, classifier, "w", n=8, batch=8), path_length(g, classifier, "z", n=8, batch=8)
    assert math.isfinite(w_len) and math.isfinite(z_len) and w_len > 0 and z_len > 0


def test_path_length_of_a_conditional_generator_keeps_one_condition_per_path():
    """G draws a new condition per call when given none; a path must not change its condition
    between its two ends, or the length measures the condition's jumps instead of smoothness."""
    from core.metrics import path_length
    from core.models import Classifier, ClassifierConfig, StyleGenerator, StyleGeneratorConfig

    torch.manual_seed(0)
    classifier = Classifier(ClassifierConfig(num_attributes=4, width=8)).eval()
    g = StyleGenerator(StyleGeneratorConfig(z_dim=8, w_dim=8, width=8, mapping_layers=2, num_attributes=6,
                                            label_bank=32)).eval()
    with torch.no_grad():
        g.labels.copy_(torch.randint(0, 2, g.labels.shape, generator=torch.Generator().manual_seed(1)).float())
    lengths = []
    for global_seed in (1, 2):  # the global RNG must not matter: conditions come from the path's seed
        torch.manual_seed(global_seed)
        lengths.append(path_length(g, classifier, "z", n=16, batch=8))
    assert lengths[0] == lengths[1] and math.isfinite(lengths[0])
    # against the same paths with a condition redrawn at each end: that is far longer
    torch.manual_seed(0)
    redrawn = path_length(_redrawing(g), classifier, "z", n=16, batch=8)
    assert redrawn > 5 * lengths[0]


def _redrawing(g):
    """The conditional G as it was measured before: no condition passed, so each call draws its own."""
    class Redraw(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g, self.z_dim = g, g.z_dim

        def forward(self, z):
            return self.g(z)

    return Redraw()
