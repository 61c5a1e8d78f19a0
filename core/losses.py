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


def maps_distance(maps_a: list[torch.Tensor], maps_b: list[torch.Tensor]) -> torch.Tensor:
    """Per-image distance (N,) between two lists of normalised maps (targets can be precomputed)."""
    total = maps_a[0].new_zeros(maps_a[0].shape[0])
    for fa, fb in zip(maps_a, maps_b):
        total = total + (fa - fb).square().sum(1).mean((1, 2))
    return total


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
