"""Latent directions: one linear boundary per attribute in z-space (InterFaceGAN-style).

Sample z ~ N(0, I), score G(z) with our classifier, and fit each attribute's logit linearly in z
(ridge least squares, closed form); the unit normal d of that linear boundary is the attribute's
direction, so an edit is z + Σ αₖ·dₖ and costs one G forward. Regressing the logit rather than
classifying thresholded labels matters for rare attributes: a generator that almost never draws
a bald head still has a direction in which baldness grows (by Stein's lemma, for Gaussian z the
least-squares weight is the expected gradient of the logit). The boundary's validation accuracy
(its sign against the classifier's decision on unseen samples) is reported per attribute. Conditional editing projects the target direction orthogonal to the directions
of locked attributes. Directions belong to one generator: files carry the generator's hash and
are refitted when G changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, state_hash


@dataclass
class FitConfig:
    samples: int = 20_000
    batch_size: int = 500
    val_fraction: float = 0.2
    ridge: float = 1.0  # L2 on the weights, in units of samples
    logit_clip: float = 10.0  # saturated logits say "certain", not "10× more"
    seed: int = 0


@dataclass
class Directions:
    """Unit directions (A, d), boundary offsets (A,) and their validation accuracy (A,)."""

    vectors: torch.Tensor
    offsets: torch.Tensor
    val_accuracy: torch.Tensor
    positive_rate: torch.Tensor  # how often the attribute is present among generated faces
    attributes: list[str]
    generator_hash: str

    @property
    def available(self) -> torch.Tensor:
        """(A,) bool: attributes with a direction (their logit depends on z at all)."""
        return self.vectors.norm(dim=1) > 0.5

    def index(self, name: str) -> int:
        try:
            return self.attributes.index(name)
        except ValueError:
            raise KeyError(f"unknown attribute {name!r}") from None

    def conditional(self, target: int, locked: list[int]) -> torch.Tensor:
        """Direction of `target` made orthogonal to every locked attribute's direction."""
        if not self.available[target]:
            raise ValueError(f"{self.attributes[target]} has no direction: the classifier's reading of it "
                             "does not change with z")
        return orthogonalise(self.vectors[target], self.vectors[[j for j in locked if j != target]])

    def edit(self, z: torch.Tensor, alphas: dict[int, float], locked: list[int] | None = None) -> torch.Tensor:
        """z + Σ αₖ·dₖ, each dₖ conditioned on the locked attributes."""
        z = z.clone()
        for k, alpha in alphas.items():
            if alpha:
                d = self.conditional(k, locked or [])
                z = z + alpha * d.to(z.device, z.dtype)
        return z


def orthogonalise(direction: torch.Tensor, against: torch.Tensor) -> torch.Tensor:
    """Remove from `direction` its component in the span of the rows of `against`; unit length.

    Uses a QR basis of the span, so correlated locked directions are handled exactly.
    """
    direction = direction.double()
    against = against.double().reshape(-1, direction.shape[0])
    against = against[against.norm(dim=1) > 1e-6]  # attributes without a direction constrain nothing
    if against.numel():
        q, _ = torch.linalg.qr(against.T)  # (d, k) orthonormal basis of the locked span
        direction = direction - q @ (q.T @ direction)
    norm = direction.norm()
    if norm < 1e-6:
        raise ValueError("this attribute's direction lies within the locked attributes' directions")
    return (direction / norm).float()


def fit_directions(generator: nn.Module, classifier: nn.Module, attributes: list[str],
                   config: FitConfig | None = None) -> Iterator[tuple[int, int]]:
    """Generator job: yields (done, total) while sampling, returns `Directions`."""
    config = config or FitConfig()
    device = next(generator.parameters()).device
    g = torch.Generator().manual_seed(config.seed)
    z_all = torch.randn(config.samples, generator.z_dim, generator=g)
    logits = []
    with torch.no_grad():
        for i in range(0, config.samples, config.batch_size):
            z = z_all[i:i + config.batch_size].to(device)
            logits.append(classifier(generator(z)).float().cpu())
            yield min(i + config.batch_size, config.samples), config.samples
    scores = torch.cat(logits).double()
    labels = scores > 0
    targets = scores.clamp(-config.logit_clip, config.logit_clip)
    n_val = int(config.samples * config.val_fraction)
    z_tr, z_val = z_all[n_val:].double(), z_all[:n_val].double()
    y_tr, y_val = targets[n_val:], labels[:n_val]
    # ridge least squares with an intercept: [z 1]ᵀ[z 1] w = [z 1]ᵀ y  (d+1 unknowns per attribute)
    x_tr = torch.cat([z_tr, torch.ones(len(z_tr), 1, dtype=torch.float64)], 1)
    gram = x_tr.T @ x_tr + config.ridge * torch.eye(x_tr.shape[1], dtype=torch.float64)
    gram[-1, -1] -= config.ridge  # no penalty on the intercept
    solution = torch.linalg.solve(gram, x_tr.T @ y_tr)  # (d+1, A)
    weight, bias = solution[:-1], solution[-1]
    norms = weight.norm(dim=0)
    vectors = (weight / norms.clamp_min(1e-12)).T.float().contiguous()
    vectors[norms < 1e-9] = 0.0  # a logit that ignores z has no direction
    offsets = (bias / norms.clamp_min(1e-12)).float()
    val_acc = ((z_val @ weight + bias > 0) == y_val).float().mean(0)
    labels = labels.float()
    return Directions(vectors=vectors, offsets=offsets, val_accuracy=val_acc,
                      positive_rate=labels.mean(0), attributes=list(attributes), generator_hash=state_hash(generator))


def save_directions(directions: Directions, path: str | os.PathLike, train: dict | None = None) -> Path:
    return save_checkpoint(path, "directions", attributes=directions.attributes, train=train or {},
                           config={"z_dim": directions.vectors.shape[1]},
                           extra={"vectors": directions.vectors, "offsets": directions.offsets,
                                  "val_accuracy": directions.val_accuracy, "positive_rate": directions.positive_rate,
                                  "generator_hash": directions.generator_hash})


def load_directions(path: str | os.PathLike, generator: nn.Module | None = None) -> Directions:
    """Load a directions file; with `generator`, refuse a file fitted for another generator."""
    ck = load_checkpoint(path, "directions")
    extra = ck.extra
    try:
        directions = Directions(vectors=extra["vectors"].float(), offsets=extra["offsets"].float(),
                                val_accuracy=extra["val_accuracy"].float(), positive_rate=extra["positive_rate"].float(),
                                attributes=ck.attributes, generator_hash=str(extra["generator_hash"]))
    except (KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path}: directions file lacks {exc}") from None
    a, d = directions.vectors.shape if directions.vectors.ndim == 2 else (0, 0)
    if a != len(directions.attributes) or directions.offsets.shape != (a,):
        raise CheckpointError(f"{path}: directions do not match their {len(directions.attributes)} attribute names")
    if generator is not None:
        if d != generator.z_dim:
            raise CheckpointError(f"{path}: directions are {d}-dimensional, the generator's z is {generator.z_dim}")
        if directions.generator_hash != state_hash(generator):
            raise CheckpointError(f"{path}: directions were fitted for another generator")
    return directions
