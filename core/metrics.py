"""Measurements shared by training, evaluation and the app: FD_cls, PSNR, attribute accuracy."""
from __future__ import annotations

import torch

from core.data import to_model_range
from core.models import Classifier


def _as_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device)
    return to_model_range(x) if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def classifier_features(classifier: Classifier, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Penultimate features of `images` (float in [-1, 1] or uint8), float64 on the CPU."""
    device = next(classifier.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        out.append(classifier.features(_as_input(images[i:i + batch_size], device)).double().cpu())
    return torch.cat(out)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples).

    ‖μa − μb‖² + Tr(Σa) + Tr(Σb) − 2·Tr((Σa^½ Σb Σa^½)^½), computed with symmetric
    eigendecompositions in float64 (no scipy needed, and no complex round-off).
    """
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(cov_a)
    sqrt_a = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    middle = sqrt_a @ cov_b @ sqrt_a
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    fd = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * tr_sqrt
    return float(fd.clamp_min(0))


def fd_cls(classifier: Classifier, images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """FD_cls: Fréchet distance in our classifier's penultimate feature space."""
    return frechet_distance(classifier_features(classifier, images_a), classifier_features(classifier, images_b))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of two batches in [-1, 1], measured in the [0, 1] range."""
    mse = ((a.float() - b.float()) / 2).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


@torch.no_grad()
def attribute_accuracy(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                       batch_size: int = 250) -> torch.Tensor:
    """Per-attribute accuracy (A,) of the classifier's p > 0.5 decision against 0/1 labels."""
    device = next(classifier.parameters()).device
    correct = torch.zeros(labels.shape[1], dtype=torch.float64)
    for i in range(0, len(images), batch_size):
        pred = (classifier(_as_input(images[i:i + batch_size], device)) > 0).cpu()
        correct += (pred == labels[i:i + batch_size].bool()).double().sum(0)
    return correct / len(images)


@torch.no_grad()
def path_length(generator: torch.nn.Module, classifier: Classifier, space: str = "z", n: int = 500,
                eps: float = 1e-2, seed: int = 0, batch: int = 100) -> float:
    """Perceptual path length (Karras et al. 2019) in our classifier's unit-normalised feature maps.

    How much a face changes, perceptually, for a small step along a random interpolation path:
    E[d(G(p(t)), G(p(t + ε))) / ε²], t ~ U(0, 1), with the 1 % tails trimmed. `space` "z" walks
    z by slerp (the prior's geometry); "w" walks a style generator's w by lerp. Lower is a
    smoother latent space — the reason a style G's sliders should change less than asked for.
    """
    from core.latent import slerp as slerp_one
    from core.losses import feature_distance

    def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # a t per row
        return torch.stack([slerp_one(a[i], b[i], float(t[i])) for i in range(len(a))])

    if space not in ("z", "w"):
        raise ValueError(f"space must be 'z' or 'w', got {space!r}")
    if space == "w" and not hasattr(generator, "synthesis"):
        raise ValueError("this generator has no w space (only a style generator has one)")
    device = next(generator.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    conditional = getattr(generator, "conditional", False)
    out = []
    for i in range(0, n, batch):
        k = min(batch, n - i)
        z1, z2 = torch.randn(2, k, generator.z_dim, generator=gen).to(device)
        t = torch.rand(k, 1, generator=gen).to(device) * (1 - eps)
        # a conditional G: one condition per path, drawn here (G would draw a new one per call)
        cond = {"c": generator.draw_conditions(k, gen).to(device)} if conditional else {}
        if space == "z":
            a, b = generator(slerp(z1, z2, t), **cond), generator(slerp(z1, z2, t + eps), **cond)
        else:
            w1, w2 = generator.mapping(z1, **cond), generator.mapping(z2, **cond)
            a, b = generator.synthesis(w1.lerp(w2, t)), generator.synthesis(w1.lerp(w2, t + eps))
        out.append(feature_distance(classifier, a, b).cpu() / eps ** 2)
    d = torch.cat(out)
    lo, hi = torch.quantile(d, 0.01), torch.quantile(d, 0.99)
    return float(d[(d >= lo) & (d <= hi)].mean())
