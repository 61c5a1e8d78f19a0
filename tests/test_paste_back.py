"""Paste-back GIFs: every frame composited into the face's photo (its size, capped), the photo kept
with the face (and in its session file), `steer --in-photo`, and the GIF dialog's checkbox."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

import main
from core.align import CROP, PLACEMENT_SIDE, Paster, PhotoPlacement, paste_back, warp
from core.engine import Engine
from core.export import GifOptions, save_gif
from core.history import EditState
from core.session import Session, load_session, models_info, save_session
from core.tuning import GeneratorDelta


def _photo(width: int = 700, height: int = 500) -> Image.Image:
    """A smooth test-made photo (GIF quantisation keeps smooth colours close) with some structure."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([80 + 100 * xx / width, 60 + 120 * yy / height, 140 + 60 * np.sin(xx / 90) * np.cos(yy / 70)], -1)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def _transform(cx: float = 400, cy: float = 220, side: float = 240, angle_deg: float = 8) -> np.ndarray:
    """Photo -> 64-px frame: a tilted square of `side` px centred at (cx, cy)."""
    a = np.radians(angle_deg)
    k = CROP / side
    r = k * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return np.hstack([r, (np.array([CROP / 2, CROP / 2]) - r @ [cx, cy])[:, None]])


def _faces(n: int) -> list[np.ndarray]:
    """64-px 'faces' that change from frame to frame."""
    return [np.full((CROP, CROP, 3), (20 * i, 255 - 20 * i, 128), np.uint8) for i in range(n)]


def _gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")).astype(np.int16) for f in ImageSequence.Iterator(im)]


def test_placement_caps_the_photo_and_keeps_the_face_where_it_was():
    photo, m = _photo(), _transform()
    placement = PhotoPlacement.of(photo, m)
    assert placement.size == (PLACEMENT_SIDE, round(500 * PLACEMENT_SIDE / 700))
    # the smaller photo with its transform frames the same face as the full one
    a = warp(photo, m).astype(np.int16)
    b = warp(Image.fromarray(placement.photo), placement.transform).astype(np.int16)
    assert np.abs(a - b).mean() < 2
    small = PhotoPlacement.of(_photo(300, 200), m)  # never enlarged
    assert small.size == (300, 200) and np.allclose(small.transform, m)


def test_one_paster_for_many_frames_gives_what_paste_back_gives():
    photo, m = _photo(), _transform()
    face = _faces(3)[2]
    paster = Paster(photo, m)
    assert np.array_equal(np.asarray(paster(face)), np.asarray(paste_back(photo, face, m)))
    assert np.array_equal(np.asarray(paster(torch.from_numpy(face).permute(2, 0, 1))), np.asarray(paster(face)))
    x0, y0, x1, y1 = paster.box  # only the face's neighbourhood is ever touched
    assert 0 < x1 - x0 < 400 and 0 < y1 - y0 < 400


def test_pasted_gif_has_the_photos_size_is_the_photo_outside_the_face_and_changes_inside(tmp_path):
    photo, m = _photo(), _transform()
    placement = PhotoPlacement.of(photo, m)
    frames = placement.paste(_faces(6))
    path = save_gif(frames, tmp_path / "pasted.gif", GifOptions(size=None))
    got = _gif_frames(path)
    assert len(got) == 6 and got[0].shape[:2][::-1] == placement.size
    # where the paste mask is 0 the frames are the photo (up to the GIF palette), in every frame
    alpha = np.asarray(Paster(placement.photo, placement.transform)(np.zeros((CROP, CROP, 3), np.uint8)))
    outside = (alpha == placement.photo).all(-1)
    outside &= (np.asarray(Paster(placement.photo, placement.transform)(np.full((CROP, CROP, 3), 255, np.uint8)))
                == placement.photo).all(-1)
    assert 0.5 < outside.mean() < 0.99
    reference = placement.photo.astype(np.int16)
    for frame in got:
        diff = np.abs(frame - reference)[outside]
        assert diff.mean() < 4 and np.percentile(diff, 99) < 24
    # inside the face the frames differ from one another
    centre = np.round(np.linalg.solve(placement.transform[:, :2], np.array([32, 40]) - placement.transform[:, 2]))
    x, y = int(centre[0]), int(centre[1])
    patch = [f[y - 5:y + 5, x - 5:x + 5].mean((0, 1)) for f in got]
    assert all(np.abs(a - b).max() > 10 for a, b in zip(patch, patch[1:]))


