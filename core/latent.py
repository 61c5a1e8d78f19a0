"""Latent-space maths: interpolation, keyframe paths, direction walks and random walks.

The generator was trained on z ~ N(0, I). In d dimensions such samples sit on a thin shell of
radius ≈ sqrt(d), not near the origin, so paths here are built to stay on that shell: straight
lines between two samples cut through the low-density interior (washed-out, "average" faces),
which is why `slerp` is the default and why steering steps are followed by `renormalise`.

A latent is a float tensor of shape (d,) or a batch (N, d). Nothing here imports Qt.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Tensor = torch.Tensor

# Above this |cos| of the angle between two latents (about 1.8 degrees), slerp's sin(Ω) in the
# denominator loses precision; lerp is then indistinguishable from the arc, so we use it.
_PARALLEL_COS = 0.9995
MODES = ("slerp", "lerp")


# ---------------------------------------------------------------------------------------------
# Validation helpers


def _check_latent(z: Tensor, name: str = "z") -> None:
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(z).__name__}")
    if not z.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {z.dtype}")
    if z.dim() not in (1, 2) or z.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (d,) or (N, d), got {tuple(z.shape)}")


def _check_pair(z0: Tensor, z1: Tensor) -> None:
    _check_latent(z0, "z0")
    _check_latent(z1, "z1")
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")


def _as_t(t: float | Sequence[float] | Tensor, like: Tensor) -> tuple[Tensor, bool]:
    """t as a float64 tensor shaped to broadcast against `like`, plus whether it was a list of T.

    A scalar gives shape (1,)*like.dim(); T values give (T, 1, ..., 1), so the output gets a
    leading T axis.
    """
    tt = torch.as_tensor(t, dtype=torch.float64, device=like.device)
    if tt.dim() > 1:
        raise ValueError(f"t must be a number or a 1-D sequence of numbers, got shape {tuple(tt.shape)}")
    if not torch.isfinite(tt).all():
        raise ValueError("t must be finite")
    if tt.dim() == 0:
        return tt.reshape((1,) * like.dim()), False
    return tt.reshape((-1,) + (1,) * like.dim()), True


def _finish(out: Tensor, batched: bool, like: Tensor) -> Tensor:
    out = out.to(like.dtype)
    return out if batched else out.reshape(like.shape)


# ---------------------------------------------------------------------------------------------
# Norms


def typical_norm(dim: int) -> float:
    """Radius of the shell where N(0, I) samples in `dim` dimensions concentrate: sqrt(dim)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    return math.sqrt(dim)


def on_sphere(generator: torch.nn.Module) -> bool:
    """Whether `generator` takes prior z (kept on the shell by `renormalise`), not e.g. a style G's w."""
    return getattr(generator, "code_space", "z") == "z"


def sample_codes(generator: torch.nn.Module, n: int, rng: torch.Generator | None = None) -> Tensor:
    """`n` random codes (CPU) for `generator`: z ~ N(0, I), or what its own `sample_codes` draws."""
    sample = getattr(generator, "sample_codes", None)
    if sample is not None:
        return sample(n, rng)
    return torch.randn(n, generator.z_dim, generator=rng)


def renormalise(z: Tensor) -> Tensor:
    """Scale each row of z to the typical norm sqrt(d), keeping its direction.

    Steering adds vectors to z; repeated steps drift off the shell the generator was trained on
    and images degrade. Projecting back after each step keeps z in-distribution.
    """
    _check_latent(z)
    norms = z.double().norm(dim=-1, keepdim=True)
    if (norms == 0).any():
        raise ValueError("cannot renormalise a zero vector: it has no direction")
    return (z.double() * (typical_norm(z.shape[-1]) / norms)).to(z.dtype)


# ---------------------------------------------------------------------------------------------
# Interpolation


def lerp(z0: Tensor, z1: Tensor, t: float | Sequence[float] | Tensor) -> Tensor:
    """Straight-line interpolation (1 - t)·z0 + t·z1.

    `t` is a number (output shaped like z0) or T numbers (output (T, *z0.shape)). Exact at t = 0
    and t = 1. Use it for small steps; across long distances it dips towards the origin.
    """
    _check_pair(z0, z1)
    tt, batched = _as_t(t, z0)
    a, b = z0.double(), z1.double()
    out = (1 - tt) * a + tt * b
    out = torch.where(tt == 0, a, torch.where(tt == 1, b, out))
    return _finish(out, batched, z0)


