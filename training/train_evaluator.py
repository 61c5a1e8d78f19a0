"""Train the evaluator: the independent 40-attribute classifier that grades edits and inversions.

    python -m training.train_evaluator --data ../shared/data/celeba --out runs/evaluator

Same loop as the steering classifier (`training.train_classifier`), but another architecture
family (`core.models.Evaluator`), another seed and data order, and strong augmentation, so that
it does not share the steering classifier's blind spots. Trained on the training split only;
nothing that makes an edit (steering, directions, inversion, any loss) may load it.
"""
from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F

from training.train_classifier import parse_args, train


def strong_augment(x: torch.Tensor, shift: float = 4 / 32, scale: float = 0.1, degrees: float = 10.0,
                   jitter: float = 0.2) -> torch.Tensor:
    """Random similarity warp (±4 px, ±10 %, ±10°, reflection at the border) and colour jitter.

    Flips come from the batch sampler. Brightness, contrast and saturation each move by up to
    ±`jitter`; hue is left alone (it would change hair-colour labels).
    """
    n, device = len(x), x.device
    u = lambda: torch.rand(n, device=device) * 2 - 1  # noqa: E731 — uniform in [-1, 1]
    angle, s = u() * math.radians(degrees), 1 + u() * scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, u() * shift], 1), torch.stack([sin, cos, u() * shift], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x.contiguous(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = grey + (x - grey) * (1 + jitter * u()).view(n, 1, 1, 1)  # saturation
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1 + jitter * u()).view(n, 1, 1, 1)  # contrast
    x = x + jitter * u().view(n, 1, 1, 1)  # brightness ([-1, 1] range: ±0.2 is ±10 %)
    return x.clamp(-1, 1).contiguous(memory_format=torch.channels_last)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__.split("\n")[0], "runs/evaluator", width=24, dropout=0.3, seed=1, epochs=40)
    return train(args, kind="evaluator", augment=strong_augment)


if __name__ == "__main__":
    main(sys.argv[1:])
