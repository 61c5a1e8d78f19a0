"""Latent maths: interpolation endpoints and norms, path lengths, walks that go where they say."""
from __future__ import annotations

import math

import pytest
import torch

from core.latent import (
    alpha_range,
    direction_walk,
    keyframe_path,
    lerp,
    random_walk,
    renormalise,
    slerp,
    typical_norm,
)

D = 128


def _z(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, D, generator=torch.Generator().manual_seed(seed))


def test_typical_norm_and_renormalise() -> None:
    assert typical_norm(D) == pytest.approx(math.sqrt(D))
    z = _z(0, 5) * torch.tensor([0.1, 1.0, 3.0, 10.0, 100.0]).unsqueeze(1)
    r = renormalise(z)
    assert torch.allclose(r.norm(dim=1), torch.full((5,), math.sqrt(D)), rtol=1e-6)
    cos = torch.nn.functional.cosine_similarity(r, z, dim=1)
    assert torch.allclose(cos, torch.ones(5), atol=1e-6)  # direction kept
    assert renormalise(z[0]).shape == (D,)
    with pytest.raises(ValueError, match="zero vector"):
        renormalise(torch.zeros(D))
    with pytest.raises(ValueError):
        typical_norm(0)


def test_lerp_midpoint_endpoints_and_t_axis() -> None:
    z0, z1 = _z(1), _z(2)
    assert torch.allclose(lerp(z0, z1, 0.5), (z0 + z1) / 2, atol=1e-6)
    path = lerp(z0, z1, torch.tensor([0.0, 0.25, 1.0]))
    assert path.shape == (3, D)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    assert torch.allclose(path[1], 0.75 * z0 + 0.25 * z1, atol=1e-6)


def test_slerp_exact_endpoints_and_constant_norm() -> None:
    z0, z1 = renormalise(_z(3)), renormalise(_z(4))
    ts = torch.linspace(0, 1, 21)
    path = slerp(z0, z1, ts)
    assert path.shape == (21, D)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    assert torch.allclose(path.norm(dim=1), torch.full((21,), math.sqrt(D)), rtol=1e-5)
    # Equal angular steps: consecutive frames are equally far apart (unlike a renormalised lerp).
    steps = (path[1:] - path[:-1]).norm(dim=1)
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-4)
    # The midpoint is the normalised mean direction, at full norm (lerp's midpoint dips inside).
    mid = slerp(z0, z1, 0.5)
    assert torch.allclose(mid, renormalise((z0 + z1) / 2), atol=1e-4)
    assert lerp(z0, z1, 0.5).norm() < mid.norm() - 1


def test_slerp_batched_matches_rowwise() -> None:
    a, b = _z(5, 4), _z(6, 4) * 2
    ts = torch.tensor([0.0, 0.3, 1.0])
    batched = slerp(a, b, ts)
    assert batched.shape == (3, 4, D)
    for i in range(4):
        assert torch.allclose(batched[:, i], slerp(a[i], b[i], ts), atol=1e-6)
    assert torch.equal(batched[0], a) and torch.equal(batched[-1], b)
    assert slerp(a, b, 0.3).shape == (4, D)


def test_slerp_falls_back_to_lerp_for_parallel_vectors() -> None:
    z = _z(7)
    for other in (2 * z, -z, z + 1e-7 * _z(8), torch.zeros(D)):
        out = slerp(z, other, torch.tensor([0.0, 0.4, 1.0]))
        assert torch.isfinite(out).all()
        assert torch.allclose(out, lerp(z, other, torch.tensor([0.0, 0.4, 1.0])), atol=1e-5)
    # Mixed batch: only the degenerate row falls back; the other row stays on the arc.
    a = torch.stack([z, renormalise(_z(9))])
    b = torch.stack([-z, renormalise(_z(10))])
    out = slerp(a, b, 0.5)
    assert torch.allclose(out[0], torch.zeros(D), atol=1e-5)
    assert out[1].norm() == pytest.approx(math.sqrt(D), rel=1e-5)


