"""The yardsticks: the face-identity metric behaves like one, the evaluator stays out of every
method it grades, and eval-control grades with the evaluator rather than the steering classifier."""
from __future__ import annotations

import ast
import builtins
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import shared_data
from core import identity
from core.latent import renormalise
from core.checkpoint import CheckpointError, load_checkpoint
from core.engine import MODELS_DIR, Engine
from core.align import FaceCrop
from core.inversion import InvertConfig
from core.steering import SteerConfig
from core.worker import run_inline
from training import eval_control

ROOT = Path(__file__).resolve().parents[1]
needs_dlib = pytest.mark.skipif(not identity.available(), reason="dlib / face-recognition-models not installed")


@pytest.fixture(scope="module")
def metric():
    return identity.IdentityMetric()


@pytest.fixture(scope="module")
def shipped_faces() -> torch.Tensor:
    """Faces from the shipped generator: test-made, yet real enough for a face recogniser."""
    engine = Engine(MODELS_DIR, device="cpu", start_worker=False)
    return torch.stack([f.image for f in engine.render(engine.z_from_seed(11, 12))])


@needs_dlib
def test_identity_of_a_face_with_itself_is_zero_and_with_its_mirror_small(metric, shipped_faces):
    assert np.allclose(metric.distance(shipped_faces, shipped_faces), 0.0, atol=1e-6)
    mirror = metric.distance(shipped_faces, shipped_faces.flip(3))
    others = metric.distance(shipped_faces, shipped_faces.roll(1, 0))
    assert mirror.mean() < 0.4
    assert others.mean() > mirror.mean() + 0.2  # different people are further apart than a mirror image


@needs_dlib
def test_identity_accepts_model_range_and_uint8_alike(metric, shipped_faces):
    as_float = shipped_faces[:3].float() / 127.5 - 1
    assert np.allclose(metric.descriptors(as_float), metric.descriptors(shipped_faces[:3]), atol=1e-4)
    with pytest.raises(ValueError, match="pairs"):
        metric.distance(shipped_faces[:2], shipped_faces[:3])


@needs_dlib
def test_identity_tells_two_real_people_apart(metric):
    from core.data import open_image
    from core.align import crop_face

    photos = sorted(shared_data("photos").glob("*.jpg"))[:6]
    faces = torch.stack([crop_face(open_image(p)).image for p in photos])
    same = metric.distance(faces, faces.flip(3))
    other = metric.distance(faces, faces.roll(1, 0))
    assert identity.summarise(other)["same_person"] <= 1 / 6  # at most one pair mistaken
    assert other.mean() > 0.6 > same.mean()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_method_can_import_the_evaluator():
    """Only the evaluation scripts (evaluate, eval_control, eval_photo_edits, eval_curves, label_faces,
    through training.yardsticks) load the evaluator."""
    allowed = {"training/yardsticks.py", "training/evaluate.py", "training/eval_control.py", "training/eval_photo_edits.py",
               "training/train_evaluator.py", "training/train_classifier.py", "training/ship.py",
               "training/eval_curves.py", "training/label_faces.py"}
    for path in list((ROOT / "core").glob("*.py")) + list((ROOT / "ui").glob("*.py")) + \
            list((ROOT / "training").glob("*.py")) + [ROOT / "main.py"]:
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed:
            continue
        assert "training.yardsticks" not in _imports(path), rel
        text = path.read_text()
        if rel not in ("core/models.py", "core/checkpoint.py"):  # where the kind is defined
            assert "evaluator.pt" not in text and '"evaluator"' not in text and "Evaluator(" not in text, rel


def test_engine_jobs_never_open_the_evaluator(tiny_models, tmp_path, monkeypatch):
    opened: list[str] = []
    real_load = torch.load

    def spy(f, *args, **kwargs):
        opened.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    engine = Engine(tiny_models, device="cpu", directions_cache=tmp_path, start_worker=False)
    z = engine.z_from_seed(1)
    run_inline(engine.steer_job, z, {"Smiling": 1.0}, ["Male"], SteerConfig(steps=3))
    engine.edit_job(z, {"Smiling": 2.0}, ["Male"])
    image = engine.render(z)[0].image
    run_inline(engine.invert_job, FaceCrop(image=image, box=(0, 0, 64, 64), face=None), InvertConfig(steps=2))
    assert opened and not any("evaluator" in name for name in opened)
    with pytest.raises(CheckpointError, match="evaluator checkpoint, expected a classifier"):
        load_checkpoint(tiny_models / "evaluator.pt", "classifier")


