"""The engine and its jobs on a small models folder the tests build (no shipped models needed)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from core.checkpoint import CheckpointError, load_checkpoint
from core.data import ImageLoadError
from core.directions import load_directions, orthogonalise
from core.engine import Engine, Notice, Progress
from core.align import FRAMING_SIDE, crop_face
from core.inversion import InvertConfig
from core.steering import SteerConfig, steer
from core.worker import JobCancelled, run_inline


@pytest.fixture
def engine(tiny_models, tmp_path):
    eng = Engine(tiny_models, device="cpu", directions_cache=tmp_path / "dirs")
    yield eng
    eng.close()


def test_engine_loads_models_and_renders_on_the_worker(engine):
    assert engine.z_dim == 16 and len(engine.attributes) == 40 and engine.directions is not None
    threads = []
    handle = engine.submit(lambda: (threads.append(threading.current_thread()), engine.random_job(3))[1])
    frame = handle.result(10)
    assert threads[0] is not threading.main_thread()
    assert frame.image.shape == (3, 64, 64) and frame.image.dtype == torch.uint8 and frame.probs.shape == (40,)
    assert torch.equal(frame.z, engine.z_from_seed(3)[0])
    assert torch.equal(engine.random_job(3).image, frame.image)  # same seed, same face


def test_steering_raises_target_probability(engine):
    z = engine.z_from_seed(11, 8)
    smiling = engine.attribute_index("Smiling")
    result = run_inline(steer, engine.generator, engine.classifier, z, {smiling: 1.0}, None,
                        SteerConfig(steps=15, until=None, preserve_weight=0.0, step_size=0.2))
    assert result.trajectory.shape == (16, 8, 16)
    gain = result.probs[-1, :, smiling] - result.probs[0, :, smiling]
    assert (gain > 0).all() and gain.mean() > 0.1
    norms = result.trajectory[1:].norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, 4.0), atol=1e-4)  # stays on the √d shell


def test_steering_less_and_until_stop_each_face(engine):
    z = engine.z_from_seed(12, 6)
    attr = engine.attribute_index("Male")
    result = run_inline(steer, engine.generator, engine.classifier, z, {attr: -1.0}, None,
                        SteerConfig(steps=40, until=0.7, preserve_weight=0.0, step_size=0.2))  # 'less': p < 0.3
    final = result.probs[-1, :, attr]
    reached = final < 0.3
    assert reached.any()
    assert (result.steps_taken[~reached] == 40).all()  # the others used the whole budget
    # a face that reached its target stopped moving: its last z equals the z at its stop step
    for i in torch.nonzero(reached).flatten().tolist():
        k = int(result.steps_taken[i])
        assert torch.equal(result.trajectory[k, i], result.trajectory[-1, i])


def test_preservation_penalty_reduces_drift(engine):
    z = engine.z_from_seed(13, 16)
    attr = engine.attribute_index("Smiling")
    others = [j for j in range(40) if j != attr]

    def drift(lam: float) -> float:
        res = run_inline(steer, engine.generator, engine.classifier, z, {attr: 1.0}, None,
                         SteerConfig(steps=10, until=None, preserve_weight=lam))
        return float((res.probs[-1][:, others] - res.probs[0][:, others]).abs().mean())

    assert drift(2.0) < drift(0.0)


def test_steering_rejects_bad_requests(engine):
    z = engine.z_from_seed(1)
    with pytest.raises(ValueError, match="NaN"):
        run_inline(steer, engine.generator, engine.classifier, torch.full((1, 16), float("nan")), {0: 1.0})
    with pytest.raises(ValueError, match="at least one"):
        run_inline(steer, engine.generator, engine.classifier, z, {})
    with pytest.raises(ValueError, match="out of range"):
        run_inline(steer, engine.generator, engine.classifier, z, {99: 1.0})
    with pytest.raises(ValueError, match="step_size"):
        run_inline(steer, engine.generator, engine.classifier, z, {0: 1.0}, None, SteerConfig(step_size=-1))
    with pytest.raises(ValueError, match="unknown attribute"):
        engine.attribute_index("Has_Wings")
    with pytest.raises(ValueError, match="NaN"):
        engine.render(torch.full((16,), float("inf")))


def test_orthogonalised_direction_is_orthogonal_to_locked_ones():
    torch.manual_seed(0)
    target = torch.randn(32)
    locked = torch.randn(3, 32)
    locked[2] = locked[0] + 0.5 * locked[1]  # a correlated, redundant lock
    d = orthogonalise(target, locked)
    assert abs(float(d.norm()) - 1) < 1e-5
    assert (locked @ d).abs().max() < 1e-5
    assert float(d @ target) > 0  # still points the same way as the target
    with pytest.raises(ValueError, match="lies within"):
        orthogonalise(locked[0] + locked[1], locked)


def test_direction_edit_with_lock_keeps_locked_component(engine):
    dirs = engine.directions
    smiling, male = engine.attribute_index("Smiling"), engine.attribute_index("Male")
    z = engine.z_from_seed(4)[0]
    edited = dirs.edit(z, {smiling: 3.0}, [male])
    moved = edited - z
    assert abs(float(moved.norm()) - 3.0) < 1e-4
    assert abs(float(moved @ dirs.vectors[male])) < 1e-4  # nothing moved along the locked direction
    free = dirs.edit(z, {smiling: 3.0})
    assert torch.allclose(free - z, 3.0 * dirs.vectors[smiling], atol=1e-5)
    p = [engine.edit_job(z, {"Smiling": a}).probs[smiling] for a in (-3.0, 0.0, 3.0)]
    assert p[0] < p[1] < p[2]


def test_directions_are_refitted_for_another_generator(tiny_models, tmp_path):
    eng = Engine(tiny_models, device="cpu", start_worker=False, directions_cache=tmp_path)
    assert load_directions(tiny_models / "directions.pt", eng.generator).generator_hash == eng.generator_hash
    changed = load_checkpoint(tiny_models / "generator.pt", "generator").model
    with torch.no_grad():
        changed.to_rgb[0][1].bias.add_(0.1)  # a changed generator
    with pytest.raises(CheckpointError, match="another generator"):
        load_directions(tiny_models / "directions.pt", changed)


def test_cancel_stops_a_running_steering_job(engine):
    started = threading.Event()
    seen: list[int] = []

    def on_progress(item):
        if isinstance(item, Progress):
            seen.append(item.step)
            started.set()

    handle = engine.submit(engine.steer_job, engine.z_from_seed(2), {"Smiling": 1.0}, None,
                           SteerConfig(steps=5000, until=None), on_progress=on_progress)
    assert started.wait(30)
    handle.cancel()
    at_cancel = len(seen)
    with pytest.raises(JobCancelled):
        handle.result(30)
    # stopped within a step of the cancel (at most the one being reported), however busy the machine
    assert len(seen) <= at_cancel + 1 < 5000
    assert engine.submit(engine.random_job, 1).result(30).image.shape == (3, 64, 64)  # worker still alive


def test_job_error_is_reported_and_worker_survives(engine):
    handle = engine.submit(engine.edit_job, engine.z_from_seed(0), {"Nonexistent": 1.0})
    with pytest.raises(ValueError, match="unknown attribute"):
        handle.result(10)
    assert engine.submit(engine.random_job, 2).result(10) is not None


def test_cuda_out_of_memory_falls_back_to_cpu(engine):
    engine.device = torch.device("cuda")  # pretend the models live on a GPU that just ran out of memory
    calls: list[str] = []

    def job():
        calls.append(engine.device.type)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        yield Progress(1, 1)
        return engine.random_job(0)

    events: list = []
    frame = engine.submit(job, on_progress=events.append).result(10)
    assert calls == ["cuda", "cpu"] and engine.device.type == "cpu"
    assert any(isinstance(e, Notice) and "CPU" in e.text for e in events)
    assert frame.image.shape == (3, 64, 64)


def test_inversion_refinement_improves_on_the_encoder(engine):
    target = engine.render(engine.z_from_seed(21))[0].image
    events: list = []
    outcome = run_inline(engine.invert_job, _png_bytes(target, 64), InvertConfig(steps=40, lr=0.1),
                         on_progress=events.append)
    res = outcome.result
    assert res.psnr_db > res.psnr_encoder_db  # optimisation beats the (untrained) encoder alone
    refining = [e.step for e in events if isinstance(e, Progress) and e.message.startswith("refining")]
    assert refining == list(range(1, 41))  # then the tuning stage continues the same bar
    assert outcome.frame.image.shape == (3, 64, 64)


def test_inversion_shows_the_encoders_guess_before_refining(engine):
    """The first frame is E(x) rendered (a preview before any optimisation step), then refine, then tune."""
    from core.data import to_model_range
    from core.tuning import TuneConfig

    crop = engine.crop_job(_png_bytes(engine.render(engine.z_from_seed(4))[0].image, 64))
    events: list = []
    run_inline(engine.invert_job, crop, InvertConfig(steps=3, tune=TuneConfig(steps=2)), on_progress=events.append)
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(e.stage, e.step) for e in progress] == [("encode", 0), ("refine", 1), ("refine", 2), ("refine", 3),
                                                     ("tune", 4), ("tune", 5)]
    with torch.no_grad():
        z0 = engine.encoder(to_model_range(crop.image).unsqueeze(0))[0]
    first = progress[0].frame
    assert torch.allclose(first.z, z0) and torch.equal(first.image, engine.render(z0)[0].image)


def _png_bytes(image: torch.Tensor, size: int) -> bytes:
    import io

    pil = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def test_inversion_bad_inputs_give_clear_errors(engine, tmp_path):
    with pytest.raises(ImageLoadError, match="not an image"):
        run_inline(engine.invert_job, b"%PDF-1.4 definitely not a picture")
    with pytest.raises(ImageLoadError, match="folder"):
        run_inline(engine.invert_job, tmp_path)
    truncated = _png_bytes(engine.random_job(1).image, 200)
    with pytest.raises(ImageLoadError, match="damaged or truncated"):
        run_inline(engine.invert_job, truncated[: len(truncated) // 2])
    no_encoder = tmp_path / "models"
    no_encoder.mkdir()
    for name in ("generator.pt", "classifier.pt"):
        (no_encoder / name).write_bytes((engine.models_dir / name).read_bytes())
    eng = Engine(no_encoder, device="cpu", start_worker=False, directions_cache=tmp_path)
    with pytest.raises(RuntimeError, match="no encoder"):
        run_inline(eng.invert_job, truncated)


def test_blank_photo_falls_back_to_centre_crop_with_notice(engine):
    events: list = []
    grey = Image.new("L", (300, 200), 128)
    import io

    buf = io.BytesIO()
    grey.save(buf, format="PNG")
    outcome = run_inline(engine.invert_job, buf.getvalue(), InvertConfig(steps=2), on_progress=events.append)
    assert outcome.crop.face is None and outcome.crop.box == (50, 0, 250, 200)
    assert any(isinstance(e, Notice) and "centre crop" in e.text for e in events)


def test_crop_follows_the_detected_face(monkeypatch):
    import core.align as align

    monkeypatch.setattr(align, "available", lambda: False)  # the Haar path
    monkeypatch.setattr(align, "detect_face", lambda img: (100, 80, 60, 60))
    arr = np.zeros((400, 300, 3), np.uint8)
    crop = crop_face(Image.fromarray(arr))
    left, top, right, bottom = crop.box
    assert right - left == pytest.approx(FRAMING_SIDE * 60, abs=1)
    assert (left + right) / 2 == pytest.approx(130, abs=1)  # centred on the face horizontally
    assert crop.image.shape == (3, 64, 64)


def test_an_opencv_without_a_face_detector_gives_a_centre_crop_that_says_why(monkeypatch):
    """Seen on a GPU machine: a cv2 built without objdetect. The photo still opens."""
    import cv2

    import core.align as align

    monkeypatch.setattr(align, "available", lambda: False)  # no dlib landmarks either
    monkeypatch.setattr(align, "_CASCADE", None)
    monkeypatch.delattr(cv2, "CascadeClassifier")
    crop = crop_face(Image.fromarray(np.full((200, 300, 3), 90, np.uint8)))
    assert crop.method == "centre" and crop.box == (50, 0, 250, 200) and crop.image.shape == (3, 64, 64)
    assert "no face detector" in crop.notice and "centre crop" in crop.notice


def test_missing_or_broken_models_are_clear_errors(tmp_path, tiny_models):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Engine(tmp_path, device="cpu", start_worker=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "generator.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="generator.pt"):
        Engine(broken, device="cpu", start_worker=False)


def test_real_photos_get_a_face_crop_when_present():
    from conftest import shared_data

    photos = sorted(shared_data("photos").glob("*.jpg"))
    from core.data import open_image

    found = [crop_face(open_image(p)).face is not None for p in photos]
    assert sum(found) >= 0.75 * len(photos), found


def test_path_rendering_yields_progress(engine):
    zs = torch.randn(70, 16)
    events: list = []
    frames = run_inline(engine.render_path_job, zs, on_progress=events.append)
    assert len(frames) == 70 and events[-1].step == 70 and events[-1].total == 70
    assert torch.equal(frames[5].z, zs[5])