def slerp(z0: Tensor, z1: Tensor, t: float | Sequence[float] | Tensor) -> Tensor:
    """Spherical interpolation along the great arc from z0 to z1 (row-wise for batches).

    For endpoints of equal norm every point on the path has that norm, so a path between two
    prior samples never passes through the low-density middle. Exact at t = 0 and t = 1. Where
    the vectors are (anti)parallel or nearly so the arc is undefined or numerically unstable,
    and lerp is used for that row instead (for antiparallel vectors this passes through 0).
    `t` is a number or T numbers, as in `lerp`.
    """
    _check_pair(z0, z1)
    tt, batched = _as_t(t, z0)
    a, b = z0.double(), z1.double()
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    degenerate = (na == 0) | (nb == 0)
    cos = ((a * b).sum(dim=-1, keepdim=True) / (na * nb).clamp_min(1e-300)).clamp(-1.0, 1.0)
    use_lerp = degenerate | (cos.abs() > _PARALLEL_COS)
    omega = torch.acos(cos)
    sin_omega = torch.sin(omega)
    safe_sin = torch.where(use_lerp, torch.ones_like(sin_omega), sin_omega)
    arc = (torch.sin((1 - tt) * omega) * a + torch.sin(tt * omega) * b) / safe_sin
    line = (1 - tt) * a + tt * b
    out = torch.where(use_lerp, line, arc)
    out = torch.where(tt == 0, a, torch.where(tt == 1, b, out))
    return _finish(out, batched, z0)


def interpolator(mode: str):
    """`slerp` or `lerp` by name; an unknown name is a ValueError."""
    if mode == "slerp":
        return slerp
    if mode == "lerp":
        return lerp
    raise ValueError(f"unknown interpolation mode {mode!r}; expected one of {', '.join(MODES)}")


def keyframe_path(
    keyframes: list[Tensor] | Tensor,
    frames_per_segment: int,
    mode: str = "slerp",
    loop: bool = False,
) -> Tensor:
    """A path (F, d) through every keyframe, `frames_per_segment` frames from one to the next.

    Each segment contributes its start keyframe and the in-between frames, never its end, so
    joins are not duplicated (a duplicated frame reads as a stutter in a GIF). Without `loop`
    the last keyframe closes the path: F = (K - 1)·frames_per_segment + 1. With `loop` a final
    segment returns towards the first keyframe, which is not repeated at the end because the
    player wraps to it: F = K·frames_per_segment. Keyframes appear exactly, at indices
    k·frames_per_segment.
    """
    if isinstance(keyframes, torch.Tensor):
        _check_latent(keyframes, "keyframes")
        if keyframes.dim() != 2:
            raise ValueError(f"a keyframe tensor must have shape (K, d), got {tuple(keyframes.shape)}")
        keys = list(keyframes)
    else:
        keys = list(keyframes)
        for i, k in enumerate(keys):
            _check_latent(k, f"keyframes[{i}]")
            if k.dim() != 1:
                raise ValueError(f"keyframes[{i}] must have shape (d,), got {tuple(k.shape)}")
            if k.shape != keys[0].shape:
                raise ValueError(
                    f"all keyframes must have the same shape; keyframes[0] is {tuple(keys[0].shape)}, "
                    f"keyframes[{i}] is {tuple(k.shape)}"
                )
    if len(keys) < 2:
        raise ValueError(f"a keyframe path needs at least 2 keyframes, got {len(keys)}")
    if isinstance(frames_per_segment, bool) or not isinstance(frames_per_segment, int) or frames_per_segment < 1:
        raise ValueError(f"frames_per_segment must be an integer >= 1, got {frames_per_segment!r}")
    interpolate = interpolator(mode)
    ts = torch.arange(frames_per_segment, dtype=torch.float64) / frames_per_segment
    ends = keys[1:] + ([keys[0]] if loop else [])
    parts = [interpolate(start, end, ts) for start, end in zip(keys, ends)]
    if not loop:
        parts.append(keys[-1].unsqueeze(0))
    return torch.cat(parts, dim=0)


# ---------------------------------------------------------------------------------------------
# Walks