class _FakeSticks:
    """Evaluator probabilities chosen by the test; identity left out."""

    def __init__(self, probs: torch.Tensor):
        self._probs = probs

    def probs(self, images):
        return self._probs

    def identity_distance(self, a, b):
        return None


def test_score_grades_by_the_evaluator_not_by_the_steering_classifier():
    n, attr, male = 4, 31, 20
    start_p = torch.full((n, 40), 0.2)
    after = start_p.clone()
    after[:, attr] = torch.tensor([0.9, 0.1, 0.2, 0.3])  # the evaluator sees the edit on one face in four
    after[:, male] = torch.tensor([0.25, 0.5, 0.2, 0.2])  # and Male moves by more than 0.10 on one
    frames = [SimpleNamespace(image=torch.zeros(3, 64, 64, dtype=torch.uint8), probs=torch.ones(40))] * n
    start = {"images": torch.zeros(n, 3, 64, 64, dtype=torch.uint8), "p": start_p}
    row = eval_control.score(_FakeSticks(after), attr, start, frames, [male], [str(i) for i in range(40)])
    assert row["success"] == 0.25 and row["self_graded"] == 1.0
    assert row["hold_20"] == 0.75
    expected_drift = float((after - start_p).abs()[:, [j for j in range(40) if j != attr]].mean())
    assert row["drift"] == pytest.approx(expected_drift)


def test_eval_control_runs_on_test_models_and_writes_its_grid(tiny_models, tmp_path):
    results = eval_control.main(["--models", str(tiny_models), "--device", "cpu", "--faces", "3",
                                 "--attributes", "Smiling", "--modes", "cli", "window", "slider", "slider_locked",
                                 "--grids", str(tmp_path), "--json", str(tmp_path / "r.json")])
    row = results["rows"]["Smiling"]
    assert row["faces"] == 3
    for mode in ("cli", "window", "slider", "slider_locked"):
        assert 0.0 <= row[mode]["success"] <= 1.0 and row[mode]["drift"] >= 0.0
    assert {"hold_Male", "hold_Young"} <= set(row["slider_locked"]) and "hold_Male" not in row["slider"]
    if identity.available():
        assert 0.0 <= row["window"]["same_person"] <= 1.0
    from PIL import Image

    grid = Image.open(tmp_path / "edit_Smiling.png")
    assert grid.size == (3 * (128 + 2) + 2, 3 * (128 + 2) + 2)  # start | window | slider, one row per face
    assert (tmp_path / "r.json").read_text().startswith("{")


def test_random_reference_moves_each_face_as_far_as_the_window_did_in_another_direction(tiny_models):
    engine = Engine(tiny_models, device="cpu", start_worker=False)
    z = renormalise(engine.z_from_seed(4, 6))  # steering's codes are on the prior's shell
    edited = renormalise(z + 2.5 * torch.randn(6, engine.z_dim, generator=torch.Generator().manual_seed(1))
                                      * torch.linspace(0.1, 1.0, 6).unsqueeze(1))
    moved = eval_control.random_move(engine, z, edited, seed=31)
    assert torch.allclose((moved - z).norm(dim=1), (edited - z).norm(dim=1), rtol=1e-3, atol=1e-4)
    assert torch.allclose(moved.norm(dim=1), z.norm(dim=1), rtol=1e-4)  # still on the prior's shell
    cos = torch.nn.functional.cosine_similarity(moved - z, edited - z, dim=1)
    assert cos.abs().max() < 0.6  # a different direction, not the edit itself
    done = {"window": edited}
    assert torch.equal(eval_control.edit(engine, "random", z, 31, [], done), moved)
    raw = engine.z_from_seed(5, 6)  # a freshly drawn code is only near the shell: the length still matches
    edited = renormalise(raw + 2.0 * torch.randn(6, engine.z_dim, generator=torch.Generator().manual_seed(2)))
    moved = eval_control.random_move(engine, raw, edited, seed=3)
    assert torch.allclose((moved - raw).norm(dim=1), (edited - raw).norm(dim=1), rtol=1e-3)
