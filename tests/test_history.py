"""core.history: undo/redo of edit recipes, snapshots, keyframe pins, the canvas plane (no Qt)."""
from __future__ import annotations

import math

import pytest
import torch

from core.canvas import (Axis, LatentPlane, available_directions, axis_vector, orthonormal_pair, principal_axes,
                         random_axes)
from core.history import EditState, History, Keyframes, PlanePoint, SeedPoint, Snapshots
from core.latent import keyframe_path


def state(label: str = "", **kw) -> EditState:
    return EditState(base=kw.pop("base", torch.zeros(4)), label=label, **kw)


# -- EditState --------------------------------------------------------------------------------


def test_edit_state_normalises_and_derives_without_touching_the_original():
    z = torch.randn(4)
    s = EditState(base=z, alphas={"Smiling": 1, "Male": 0.0}, locked=["Young"], label="a", z=z)
    assert s.alphas == {"Smiling": 1.0, "Male": 0.0}
    assert s.edits == {"Smiling": 1.0}  # zero strengths are not edits
    assert s.locked == frozenset({"Young"}) and s.locked_list == ["Young"]
    t = s.derive("b", alphas={"Smiling": 2.0})
    assert t.z is None and t.base is z and t.label == "b" and t.locked == s.locked
    assert s.alphas == {"Smiling": 1.0, "Male": 0.0} and s.z is z and s.label == "a"
    assert s.derive("c", z=z).z is z
    assert s.same_recipe(s.derive("d")) and not s.same_recipe(t)


def test_edit_state_rejects_bad_values():
    with pytest.raises(ValueError, match="finite"):
        EditState(base=torch.zeros(2), alphas={"Smiling": math.nan})
    with pytest.raises(TypeError, match="base"):
        EditState(base=[0.0, 1.0])


# -- History ----------------------------------------------------------------------------------


def test_history_undo_redo_and_branching():
    h = History()
    assert h.current is None and not h.can_undo and not h.can_redo and h.undo() is None
    a, b, c = state("a"), state("b"), state("c")
    for s in (a, b, c):
        h.push(s)
    assert h.current is c and h.undo_label == "c"
    assert h.undo() is b and h.undo() is a and h.undo() is None
    assert h.current is a and h.redo_label == "b"
    assert h.redo() is b
    d = h.push(state("d"))  # a new edit drops the redo branch (c)
    assert h.states == (a, b, d) and not h.can_redo and h.redo() is None


def test_history_merges_one_drag_into_one_step_and_seal_starts_a_new_one():
    h = History()
    h.push(state("start"))
    for v in range(5):
        h.push(state(f"smile {v}"), merge=("alpha", "Smiling"))
    assert len(h) == 2 and h.current.label == "smile 4"
    h.seal()
    h.push(state("smile again"), merge=("alpha", "Smiling"))
    h.push(state("male"), merge=("alpha", "Male"))
    assert [s.label for s in h.states] == ["start", "smile 4", "smile again", "male"]
    assert h.undo().label == "smile again"
    h.push(state("smile after undo"), merge=("alpha", "Smiling"))  # undo seals: no merge
    assert [s.label for s in h.states][-2:] == ["smile again", "smile after undo"]


def test_history_first_entry_is_never_merged_away_and_limit_drops_oldest():
    h = History(limit=3)
    h.push(state("first"), merge="k")
    h.push(state("second"), merge="k")
    assert [s.label for s in h.states] == ["first", "second"]
    for i in range(5):
        h.push(state(f"e{i}"))
    assert [s.label for s in h.states] == ["e2", "e3", "e4"] and h.index == 2
    with pytest.raises(ValueError):
        History(limit=1)
    with pytest.raises(TypeError):
        h.push("not a state")


# -- Snapshots and keyframes ------------------------------------------------------------------


def test_snapshots_are_bounded_and_removable():
    snaps = Snapshots(limit=2)
    for label in "abc":
        snaps.add(state(label), image=None)
    assert [s.label for s in snaps] == ["b", "c"]
    snaps.remove(0)
    assert [s.label for s in snaps] == ["c"] and len(snaps) == 1
    with pytest.raises(IndexError):
        snaps.remove(3)
    snaps.clear()
    assert len(snaps) == 0


