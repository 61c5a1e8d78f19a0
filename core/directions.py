"""Latent directions: one linear boundary per attribute in z-space (InterFaceGAN-style).

Sample z ~ N(0, I), label each G(z) with our classifier's decision (logit > 0), and fit a linear
boundary per attribute; its unit normal d is the attribute's direction, so an edit is
z + Σ αₖ·dₖ and costs one G forward. The boundary is Fisher's discriminant under the prior's
identity covariance: normal μ₊ − μ₋ (the difference of the class means), offset where the
labels along that normal are best separated. By Stein's lemma μ₊ − μ₋ is the expected gradient
of the *decision*, which lives on the boundary surface, so it points where faces actually cross;
regressing the logit (the earlier fit) averages the logit's gradient over the bulk of faces far
from the boundary, and for rare attributes it pointed elsewhere. How far a straight line gets
also depends on how often G draws the attribute at all (measurements, self-graded and by the
evaluator: resources/MODELS.md). Rare classes need many samples, hence 200,000;
an attribute with fewer than `min_class` faces on either side falls back to the logit regression.

In a style G's w (the engine edits such a G there) the same fit gives the class-mean difference,
not the boundary normal (w's covariance is not I), which is the direction that carries a typical
face without the attribute to a typical face with it. For an attribute-conditional G the
direction comes from the condition itself (`condition_directions`): the mean change of w when
only that attribute of the condition flips, the same person (z) kept, i.e. what the generator
learned the attribute to be rather than what the classifier correlates with it.

Each boundary's validation accuracy and balanced accuracy (the mean of the two class recalls,
which is what says anything for a 0.1 % attribute) are reported. Conditional editing projects the
target direction orthogonal to the directions of locked attributes. Directions belong to one
generator: files carry the generator's hash and are refitted when G changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, state_hash
from core.latent import sample_codes


@dataclass
class FitConfig:
    samples: int = 200_000  # ~6 min on 2 CPU threads, seconds on a GPU
    batch_size: int = 1000
    val_fraction: float = 0.1
    min_class: int = 25  # fewer faces than this on either side: fall back to the logit regression
    ridge: float = 1.0  # L2 of the fallback regression, in units of samples
    logit_clip: float = 10.0  # saturated logits say "certain", not "10× more"
    seed: int = 0


@dataclass
class Directions:
    """Unit directions (A, d), boundary offsets (A,) and their validation accuracy (A,)."""

    vectors: torch.Tensor
    offsets: torch.Tensor  # boundary: z·d + offset = 0
    val_accuracy: torch.Tensor
    positive_rate: torch.Tensor  # how often the attribute is present among generated faces
    attributes: list[str]
    generator_hash: str
    val_balanced_accuracy: torch.Tensor | None = None  # mean of the two class recalls (A,)

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
                z = z + alpha * self.conditional(k, locked or []).to(z.device, z.dtype)
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
    z_all = sample_codes(generator, config.samples, g)
    logits = []
    with torch.no_grad():
        for i in range(0, config.samples, config.batch_size):
            z = z_all[i:i + config.batch_size].to(device)
            logits.append(classifier(generator(z)).float().cpu())
            yield min(i + config.batch_size, config.samples), config.samples
    scores = torch.cat(logits).double()
    labels = scores > 0
    n_val = int(config.samples * config.val_fraction)
    z_tr, z_val = z_all[n_val:].double(), z_all[:n_val].double()
    if getattr(generator, "conditional", False):
        if generator.style.config.num_attributes != len(attributes):
            raise ValueError(f"the generator is conditioned on {generator.style.config.num_attributes} attributes, "
                             f"the classifier reads {len(attributes)}")
        weight = condition_directions(generator, seed=config.seed).T.double()
    else:
        weight = _fisher_normals(z_tr, labels[n_val:])
        small = _class_sizes(labels[n_val:]) < config.min_class
        if small.any():
            w_reg, _ = _logit_regression(z_tr, scores[n_val:].clamp(-config.logit_clip, config.logit_clip),
                                         config.ridge)
            weight[:, small] = w_reg[:, small]
    norms = weight.norm(dim=0)
    unit = weight / norms.clamp_min(1e-12)
    unit[:, norms < 1e-9] = 0.0  # a logit that ignores z has no direction
    offsets = _best_offsets(z_tr @ unit, labels[n_val:])
    vectors = unit.T.float().contiguous()
    predicted, truth = z_val @ unit + offsets > 0, labels[:n_val]
    offsets = offsets.float()
    val_acc = (predicted == truth).float().mean(0)
    return Directions(vectors=vectors, offsets=offsets, val_accuracy=val_acc,
                      positive_rate=labels.float().mean(0), attributes=list(attributes),
                      generator_hash=state_hash(generator), val_balanced_accuracy=balanced_accuracy(predicted, truth))


@torch.no_grad()
def condition_directions(generator: nn.Module, n: int = 2000, seed: int = 0) -> torch.Tensor:
    """(A, w_dim) for a conditional style G seen from w: per attribute, the mean of
    mapping(z, c with it on) − mapping(z, c with it off) over `n` z and conditions of real faces."""
    style = generator.style
    device = style.const.device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, style.z_dim, generator=rng).to(device)
    c = style.draw_conditions(n, rng).to(device)
    out = torch.zeros(style.config.num_attributes, style.w_dim)
    for k in range(style.config.num_attributes):
        on, off = c.clone(), c.clone()
        on[:, k], off[:, k] = 1.0, 0.0
        out[k] = (style.mapping(z, c=on) - style.mapping(z, c=off)).float().mean(0).cpu()
    return out


def _class_sizes(labels: torch.Tensor) -> torch.Tensor:
    """(A,) the smaller of the positive and negative counts per attribute."""
    positives = labels.sum(0)
    return torch.minimum(positives, len(labels) - positives)


def _fisher_normals(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(d, A) per attribute μ₊ − μ₋: Fisher's discriminant when the class covariances are ≈ I."""
    pos = labels.double()
    mu_pos = (z.T @ pos) / pos.sum(0).clamp_min(1)
    mu_neg = (z.T @ (1 - pos)) / (1 - pos).sum(0).clamp_min(1)
    return mu_pos - mu_neg