def direction_walk(z: Tensor, direction: Tensor, alphas: Sequence[float] | Tensor) -> Tensor:
    """z + α·d̂ for each α, with d̂ the unit-length `direction`: output (T, *z.shape).

    Normalising d makes α mean the same distance for every attribute direction, whatever scale
    the direction was found at, so one slider range fits them all.
    """
    _check_latent(z)
    _check_latent(direction, "direction")
    if direction.dim() != 1 or direction.shape[-1] != z.shape[-1]:
        raise ValueError(f"direction must have shape ({z.shape[-1]},), got {tuple(direction.shape)}")
    norm = direction.double().norm()
    if norm == 0:
        raise ValueError("direction is the zero vector")
    a = torch.as_tensor(alphas, dtype=torch.float64, device=z.device)
    if a.dim() != 1:
        raise ValueError(f"alphas must be a 1-D sequence of numbers, got shape {tuple(a.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError("alphas must be finite")
    unit = (direction.double() / norm).to(z.device)
    out = z.double().unsqueeze(0) + a.reshape((-1,) + (1,) * z.dim()) * unit
    return out.to(z.dtype)


def max_alpha(z_dim: int) -> float:
    """The largest edit strength along a unit direction that a generator's directions support.

    z ~ N(0, I) has length about √z_dim, and a unit direction's coordinate in it is about ±3 at
    most; a step of 2·√z_dim is already twice the whole of z, so the edit, not the face, is all
    that is left of it. Beyond that (e.g. `--set Smiling=1e6`) the result is saturated garbage.
    """
    if not isinstance(z_dim, int) or z_dim < 1:
        raise ValueError(f"z_dim must be a positive integer, got {z_dim!r}")
    return 2.0 * math.sqrt(z_dim)


def alpha_range(max_alpha: float, frames: int, pingpong: bool = False) -> Tensor:
    """Step sizes for a direction walk, float32 of length `frames`.

    Without `pingpong`: evenly from -max_alpha to +max_alpha, both included. With `pingpong`:
    one period of a looping sweep 0 → +max → -max → 0 (a triangle wave), the closing 0 left out
    because a looping GIF wraps to the first frame; ±max are hit exactly when 4 divides frames.
    """
    if not math.isfinite(max_alpha) or max_alpha <= 0:
        raise ValueError(f"max_alpha must be a positive finite number, got {max_alpha!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2, got {frames!r}")
    if not pingpong:
        return torch.linspace(-max_alpha, max_alpha, frames, dtype=torch.float64).float()
    phase = torch.arange(frames, dtype=torch.float64) / frames  # [0, 1)
    tri = torch.where(phase < 0.25, 4 * phase, torch.where(phase < 0.75, 2 - 4 * phase, 4 * phase - 4))
    return (max_alpha * tri).float()


def random_walk(
    z: Tensor,
    steps: int,
    step_size: float,
    seed: int,
    smoothness: float = 0.9,
) -> Tensor:
    """A reproducible, smooth wander on the typical-norm shell: output (steps + 1, *z.shape).

    Frame 0 is `renormalise(z)`; every frame has norm sqrt(d) and each move is an arc of length
    `step_size` on that sphere. The heading is a momentum blend (`smoothness` in [0, 1): how
    much of the previous heading is kept) with fresh Gaussian noise, so the path drifts instead
    of jittering. Noise comes from a CPU generator seeded with `seed`, so the same seed gives
    the same walk on any device.
    """
    _check_latent(z)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a positive finite number, got {step_size!r}")
    if not 0 <= smoothness < 1:
        raise ValueError(f"smoothness must be in [0, 1), got {smoothness!r}")
    gen = torch.Generator().manual_seed(int(seed))
    radius = typical_norm(z.shape[-1])
    theta = step_size / radius  # arc length -> angle

    def tangent_unit(v: Tensor, at: Tensor) -> Tensor:
        """v minus its component along `at` (a point on the sphere), scaled to unit length."""
        v = v - (v * at).sum(dim=-1, keepdim=True) / radius**2 * at
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    cur = renormalise(z).double().cpu()
    heading = tangent_unit(torch.randn(cur.shape, generator=gen, dtype=torch.float64), cur)
    keep, fresh = smoothness, math.sqrt(1 - smoothness**2)
    out = [cur]
    for _ in range(steps):
        noise = tangent_unit(torch.randn(cur.shape, generator=gen, dtype=torch.float64), cur)
        heading = tangent_unit(keep * heading + fresh * noise, cur)
        # Move along the great circle through `cur` in direction `heading`.
        nxt = math.cos(theta) * cur + math.sin(theta) * radius * heading
        # Carry the heading along the arc (parallel transport), so momentum means "keep going".
        heading = tangent_unit(-math.sin(theta) * cur / radius + math.cos(theta) * heading, nxt)
        cur = nxt * (radius / nxt.norm(dim=-1, keepdim=True))  # remove rounding drift
        out.append(cur)
    return torch.stack(out).to(device=z.device, dtype=z.dtype)
