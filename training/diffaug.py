"""Differentiable augmentation (Zhao et al., 2020, "DiffAugment") for data-efficient GANs.

The same random colour / translation / cutout is applied to real and generated images before
the discriminator sees them, in both the D and the G step; since every op is differentiable,
G still gets gradients, and D cannot memorise 8,000 faces.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    if text in ("", "none"):
        return ()
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in POLICIES]
    if bad:
        raise ValueError(f"unknown DiffAugment op(s) {bad}; choose from {POLICIES} or 'none'")
    return parts


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    for op in policy:
        x = _OPS[op](x)
    return x


def _color(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    r = lambda: torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)  # noqa: E731
    x = x + (r() - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (r() * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (r() + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy.unsqueeze(0) + ty + 1).clamp(0, h + 1)
    gx = (gx.unsqueeze(0) + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))  # zeros outside, as in the paper
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx_n, gy, gx].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    dy = gy.unsqueeze(0) - cy + ch // 2
    dx = gx.unsqueeze(0) - cx + cw // 2
    inside = (dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}