def test_keyframe_path_goes_through_every_pin_exactly():
    zs = [torch.randn(8) for _ in range(3)]
    keys = Keyframes()
    with pytest.raises(ValueError, match="at least 2"):
        keys.path(lambda s: s.z)
    for z in zs:
        keys.add(state(z=z), uv=(0.0, 0.0))
    assert keys.can_play
    path = keys.path(lambda s: s.z, frames_per_segment=4)
    assert path.shape == (9, 8)
    for k, z in enumerate(zs):
        assert torch.equal(path[4 * k], z)
    assert torch.equal(path, keyframe_path(zs, 4))
    looped = keys.path(lambda s: s.z, frames_per_segment=4, loop=True)
    assert looped.shape == (12, 8)
    keys.move(2, 0)
    assert keys[0].state.z is zs[2]


# -- The canvas plane -------------------------------------------------------------------------


def test_plane_points_grid_and_projection():
    torch.manual_seed(0)
    origin, a, b = torch.randn(6), torch.randn(6), torch.randn(6)
    plane = LatentPlane(origin, a, b, labels=("A", "B"))
    assert abs(float(plane.a @ plane.b)) < 1e-6 and abs(float(plane.a.norm()) - 1) < 1e-6
    assert torch.allclose(plane.point(0, 0), origin)
    z = plane.point(1.5, -0.5)
    u, v = plane.project(z)
    assert u == pytest.approx(1.5, abs=1e-5) and v == pytest.approx(-0.5, abs=1e-5)
    coords = LatentPlane.grid_coords(3, 2.0)
    assert coords[0] == (-2.0, 2.0) and coords[4] == (0.0, 0.0) and coords[-1] == (2.0, -2.0)
    grid = plane.grid(3, 2.0)
    assert grid.shape == (9, 6)
    assert torch.allclose(grid[5], plane.point(*coords[5]), atol=1e-6)
    point = PlanePoint(plane, 1.0, 2.0)
    assert torch.allclose(point.z(), plane.point(1.0, 2.0))
    with pytest.raises(ValueError):
        LatentPlane.grid_coords(0, 1.0)
    with pytest.raises(ValueError):
        plane.point(math.inf, 0)


def test_orthonormal_pair_refuses_parallel_axes():
    a = torch.tensor([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="same way"):
        orthonormal_pair(a, 2 * a)
    with pytest.raises(ValueError, match="zero"):
        orthonormal_pair(torch.zeros(3), a)


def test_axes_from_directions_pcs_and_random():
    torch.manual_seed(1)
    vectors = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    vectors[3] = 0  # an attribute without a direction
    assert available_directions(vectors) == [True, True, True, False, True]
    assert available_directions(None) is None
    d = axis_vector(Axis("attribute", 1, "x"), vectors, 8)
    assert torch.allclose(d, vectors[1], atol=1e-6)
    with pytest.raises(ValueError, match="no direction"):
        axis_vector(Axis("attribute", 3, "x"), vectors, 8)
    with pytest.raises(ValueError, match="not fitted"):
        axis_vector(Axis("pc", 0, "PC 1"), None, 8)
    pcs = principal_axes(vectors, 2)
    assert pcs.shape == (2, 8) and abs(float(pcs[0] @ pcs[1])) < 1e-5
    r = random_axes(8, seed=3)
    assert torch.equal(r, random_axes(8, seed=3)) and abs(float(r[0] @ r[1])) < 1e-5
    r0, r1 = axis_vector(Axis("random", 0, "R1"), None, 8), axis_vector(Axis("random", 1, "R2"), None, 8)
    assert abs(float(r0 @ r1)) < 1e-5
    with pytest.raises(ValueError):
        Axis("sideways", 0, "?")


def test_seed_point_is_a_lazy_base():
    s = EditState(base=SeedPoint(7), seed=7)
    assert s.base.seed == 7 and s.z is None