def test_interpolation_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same shape"):
        slerp(_z(0), _z(1, 2), 0.5)
    with pytest.raises(ValueError, match="same shape"):
        lerp(_z(0), torch.zeros(D + 1), 0.5)
    with pytest.raises(ValueError, match="floating-point"):
        slerp(torch.zeros(D, dtype=torch.long), torch.zeros(D, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="shape"):
        lerp(torch.zeros(2, 3, D), torch.zeros(2, 3, D), 0.5)


@pytest.mark.parametrize("mode", ["slerp", "lerp"])
def test_keyframe_path_passes_through_keyframes(mode: str) -> None:
    keys = [renormalise(_z(i)) for i in range(4)]
    n = 5
    path = keyframe_path(keys, n, mode=mode)
    assert path.shape == ((4 - 1) * n + 1, D)
    for k, key in enumerate(keys):
        assert torch.equal(path[k * n], key)
    # No duplicated frame at a join: every consecutive pair moves.
    assert ((path[1:] - path[:-1]).norm(dim=1) > 1e-3).all()
    # A (K, d) tensor is accepted as well.
    assert torch.equal(keyframe_path(torch.stack(keys), n, mode=mode), path)


def test_keyframe_path_loop() -> None:
    keys = torch.stack([renormalise(_z(i)) for i in range(3)])
    n = 4
    path = keyframe_path(keys, n, loop=True)
    assert path.shape == (3 * n, D)
    for k in range(3):
        assert torch.equal(path[k * n], keys[k])
    assert not torch.allclose(path[-1], keys[0])  # the first frame is not repeated at the end
    assert torch.allclose(path[-1], slerp(keys[2], keys[0], (n - 1) / n), atol=1e-6)
    # The wrap-around step is as long as the others in the last segment.
    last = (path[-1] - path[-2]).norm()
    wrap = (keys[0] - path[-1]).norm()
    assert wrap == pytest.approx(last.item(), rel=1e-4)
    # One frame per segment: just the keyframes.
    assert torch.equal(keyframe_path(keys, 1), keys)
    assert torch.equal(keyframe_path(keys, 1, loop=True), keys)


def test_keyframe_path_errors() -> None:
    z = _z(0)
    with pytest.raises(ValueError, match="at least 2 keyframes"):
        keyframe_path([z], 4)
    with pytest.raises(ValueError, match="at least 2 keyframes"):
        keyframe_path(z.unsqueeze(0), 4)
    with pytest.raises(ValueError, match="frames_per_segment"):
        keyframe_path([z, z], 0)
    with pytest.raises(ValueError, match="unknown interpolation mode"):
        keyframe_path([z, _z(1)], 4, mode="cubic")
    with pytest.raises(ValueError, match="same shape"):
        keyframe_path([z, torch.zeros(D + 1)], 4)


def test_direction_walk_moves_exactly_alpha_along_unit_direction() -> None:
    z = _z(11)
    direction = 7.5 * _z(12)
    alphas = torch.tensor([-3.0, 0.0, 0.5, 2.0])
    walk = direction_walk(z, direction, alphas)
    assert walk.shape == (4, D)
    unit = direction / direction.norm()
    for a, frame in zip(alphas, walk):
        delta = frame - z
        assert delta.norm() == pytest.approx(abs(a.item()), abs=1e-5)
        assert torch.dot(delta, unit) == pytest.approx(a.item(), abs=1e-5)
    assert torch.equal(walk[1], z)
    with pytest.raises(ValueError, match="zero vector"):
        direction_walk(z, torch.zeros(D), alphas)
    with pytest.raises(ValueError, match="direction must have shape"):
        direction_walk(z, torch.ones(D + 1), alphas)


def test_alpha_range() -> None:
    a = alpha_range(2.0, 5, pingpong=False)
    assert torch.allclose(a, torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]))
    p = alpha_range(2.0, 8, pingpong=True)
    assert torch.allclose(p, torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0, -1.0, -2.0, -1.0]))
    # As a loop, the wrap from the last frame back to the first is an ordinary step.
    assert abs(p[0] - p[-1]) == pytest.approx(abs(p[1] - p[0]).item())
    with pytest.raises(ValueError, match="frames"):
        alpha_range(1.0, 1)
    with pytest.raises(ValueError, match="max_alpha"):
        alpha_range(-1.0, 8)


def test_random_walk_reproducible_smooth_and_on_the_shell() -> None:
    z = _z(13) * 1.3
    walk = random_walk(z, steps=50, step_size=0.5, seed=7)
    assert walk.shape == (51, D)
    assert torch.equal(walk, random_walk(z, steps=50, step_size=0.5, seed=7))
    assert not torch.allclose(walk, random_walk(z, steps=50, step_size=0.5, seed=8))
    assert torch.allclose(walk[0], renormalise(z), atol=1e-6)
    assert torch.allclose(walk.norm(dim=1), torch.full((51,), math.sqrt(D)), rtol=1e-5)
    # Every move is an arc of length step_size (chord slightly shorter).
    steps = (walk[1:] - walk[:-1]).norm(dim=1)
    assert torch.allclose(steps, torch.full((50,), 0.5), rtol=1e-3)
    # Smooth: consecutive headings are strongly aligned, unlike independent random steps.
    moves = walk[1:] - walk[:-1]
    cos = torch.nn.functional.cosine_similarity(moves[1:], moves[:-1], dim=1)
    assert cos.mean() > 0.6
    with pytest.raises(ValueError, match="steps"):
        random_walk(z, 0, 0.5, 0)
    with pytest.raises(ValueError, match="step_size"):
        random_walk(z, 5, 0.0, 0)
