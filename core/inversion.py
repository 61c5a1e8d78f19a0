"""Real photo -> z: the aligned face crop (`core.align.crop_face`), encode, then refine z by
optimisation. Refinement: Adam on z against pixel + classifier-feature
loss, a prior term that keeps ‖z‖ typical, and an encoder-consistency term ‖z − E(G(z))‖².
After it, `core.tuning` fits the face's own generator (pivotal tuning).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn

from core.data import to_model_range
from core.latent import on_sphere
from core.losses import maps_distance, normalised_maps, pixel_loss
from core.metrics import psnr
from core.tuning import TuneConfig

# ---------------------------------------------------------------------------------------------


@dataclass
class InvertConfig:
    steps: int = 40  # with generator tuning after it, 40 steps reach what 100 did (measured)
    lr: float = 0.05
    w_pixel: float = 1.0
    w_feature: float = 0.5
    w_prior: float = 0.05
    w_encoder: float = 0.05
    tune: TuneConfig = field(default_factory=TuneConfig)  # the engine's pivotal-tuning stage (steps=0: off)
    mask_padding: bool = True  # the engine leaves a crop's filled-in border out of the image losses

    def validate(self) -> None:
        self.tune.validate()
        if not (isinstance(self.steps, int) and 0 <= self.steps <= 10_000):
            raise ValueError(f"steps must be an integer in [0, 10000], got {self.steps!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr!r}")


@dataclass
class InvertStep:
    step: int
    total: int
    z: torch.Tensor  # (1, d) CPU
    image: torch.Tensor  # (1, 3, 64, 64) in [-1, 1], CPU
    loss: float
    psnr_db: float


@dataclass
class InvertResult:
    z: torch.Tensor  # (1, d) CPU: the best z found
    z_encoder: torch.Tensor  # (1, d) CPU: E(x), before refinement
    image: torch.Tensor  # (1, 3, 64, 64) CPU: G(z)
    psnr_db: float
    psnr_encoder_db: float


def invert(generator: nn.Module, encoder: nn.Module, classifier: nn.Module | None, target: torch.Tensor,
           config: InvertConfig | None = None, weight: torch.Tensor | None = None) -> Iterator[InvertStep]:
    """Generator job: z₀ = E(x), then `steps` of Adam on z; returns `InvertResult`.

    Yields the encoder's guess first (step 0, a preview before any optimisation; its `loss` is
    not computed), then each step.

    `target` is a (3, 64, 64) uint8 face (from `crop_face`) or a (1, 3, 64, 64) float in [-1, 1];
    `weight` (64, 64), optional: how much each pixel counts in the image losses (`core.losses`).
    """
    config = config or InvertConfig()
    config.validate()
    device = next(generator.parameters()).device
    x = target.to(device)
    x = to_model_range(x) if x.dtype == torch.uint8 else x.float()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    with torch.no_grad():
        z0 = encoder(x).float()
        target_maps = normalised_maps(classifier, x) if classifier is not None and config.w_feature > 0 else None
        image0 = generator(z0)
    psnr0 = float(psnr(image0, x)[0])
    yield InvertStep(step=0, total=config.steps, z=z0.cpu(), image=image0.cpu(), loss=math.nan, psnr_db=psnr0)
    d = z0.shape[1]
    sphere = on_sphere(generator)

    def loss_of(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = generator(z)
        loss = config.w_pixel * pixel_loss(image, x, weight)
        if target_maps is not None:
            loss = loss + config.w_feature * maps_distance(normalised_maps(classifier, image), target_maps, weight).mean()
        if sphere:  # keep z near the prior's shell (a style G's w has none)
            loss = loss + config.w_prior * (z.square().sum() / d - 1).square()
        if config.w_encoder > 0:
            loss = loss + config.w_encoder * (z - encoder(image)).square().mean()
        return loss, image

    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=config.lr)
    best = (float("inf"), z0.clone(), image0, psnr0)
    for step in range(config.steps):
        loss, image = loss_of(z)
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        if value < best[0]:
            best = (value, z.detach().clone(), image.detach(), float(psnr(image.detach(), x)[0]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield InvertStep(step=step + 1, total=config.steps, z=z.detach().cpu(), image=image.detach().cpu(),
                         loss=value, psnr_db=best[3])
    if config.steps:
        with torch.no_grad():
            loss, image = loss_of(z)
            if float(loss) < best[0]:
                best = (float(loss), z.detach().clone(), image, float(psnr(image, x)[0]))
    _, z_best, image_best, psnr_best = best
    return InvertResult(z=z_best.cpu(), z_encoder=z0.cpu(), image=image_best.cpu(), psnr_db=psnr_best,
                        psnr_encoder_db=psnr0)
