"""Latent directions: one linear boundary per attribute in z-space (InterFaceGAN-style).

Sample z ~ N(0, I), label G(z) with our classifier, fit a logistic-regression boundary per
attribute; its unit normal d is the attribute's direction, so an edit is z + Σ αₖ·dₖ and costs
one G forward. Conditional editing projects the target direction orthogonal to the directions
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
    iterations: int = 300
    weight_decay: float = 1e-3
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
        """(A,) bool: attributes with a direction (those the generator both shows and omits)."""
        return self.vectors.norm(dim=1) > 0.5

    def index(self, name: str) -> int:
        try:
            return self.attributes.index(name)
        except ValueError:
            raise KeyError(f"unknown attribute {name!r}") from None

    def conditional(self, target: int, locked: list[int]) -> torch.Tensor:
        """Direction of `target` made orthogonal to every locked attribute's direction."""
        if not self.available[target]:
            raise ValueError(f"{self.attributes[target]} has no direction: the generator's faces "
                             f"{'always' if self.positive_rate[target] > 0.5 else 'never'} show it")
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
    labels = (torch.cat(logits) > 0).float()
    n_val = int(config.samples * config.val_fraction)
    z_tr, z_val, y_tr, y_val = z_all[n_val:], z_all[:n_val], labels[n_val:], labels[:n_val]
    num_attr = labels.shape[1]
    weight = torch.zeros(generator.z_dim, num_attr, requires_grad=True)
    bias = torch.zeros(num_attr, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=config.iterations, line_search_fn="strong_wolfe")
    pos_weight = ((1 - y_tr.mean(0)) / y_tr.mean(0).clamp_min(1e-3)).clamp(0.05, 20)  # balance rare attributes

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z_tr @ weight + bias, y_tr, pos_weight=pos_weight)
        loss = loss + config.weight_decay * weight.square().sum() / num_attr
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        norms = weight.norm(dim=0).clamp_min(1e-12)
        vectors = (weight / norms).T.contiguous()
        constant = (labels.min(0).values == labels.max(0).values)  # never/always shown: no boundary
        vectors[constant] = 0.0
        offsets = bias / norms
        val_pred = (z_val @ weight + bias) > 0
        val_acc = (val_pred == y_val.bool()).float().mean(0)
    return Directions(vectors=vectors, offsets=offsets.detach(), val_accuracy=val_acc,
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
