"""Edits that keep the person: held attributes, the identity term, slider units, and — on the shipped
models, graded by the evaluator and dlib — what a user's "more" and locks actually do."""
from __future__ import annotations

import pytest
import torch

from core import identity
from core.directions import MAX_STRETCH
from core.engine import MODELS_DIR, Engine
from core.losses import feature_distance
from core.policy import CURRENT, PREVIOUS, held_attributes, window_steer_config
from core.steering import SteerConfig, steer
from core.worker import run_inline


@pytest.fixture(scope="module")
def tiny(tiny_models, tmp_path_factory):
    return Engine(tiny_models, device="cpu", directions_cache=tmp_path_factory.mktemp("dirs"), start_worker=False)


def test_held_attributes_stay_put_while_the_target_moves(tiny):
    z = tiny.z_from_seed(3, 8)
    target, held = 31, [20, 39]
    config = SteerConfig(steps=8, until=None, preserve_weight=0.0, momentum=0.0, step_size=0.3)
    free = run_inline(steer, tiny.generator, tiny.classifier, z, {target: 1.0}, [], config)
    kept = run_inline(steer, tiny.generator, tiny.classifier, z, {target: 1.0}, [], config, None, held)
    logit = lambda p: torch.logit(p.clamp(1e-6, 1 - 1e-6))  # noqa: E731
    moved_free = (logit(free.probs[-1][:, held]) - logit(free.probs[0][:, held])).abs().mean()
    moved_kept = (logit(kept.probs[-1][:, held]) - logit(kept.probs[0][:, held])).abs().mean()
    assert moved_kept < 0.5 * moved_free
    assert (kept.probs[-1][:, target] > kept.probs[0][:, target]).float().mean() >= 0.75  # the target still moves


def test_identity_term_keeps_the_face_closer_in_feature_space(tiny):
    z = tiny.z_from_seed(4, 8)
    base = SteerConfig(steps=10, until=None, preserve_weight=0.0, momentum=0.0, step_size=0.3)
    runs = {w: run_inline(steer, tiny.generator, tiny.classifier, z, {31: 1.0}, [], SteerConfig(**{
        **base.__dict__, "identity_weight": w})) for w in (0.0, 2.0)}
    with torch.no_grad():
        start = tiny.generator(z)
        dist = {w: float(feature_distance(tiny.classifier, tiny.generator(r.trajectory[-1]), start).mean())
                for w, r in runs.items()}
    assert dist[2.0] < dist[0.0]


def test_policy_holds_sex_and_age_unless_inseparable():
    names = ["Male", "Young", "Smiling", "Mustache"]
    vectors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, 0.2, 1.0], [0.95, 0.0, 0.3]])
    assert held_attributes(CURRENT, names, [2], [], vectors) == [0, 1]
    assert held_attributes(CURRENT, names, [3], [], vectors) == [1]  # a mustache needs a man: Male not held
    assert held_attributes(CURRENT, names, [0], [], vectors) == [1]  # editing Male holds only Young
    assert held_attributes(PREVIOUS, names, [2], [3], vectors) == [3]  # before: only the user's locks
    config = window_steer_config(0.2, +1, True, CURRENT.window, hard_locks=False)
    assert config.preserve_weight >= 1.0 and not config.fade_preservation  # soft locks, the old way


def test_keep_units_crosses_the_boundary_as_fast_with_locks(tiny):
    d = tiny.require_directions()
    z = tiny.z_from_seed(5, 4)
    unit = d.vectors[31] / d.vectors[31].norm()
    plain = d.edit(z, {31: 2.0}, [20])
    kept = d.edit(z, {31: 2.0}, [20], keep_units=True)
    progress = lambda e: float(((e - z) @ unit).mean())  # noqa: E731
    cos = float(d.conditional(31, [20]) @ unit)
    assert progress(plain) == pytest.approx(2.0 * cos, rel=1e-3)  # a held direction crosses more slowly
    assert progress(kept) == pytest.approx(2.0 * min(1.0, cos * MAX_STRETCH), rel=1e-3)  # unless kept in units


# -- on the shipped models, graded by the yardsticks --------------------------------------------

shipped = pytest.mark.skipif(not (MODELS_DIR / "evaluator.pt").exists(), reason="no shipped evaluator")


@pytest.fixture(scope="module")
def graded():
    from training.yardsticks import Yardsticks

    engine = Engine(MODELS_DIR, device="cpu", start_worker=False)
    return engine, Yardsticks(MODELS_DIR, "cpu", engine.attributes)


def _start(engine, sticks, name: str, n: int = 8):
    from training.eval_control import starting_faces

    attr = engine.attribute_index(name)
    z = starting_faces(engine, sticks, attr, n, seed=2024)
    return attr, z, torch.stack([f.image for f in engine.render(z)])


@shipped
def test_more_raises_the_evaluators_reading(graded):
    from training.eval_control import window_edit

    engine, sticks = graded
    attr, z, before = _start(engine, sticks, "Smiling")
    after = torch.stack([f.image for f in engine.render(window_edit(engine, z, attr, []))])
    p0, p1 = sticks.probs(before)[:, attr], sticks.probs(after)[:, attr]
    assert (p1 > p0).float().mean() >= 0.75 and (p1 > 0.5).float().mean() >= 0.6


@shipped
def test_locks_keep_the_locked_attributes_closer_than_no_locks(graded):
    from training.eval_control import window_edit

    engine, sticks = graded
    attr, z, before = _start(engine, sticks, "Blond_Hair")
    locks = [engine.attribute_index("Male"), engine.attribute_index("Young")]
    p0 = sticks.probs(before)[:, locks]
    moved = {}
    for name, locked in (("free", []), ("locked", locks)):
        previous, engine.policy = engine.policy, PREVIOUS if name == "free" else CURRENT
        try:
            after = torch.stack([f.image for f in engine.render(window_edit(engine, z, attr, locked))])
        finally:
            engine.policy = previous
        moved[name] = (sticks.probs(after)[:, locks] - p0).abs()
    assert moved["locked"].mean() < moved["free"].mean()
    assert (moved["locked"] <= 0.10).float().mean() >= 0.5


@shipped
@pytest.mark.skipif(not identity.available(), reason="dlib not installed")
def test_identity_term_keeps_the_person_closer_by_dlib(graded):
    engine, sticks = graded
    attr, z, before = _start(engine, sticks, "Eyeglasses")
    dist = {}
    for w in (0.0, 1.0):
        config = SteerConfig(until=0.9, identity_weight=w)
        out = run_inline(engine.steer_job, z, {attr: 1.0}, None, config).result.trajectory[-1]
        after = torch.stack([f.image for f in engine.render(out)])
        dist[w] = float(sticks.identity_distance(before, after).mean())
    assert dist[1.0] < dist[0.0]
