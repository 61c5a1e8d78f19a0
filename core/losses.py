"""Image distances used to train the encoder and to refine an inversion (no downloaded VGG).

The perceptual part compares our own classifier's intermediate feature maps, unit-normalised
per position over channels (as LPIPS does), so faces that differ in attribute-relevant detail
are far apart even when their pixels are close.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.models import Classifier


def normalised_maps(classifier: Classifier, x: torch.Tensor) -> list[torch.Tensor]:
    """The classifier's feature maps of `x`, each unit-length over channels at every position."""
    return [F.normalize(m.float(), dim=1) for m in classifier.feature_maps(x)]


def maps_distance(maps_a: list[torch.Tensor], maps_b: list[torch.Tensor],
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image distance (N,) between two lists of normalised maps (targets can be precomputed).

    `weight` (H, W) in [0, 1], optional: how much each image position counts (pooled to each map's
    size), e.g. 0 where a photo's crop was filled in beyond its edge.
    """
    total = maps_a[0].new_zeros(maps_a[0].shape[0])
    for fa, fb in zip(maps_a, maps_b):
        d = (fa - fb).square().sum(1)
        if weight is None:
            total = total + d.mean((1, 2))
        else:
            w = F.adaptive_avg_pool2d(weight.to(d).reshape(1, 1, *weight.shape[-2:]), d.shape[-2:])[:, 0]
            total = total + (d * w).sum((1, 2)) / w.sum((1, 2)).clamp_min(1e-6)
    return total


def pixel_loss(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared pixel difference over the batch; `weight` (H, W) as in `maps_distance`."""
    sq = (a - b).square()
    if weight is None:
        return sq.mean()
    w = weight.to(sq).reshape(1, 1, *weight.shape[-2:])
    return (sq * w).sum() / (w.sum() * sq.shape[0] * sq.shape[1]).clamp_min(1e-6)


def feature_distance(classifier: Classifier, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image perceptual distance (N,) between two batches in [-1, 1]."""
    return maps_distance(normalised_maps(classifier, a), normalised_maps(classifier, b))


def image_distance(classifier: Classifier | None, a: torch.Tensor, b: torch.Tensor,
                   w_pixel: float = 1.0, w_feature: float = 1.0) -> torch.Tensor:
    """Per-image loss (N,): pixel MSE in [-1, 1] plus the classifier feature distance."""
    loss = w_pixel * (a.float() - b.float()).square().flatten(1).mean(1)
    if classifier is not None and w_feature > 0:
        loss = loss + w_feature * feature_distance(classifier, a, b)
    return loss
