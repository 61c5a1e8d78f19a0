"""The latent canvas's geometry, without Qt: its axes (attribute directions, principal axes,
random directions) and the plane z = origin + u·a + v·b through a face that the canvas draws.

Pure vector maths on CPU tensors; the window calls it only from jobs on the engine's worker.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

Tensor = torch.Tensor

__all__ = ["Axis", "LatentPlane", "available_directions", "axis_vector", "orthonormal_pair", "principal_axes",
           "random_axes"]

# A direction whose stored vector is shorter than this has no boundary (core.directions zeroes it).
_MIN_DIRECTION_NORM = 0.5


@dataclass(frozen=True)
class Axis:
    """An axis of the canvas: an attribute direction, a principal component, or a random direction."""

    kind: str  # "attribute" | "pc" | "random"
    index: int
    label: str

    def __post_init__(self) -> None:
        if self.kind not in ("attribute", "pc", "random"):
            raise ValueError(f"unknown axis kind {self.kind!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"axis index must be a non-negative integer, got {self.index!r}")


def available_directions(vectors: Tensor | None) -> list[bool] | None:
    """Which attributes have a direction (None: no directions at all)."""
    if vectors is None:
        return None
    return [bool(n >= _MIN_DIRECTION_NORM) for n in vectors.norm(dim=1).tolist()]


def principal_axes(vectors: Tensor, k: int = 2) -> Tensor:
    """The top-k principal axes (k, d) of the attribute directions: where attributes vary most.

    Uncentred SVD of the stacked unit directions; rows without a direction are left out.
    """
    v = vectors.double()
    v = v[v.norm(dim=1) >= _MIN_DIRECTION_NORM]
    if len(v) < k:
        raise ValueError(f"only {len(v)} attribute directions; cannot take {k} principal axes")
    _, _, vh = torch.linalg.svd(v, full_matrices=False)
    return vh[:k].float()


def random_axes(dim: int, seed: int = 0, k: int = 2) -> Tensor:
    """k orthonormal random directions (k, d), reproducible from `seed`."""
    g = torch.Generator().manual_seed(int(seed))
    q, _ = torch.linalg.qr(torch.randn(dim, k, generator=g, dtype=torch.float64))
    return q.T.contiguous().float()


def axis_vector(axis: Axis, vectors: Tensor | None, dim: int) -> Tensor:
    """The unit vector (d,) of `axis`; ValueError when it has none."""
    if axis.kind == "random":
        return random_axes(dim, seed=1000 + axis.index // 2, k=2)[axis.index % 2]
    if vectors is None:
        raise ValueError(f"{axis.label} needs the latent directions, which are not fitted yet")
    if axis.kind == "pc":
        return principal_axes(vectors, axis.index + 1)[axis.index]
    if not 0 <= axis.index < len(vectors):
        raise ValueError(f"attribute index {axis.index} is out of range")
    d = vectors[axis.index].float()
    if d.norm() < _MIN_DIRECTION_NORM:  # the same test as Directions.available
        raise ValueError(f"{axis.label} has no direction: the classifier's reading of it does not change with z")
    return d / d.norm()


def orthonormal_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """(â, b̂): a normalised, b made orthogonal to a and normalised (Gram–Schmidt)."""
    a64, b64 = a.double().reshape(-1), b.double().reshape(-1)
    if a64.shape != b64.shape:
        raise ValueError(f"axes must have the same size, got {tuple(a.shape)} and {tuple(b.shape)}")
    na = a64.norm()
    if na < 1e-9:
        raise ValueError("the first axis is the zero vector")
    a64 = a64 / na
    b64 = b64 - (b64 @ a64) * a64
    nb = b64.norm()
    if nb < 1e-6:
        raise ValueError("the two axes point the same way; pick two different directions")
    return a64.float(), (b64 / nb).float()


class LatentPlane:
    """The plane z = origin + u·a + v·b through a face, with orthonormal axes a and b.

    Grid coordinates run left to right in u and top to bottom in v from +extent to -extent, as
    the canvas draws them (up is +v).
    """

    def __init__(self, origin: Tensor, a: Tensor, b: Tensor, labels: tuple[str, str] = ("u", "v")) -> None:
        self.origin = origin.detach().float().reshape(-1).cpu()
        if self.origin.shape != a.reshape(-1).shape:
            raise ValueError(f"origin has size {self.origin.numel()}, the axes {a.numel()}")
        self.a, self.b = orthonormal_pair(a.cpu(), b.cpu())
        self.labels = labels

    @property
    def dim(self) -> int:
        return self.origin.numel()

    def point(self, u: float, v: float) -> Tensor:
        u, v = _finite(u), _finite(v)
        return self.origin + u * self.a + v * self.b

    def points(self, uv: Sequence[tuple[float, float]]) -> Tensor:
        if not uv:
            return torch.empty(0, self.dim)
        coords = torch.tensor([[_finite(u), _finite(v)] for u, v in uv], dtype=torch.float32)
        return self.origin + coords[:, :1] * self.a + coords[:, 1:] * self.b

    @staticmethod
    def grid_coords(n: int, extent: float) -> list[tuple[float, float]]:
        """n×n (u, v) cell centres, row-major from the top-left, spanning [-extent, extent]."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 33:
            raise ValueError(f"grid size must be an integer from 1 to 33, got {n!r}")
        extent = _finite(extent)
        if extent <= 0:
            raise ValueError(f"extent must be positive, got {extent!r}")
        steps = [0.0] if n == 1 else [-extent + 2 * extent * i / (n - 1) for i in range(n)]
        return [(u, v) for v in reversed(steps) for u in steps]

    def grid(self, n: int, extent: float) -> Tensor:
        return self.points(self.grid_coords(n, extent))

    def project(self, z: Tensor) -> tuple[float, float]:
        """(u, v) of z's orthogonal projection onto the plane."""
        d = z.detach().float().reshape(-1).cpu() - self.origin
        return float(d @ self.a), float(d @ self.b)


def _finite(x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"coordinates must be finite, got {x!r}")
    return x