def _best_offsets(projected: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(A,) b such that t + b > 0 best matches the labels along each projection t (N, A).

    Counted, not modelled: the faces on each side of a boundary are truncated Gaussians, and the
    equal-Gaussian-classes offset puts a rare attribute's boundary far off (docs/experiments.md).
    """
    t, order = projected.sort(dim=0)
    y = labels.gather(0, order).double()
    # errors when the threshold sits just above sorted index i: positives at or below i + negatives above i
    pos_below = torch.cumsum(y, 0)
    neg_above = (1 - y).sum(0) - torch.cumsum(1 - y, 0)
    errors = torch.cat([(1 - y).sum(0, keepdim=True), pos_below + neg_above])  # row 0: threshold below all
    best = errors.argmin(0)
    padded = torch.cat([t[:1] - 1, t, t[-1:] + 1])
    threshold = (padded.gather(0, best.unsqueeze(0)) + padded.gather(0, (best + 1).unsqueeze(0))).squeeze(0) / 2
    return -threshold


def _logit_regression(z: torch.Tensor, targets: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge least squares of the (clipped) logits on [z 1]: (d, A) weights and (A,) intercepts.

    By Stein's lemma the weight is the expected gradient of the logit, so it still points where
    an attribute grows when the generator (almost) never draws it past the boundary.
    """
    x = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1)
    gram = x.T @ x + ridge * torch.eye(x.shape[1], dtype=z.dtype)
    gram[-1, -1] -= ridge  # no penalty on the intercept
    solution = torch.linalg.solve(gram, x.T @ targets)  # (d+1, A)
    return solution[:-1], solution[-1]


def balanced_accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(A,) mean of the recall on positives and on negatives (a class with no samples counts as 1)."""
    pos, neg = truth.double(), (~truth).double()
    hit = (predicted == truth).double()
    recall_pos = torch.where(pos.sum(0) > 0, (hit * pos).sum(0) / pos.sum(0).clamp_min(1), 1.0)
    recall_neg = torch.where(neg.sum(0) > 0, (hit * neg).sum(0) / neg.sum(0).clamp_min(1), 1.0)
    return ((recall_pos + recall_neg) / 2).float()


def save_directions(directions: Directions, path: str | os.PathLike, train: dict | None = None) -> Path:
    return save_checkpoint(path, "directions", attributes=directions.attributes, train=train or {},
                           config={"z_dim": directions.vectors.shape[1]},
                           extra={"vectors": directions.vectors, "offsets": directions.offsets,
                                  "val_accuracy": directions.val_accuracy, "positive_rate": directions.positive_rate,
                                  "generator_hash": directions.generator_hash,
                                  **({"val_balanced_accuracy": directions.val_balanced_accuracy}
                                     if directions.val_balanced_accuracy is not None else {})})


def load_directions(path: str | os.PathLike, generator: nn.Module | None = None) -> Directions:
    """Load a directions file; with `generator`, refuse a file fitted for another generator."""
    ck = load_checkpoint(path, "directions")
    extra = ck.extra
    try:
        balanced = extra.get("val_balanced_accuracy")  # absent from files fitted before it was reported
        directions = Directions(vectors=extra["vectors"].float(), offsets=extra["offsets"].float(),
                                val_accuracy=extra["val_accuracy"].float(), positive_rate=extra["positive_rate"].float(),
                                attributes=ck.attributes, generator_hash=str(extra["generator_hash"]),
                                val_balanced_accuracy=balanced.float() if isinstance(balanced, torch.Tensor) else None)
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