def test_save_gif_without_a_size_needs_frames_of_one_size(tmp_path):
    with pytest.raises(ValueError, match="different sizes"):
        save_gif([Image.new("RGB", (80, 60)), Image.new("RGB", (60, 80))], tmp_path / "x.gif", GifOptions(size=None))


def _photo_face(engine: Engine) -> EditState:
    """A face 'from a photo': its own (here: empty) generator change carrying the photo and transform."""
    delta = GeneratorDelta(base_hash=engine.generator_hash, tensors={},
                           photo=PhotoPlacement.of(_photo(), _transform()))
    z = engine.z_from_seed(3)[0]
    return EditState(base=z, label="photo test", z=z, generator=delta)


def _session_with(engine: Engine, state: EditState, path: Path) -> Path:
    session = Session(models=models_info(engine))
    session.history.push(state)
    session.start = state
    return save_session(session, path)


def test_the_session_file_keeps_the_faces_photo(tiny_models, tmp_path):
    engine = Engine(tiny_models, device="cpu", start_worker=False)
    state = _photo_face(engine)
    back = load_session(_session_with(engine, state, tmp_path / "photo.lsteer")).current.generator.photo
    assert np.array_equal(back.photo, state.generator.photo.photo)
    assert np.allclose(back.transform, state.generator.photo.transform)


def test_steer_in_photo_writes_the_gif_at_the_photos_size(tiny_models, tmp_path, capsys):
    engine = Engine(tiny_models, device="cpu", start_worker=False)
    state = _photo_face(engine)
    session = _session_with(engine, state, tmp_path / "photo.lsteer")
    out = tmp_path / "steer.gif"
    code = main.main(["steer", "--models", str(tiny_models), "--device", "cpu", "--session", str(session),
                      "--more", "Smiling", "--steps", "4", "--until", "0", "--in-photo", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    frames = _gif_frames(out)
    assert len(frames) == 5 and frames[0].shape[:2][::-1] == state.generator.photo.size
    # a seed face has no photo: one clear sentence, nothing written
    seed_session = _session_with(engine, EditState.seed_face(2), tmp_path / "seed.lsteer")
    code = main.main(["steer", "--models", str(tiny_models), "--device", "cpu", "--session", str(seed_session),
                      "--more", "Smiling", "--steps", "2", "--in-photo", "--out", str(tmp_path / "no.gif")])
    assert code == 1 and "came from a photo" in capsys.readouterr().err and not (tmp_path / "no.gif").exists()


def test_gif_dialog_offers_the_photo_only_for_a_photo_face(tiny_models, tmp_path, qtbot):
    from PySide6.QtCore import QSettings

    from ui.bridge import Bridge
    from ui.gif_dialog import GifDialog, GifSources

    engine = Engine(tiny_models, device="cpu")
    bridge = Bridge(engine)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    try:
        seed = EditState.seed_face(1)
        frames = engine.render(engine.z_from_seed(1, 4))
        dialog = GifDialog(bridge, engine, GifSources(attributes=list(engine.attributes), state=seed,
                                                      steer_frames=frames, steer_targets=["Smiling"]), settings)
        qtbot.addWidget(dialog)
        assert not dialog.in_photo.isEnabled() and dialog.request().photo is None

        photo_face = _photo_face(engine)
        dialog = GifDialog(bridge, engine, GifSources(attributes=list(engine.attributes), state=photo_face,
                                                      steer_frames=frames, steer_targets=["Smiling"]), settings)
        qtbot.addWidget(dialog)
        assert dialog.in_photo.isEnabled() and not dialog.in_photo.isChecked()
        dialog.in_photo.setChecked(True)
        assert not dialog.size.isEnabled() and dialog.request().photo is photo_face.generator.photo
        dialog.path_edit.setText(str(tmp_path / "in-photo.gif"))
        with qtbot.waitSignal(dialog.exported, timeout=60_000) as blocker:
            dialog.start_export()
        got = _gif_frames(Path(blocker.args[0]))
        assert len(got) == 4 and got[0].shape[:2][::-1] == photo_face.generator.photo.size
    finally:
        bridge.shutdown()
        engine.close()
