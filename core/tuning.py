"""Pivotal tuning (PTI, Roich et al. 2021): fit a copy of G to one photo around its inverted z.

A 64-px DCGAN cannot reach most real faces with z alone (the inversion plateaus near 19 dB and
often reads as another person), so after the z refinement the generator's weights are nudged
so that G(z_pivot) reproduces the photo: pixel + classifier-feature loss at the pivot, plus a
locality term that keeps the tuned G's output equal to the original's at a few random codes
around the pivot, so the rest of the latent space and the edits still behave.

The change is stored as `GeneratorDelta`: fp16 differences of only the tensors that changed,
on the CPU (the shipped 64-px G: 1.8 MB per photo), applied to a copy of G on demand.
"""
from __future__ import annotations

import copy
import math
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import torch
from torch import nn

from core.device import PRECISIONS, autocast, resolve_precision
from core.latent import sample_codes
from core.losses import maps_distance, normalised_maps, pixel_loss
from core.metrics import psnr


@dataclass
class TuneConfig:
    steps: int = 50
    lr: float = 5e-4  # 1e-3 overshoots in the first steps: lower PSNR and weaker edits (measured)
    w_pixel: float = 1.0
    w_feature: float = 0.5
    w_locality: float = 1.0  # far codes (from the prior): tuned G(z) = G(z)
    locality_prior: int = 1  # such codes per step
    w_edit: float = 3.0  # near codes: tuned G(z') − G(z') = tuned G(z*) − G(z*), so edits act as on G
    locality_codes: int = 4  # such codes per step, z* + radius·u (u: half edit directions, half random)
    locality_radius: float = 2.5  # the sliders' typical reach (‖z‖ ≈ √d ≈ 11 for d = 128)
    tune: tuple[str, ...] = ()  # parameter-name prefixes to tune; () = all
    seed: int = 0
    # forward and backward passes (core.device.PRECISIONS): auto = bf16 where the device has native
    # bf16 units (the tuning's batch of 6 gains; one face's steering does not); weights stay fp32
    precision: str = "auto"

    def override(self, **values: object) -> "TuneConfig":
        """A copy with the given fields replaced; None means "keep" (unset command-line options)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def validate(self) -> None:
        if not (isinstance(self.steps, int) and 0 <= self.steps <= 10_000):
            raise ValueError(f"tuning steps must be an integer in [0, 10000], got {self.steps!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"tuning lr must be positive, got {self.lr!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"tuning precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("locality_codes", "locality_prior"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 <= value <= 64):
                raise ValueError(f"{name} must be an integer in [0, 64], got {value!r}")


@dataclass
class GeneratorDelta:
    """A face's own generator, as the fp16 change of the tensors that moved (CPU)."""

    base_hash: str  # state_hash of the generator it applies to
    tensors: dict[str, torch.Tensor]  # parameter name -> fp16 delta
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    # the photo the face came from and where it sits in it (core.align.PhotoPlacement), so its
    # edits and GIFs can be pasted back; it travels with the face as the generator does
    photo: Any = field(default=None, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        """The weight change's bytes (the photo kept for paste-back is `photo.nbytes` more)."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def apply(self, base: nn.Module) -> nn.Module:
        """A frozen copy of `base` with this change added (the base stays untouched)."""
        tuned = copy.deepcopy(base)
        params = dict(tuned.named_parameters())
        missing = set(self.tensors) - set(params)
        if missing:
            raise ValueError(f"this face's generator change does not fit the generator (no {sorted(missing)[0]})")
        wrong = sorted(n for n, t in self.tensors.items() if t.numel() != params[n].numel())
        if wrong:
            raise ValueError(f"this face's generator change does not fit the generator ({wrong[0]} holds "
                             f"{self.tensors[wrong[0]].numel():,} values, the generator's {params[wrong[0]].numel():,})")
        with torch.no_grad():
            for name, delta in self.tensors.items():
                params[name].add_(delta.to(params[name].device, torch.float32).view_as(params[name]))
        return tuned.requires_grad_(False)

    def to_dict(self) -> dict:
        return {"base_hash": self.base_hash, "tensors": dict(self.tensors), "key": self.key}

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorDelta":
        return cls(base_hash=str(d["base_hash"]), tensors={str(k): v.half() for k, v in d["tensors"].items()},
                   key=str(d.get("key") or uuid.uuid4().hex))


def make_delta(base: nn.Module, tuned: nn.Module, base_hash: str) -> GeneratorDelta:
    """fp16 differences of the parameters that changed (unchanged tensors are left out)."""
    base_params = dict(base.named_parameters())
    tensors = {}
    for name, p in tuned.named_parameters():
        d = (p.detach().float() - base_params[name].detach().float()).half().cpu()
        if bool(d.ne(0).any()):
            tensors[name] = d.contiguous()
    return GeneratorDelta(base_hash=base_hash, tensors=tensors)


@dataclass
class TuneStep:
    step: int
    total: int
    image: torch.Tensor  # (1, 3, 64, 64) CPU, tuned G(z_pivot)
    loss: float
    psnr_db: float


@dataclass
class TuneResult:
    delta: GeneratorDelta
    image: torch.Tensor  # (1, 3, 64, 64) CPU, G_tuned(z_pivot) with the stored (fp16) change
    psnr_db: float
    psnr_before_db: float


def tune_generator(generator: nn.Module, classifier: nn.Module | None, z: torch.Tensor, target: torch.Tensor,
                   config: TuneConfig | None = None, base_hash: str | None = None,
                   directions: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> Iterator[TuneStep]:
    """Generator job: Adam on a copy of G's weights; yields each step, returns `TuneResult`.

    `generator` is left unchanged; `z` (1, d) is the pivot, `target` (1, 3, 64, 64) in [-1, 1].
    `directions` (K, d), optional: the edit directions the near codes are drawn along (half of
    them; the rest in random directions), so the sliders keep working on the tuned face.
    `weight` (64, 64), optional: how much each pixel of the target counts (`core.losses`).
    """
    from core.checkpoint import state_hash

    config = config or TuneConfig()
    config.validate()
    device = next(generator.parameters()).device
    x = target.to(device).float().reshape(1, 3, *target.shape[-2:])
    z = z.to(device).float().reshape(1, -1)
    d = z.shape[1]
    tuned = copy.deepcopy(generator).train(False)
    for name, p in tuned.named_parameters():
        p.requires_grad_(not config.tune or name.startswith(tuple(config.tune)))
    gen = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        image0 = generator(z)
        target_maps = normalised_maps(classifier, x) if classifier is not None and config.w_feature > 0 else None
    before = float(psnr(image0, x)[0])
    dirs = None if directions is None or not len(directions) else directions.float().cpu()
    n_near = config.locality_codes if config.w_edit > 0 else 0
    n_far = config.locality_prior if config.w_locality > 0 else 0

    def other_codes() -> torch.Tensor:
        u = torch.randn(n_near, d, generator=gen)
        if dirs is not None:
            picks = torch.randint(len(dirs), (n_near // 2,), generator=gen)
            u[: n_near // 2] = dirs[picks] * torch.where(torch.rand(len(picks), 1, generator=gen) < 0.5, -1.0, 1.0)
        near = z.cpu() + config.locality_radius * u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return torch.cat([near, sample_codes(generator, n_far, gen)]).to(device)

    opt = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=config.lr)
    precision = resolve_precision(config.precision, device)
    for step in range(config.steps):
        others = other_codes()
        with autocast(device, precision=precision):
            out = tuned(torch.cat([z, others])).float()
            image = out[:1]
            maps = normalised_maps(classifier, image) if target_maps is not None else None
            if len(others):
                with torch.no_grad():
                    ref = generator(others).float()
        loss = config.w_pixel * pixel_loss(image, x, weight)
        if maps is not None:
            loss = loss + config.w_feature * maps_distance(maps, target_maps, weight).mean()
        if len(others):
            with torch.no_grad():
                offset = image - image0  # what tuning adds at the pivot: near codes should get the same
            if n_near:
                loss = loss + config.w_edit * (out[1:1 + n_near] - ref[:n_near] - offset).square().mean()
            if n_far:
                loss = loss + config.w_locality * (out[1 + n_near:] - ref[n_near:]).square().mean()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError("generator tuning diverged (the loss became infinite)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield TuneStep(step=step + 1, total=config.steps, image=image.detach().cpu(), loss=value,
                       psnr_db=float(psnr(image.detach(), x)[0]))
    delta = make_delta(generator, tuned, base_hash or state_hash(generator))
    del tuned, opt
    with torch.no_grad():
        image = delta.apply(generator)(z)
    return TuneResult(delta=delta, image=image.cpu(), psnr_db=float(psnr(image, x)[0]), psnr_before_db=before)
