"""Fitting latent directions: planted linear boundaries are recovered, rare ones included."""
from __future__ import annotations

import math

import torch
from torch import nn

from core.directions import FitConfig, balanced_accuracy, fit_directions, load_directions, save_directions
from core.worker import run_inline

Z_DIM = 8


class IdentityGenerator(nn.Module):
    """'Renders' z as a 1×1 image with z_dim channels, so the classifier sees z itself."""

    z_dim = Z_DIM

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Linear(1, 1)  # gives the job a device and the file a hash

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(len(z), -1, 1, 1)


class LogitsOf(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x.flatten(1))


def _unit(seed: int) -> torch.Tensor:
    v = torch.randn(Z_DIM, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def _fit(fn, n_attr: int, samples: int = 20_000):
    config = FitConfig(samples=samples, batch_size=5000)
    return run_inline(fit_directions, IdentityGenerator(), LogitsOf(fn), [f"a{i}" for i in range(n_attr)], config)


def test_planted_linear_boundaries_are_recovered_common_and_rare():
    normals = torch.stack([_unit(1), _unit(2)])  # (2, d)
    offsets = torch.tensor([0.3, -2.6])  # a common attribute (~40 %) and a rare one (~0.5 %)

    def logits(z):
        planted = 4 * (z @ normals.T + offsets)
        return torch.cat([planted, torch.full((len(z), 1), -5.0)], 1)  # a third that ignores z

    d = _fit(logits, 3)
    assert 0.002 < float(d.positive_rate[1]) < 0.01  # the rare one really is rare
    for k in range(2):
        assert float(d.vectors[k] @ normals[k]) > 0.97, k
        assert abs(float(d.offsets[k]) - float(offsets[k])) < 0.25, (k, d.offsets[k])
        assert float(d.val_balanced_accuracy[k]) > 0.9
    assert not d.available[2] and float(d.vectors[2].norm()) == 0.0  # no direction for a constant logit
    assert bool(d.available[0]) and bool(d.available[1])


def test_rare_attribute_direction_points_where_faces_cross_not_where_the_logit_drifts():
    """A logit that creeps along v everywhere but only crosses 0 along u: the edit must follow u.

    This is the shape that made logit regression fail for Bald and Mustache on the shipped G.
    """
    u, v = _unit(3), _unit(4)
    v = v - (v @ u) * u
    v = v / v.norm()

    def logits(z):
        return (0.5 * (z @ v) + 8 * torch.relu(z @ u - 2.6) - 2).unsqueeze(1)

    d = _fit(logits, 1)
    assert float(d.vectors[0] @ u) > 0.9, float(d.vectors[0] @ u)


def test_balanced_accuracy_weighs_both_classes():
    truth = torch.tensor([[True], [False], [False], [False]])
    assert math.isclose(float(balanced_accuracy(torch.zeros(4, 1, dtype=torch.bool), truth)[0]), 0.5)
    assert math.isclose(float(balanced_accuracy(truth.clone(), truth)[0]), 1.0)


def test_balanced_accuracy_round_trips_through_the_file(tmp_path):
    d = _fit(lambda z: (z @ _unit(5)).unsqueeze(1) * 3, 1, samples=4000)
    loaded = load_directions(save_directions(d, tmp_path / "d.pt"))
    assert torch.equal(loaded.val_balanced_accuracy, d.val_balanced_accuracy)
    assert torch.equal(loaded.vectors, d.vectors)
