"""The yardsticks every quality number is read with: the evaluator and the face-identity metric.

Neither is touched by the methods they grade: the evaluator (`core.models.Evaluator`, its own
checkpoint kind) is loaded only here, by `training.evaluate`, `training.eval_control` and
`training.eval_photo_edits`; the identity metric is dlib's face-recognition ResNet
(`core.identity`). Numbers from the steering classifier can only flatter an edit it drove, so they
are printed, when at all, as "self-graded".
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from core import identity
from core.checkpoint import CheckpointError, load_checkpoint
from core.data import to_model_range

EVALUATOR_FILE = "evaluator.pt"


class Yardsticks:
    """The evaluator on `device` and (when dlib is installed) the identity metric."""

    def __init__(self, models_dir: str | os.PathLike, device: torch.device | str = "cpu",
                 attributes: list[str] | None = None):
        path = Path(models_dir) / EVALUATOR_FILE
        ck = load_checkpoint(path, "evaluator", device)
        if attributes is not None and ck.attributes != list(attributes):
            raise CheckpointError(f"{path}: its attribute list differs from the steering classifier's")
        self.evaluator = ck.model.eval()
        self.attributes = ck.attributes
        self.device = next(self.evaluator.parameters()).device
        self.identity = identity.shared_metric()

    @torch.no_grad()
    def _map(self, images: torch.Tensor, fn, batch_size: int = 250) -> torch.Tensor:
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(self.device)
            out.append(fn(to_model_range(x) if x.dtype == torch.uint8 else x.float()).cpu())
        return torch.cat(out)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(N, A) evaluator logits on the CPU: the mean over each face and its mirror image.

        Reading both views is part of the yardstick (the evaluator was trained with flips): held-out
        accuracy 89.97 % from one view, 90.04 % from both (resources/MODELS.md).
        """
        return self._map(images, lambda x: (self.evaluator(x).float() + self.evaluator(x.flip(3)).float()) / 2)

    def probs(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 or [-1, 1] -> (N, A) evaluator probabilities on the CPU."""
        return torch.sigmoid(self.logits(images))

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-attribute accuracy (A,) of the evaluator's p > 0.5 decision against 0/1 labels."""
        return ((self.logits(images) > 0) == labels.bool()).double().mean(0)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate evaluator features (float64, CPU, mean of both views), for its Fréchet distance."""
        return self._map(images, lambda x: (self.evaluator.features(x).double()
                                            + self.evaluator.features(x.flip(3)).double()) / 2)

    def identity_distance(self, a: torch.Tensor, b: torch.Tensor) -> np.ndarray | None:
        """Per-pair dlib distance (< 0.6: same person), or None when dlib is missing."""
        return None if self.identity is None else self.identity.distance(a, b)


def drift(p0: torch.Tensor, p1: torch.Tensor, attr: int) -> torch.Tensor:
    """Per-face mean |Δp| over every attribute but `attr`."""
    others = torch.ones(p0.shape[1], dtype=torch.bool)
    others[attr] = False
    return (p1 - p0).abs()[:, others].mean(1)


def coverage_misses(coverage: dict[str, tuple[float, float]], min_real: float = 0.02,
                    band: tuple[float, float] = (0.5, 2.0)) -> tuple[int, list[str]]:
    """The coverage bar on {attribute: (real share, generated share)}: of the attributes with real
    share ≥ `min_real`, how many G draws within `band` × their real share, and which it misses."""
    judged = {a: (r, g) for a, (r, g) in coverage.items() if r >= min_real}
    misses = [a for a, (r, g) in judged.items() if not band[0] * r <= g <= band[1] * r]
    return len(judged) - len(misses), misses
