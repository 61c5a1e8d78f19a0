"""Photos into the window: drag & drop (files or picture data) and File → Open, photo | aligned crop |
result side by side (at the smallest window too), Before showing the crop, progress by stage in plain
words with the first guess as the first preview, Cancel keeping the previous face, the likeness line,
and every kind of bad input answered by a message with nothing lost."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRect, QSize, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel

from conftest import settle, shared_data
from core.data import to_model_range
from core.engine import READ_EVERY, Progress
from ui.images import to_pixmap, to_qimage
from ui.photo_panel import THUMB

LIKENESS_WEAK = "Resemblance is weak: face recognition does not match the result to the photo."


def drop(window, mime: QMimeData) -> bool:
    """A real drag-enter + drop on the face view's spot in the window; returns whether the drag was accepted."""
    point = window.face_view.mapTo(window, window.face_view.rect().center())
    pos = QPointF(point)
    enter = QDragEnterEvent(point, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    event = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)
    return enter.isAccepted()


def files(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime




def no_face_image(path: Path) -> Path:
    """A test-made photo with no face in it (a smooth colour gradient)."""
    yy, xx = np.mgrid[0:120, 0:160]
    arr = np.stack([xx * 1.5, yy * 2.0, 255 - xx], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_drop_a_real_photo_gives_an_editable_face(make_window, qtbot):
    photos = shared_data("photos")
    photo = sorted(p for p in photos.iterdir() if p.name.startswith("celeba_test"))[0]
    w = make_window()
    before = w.frame
    assert drop(w, files(photo))
    crop_view = w.photo_panel.crop_view
    qtbot.waitUntil(lambda: crop_view.pixmap() is not None and not crop_view.pixmap().isNull(), timeout=20_000)
    settle(w, qtbot)
    assert w.live_frames >= 1  # live refinement frames were shown
    assert w.state.label == f"photo {photo.name}"
    assert w.photo_panel.text().startswith(("Looks like the same person.", LIKENESS_WEAK))
    assert w.message() == ""
    assert not torch.equal(w.frame.z, before.z)
    assert w.start_frame is w.frame  # the photo's face is the new "before"
    # it is editable: a slider moves it
    inverted = w.frame
    w.attribute_panel.rows["Smiling"].slider.setValue(60)
    settle(w, qtbot)
    # on the photo's own generator (a slider's end is steered under it)
    assert torch.allclose(w.frame.z, w.engine.edit_z(inverted.z, {"Smiling": 1.8}, [], w.state.generator), atol=1e-6)
    w.undo()
    settle(w, qtbot)
    assert torch.equal(w.frame.z, inverted.z)


def use_centre_crop(w, qtbot, path: Path) -> None:
    """Drop a test-made picture without a face and take the window's offer to use its centre."""
    assert drop(w, files(no_face_image(path)))
    qtbot.waitUntil(lambda: w.message_bar.action.text() == "Use centre crop", timeout=20_000)
    qtbot.mouseClick(w.message_bar.action, Qt.MouseButton.LeftButton)


def test_test_made_image_without_a_face_asks_then_inverts_the_centre(make_window, qtbot, tmp_path):
    w = make_window()
    before_z, entries = w.frame.z, len(w.history)
    assert drop(w, files(no_face_image(tmp_path / "gradient.png")))
    qtbot.waitUntil(lambda: "No face was found" in w.message(), timeout=20_000)
    settle(w, qtbot)
    assert torch.equal(w.frame.z, before_z) and len(w.history) == entries  # nothing changed yet
    crop = w.photo_panel.crop_view.pixmap()
    assert crop is not None and not crop.isNull()  # the crop is shown
    assert w.message_bar.action.text() == "Use centre crop"
    qtbot.mouseClick(w.message_bar.action, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert w.state.label == "photo gradient.png" and len(w.history) == entries + 1
    assert w.live_frames >= 1 and not torch.equal(w.frame.z, before_z)


def test_photo_keeps_its_own_generator_through_edits_and_undo(make_window, qtbot, tmp_path):
    """The inverted photo is drawn by its tuned generator, and so are its slider edits and undo."""
    w = make_window()
    use_centre_crop(w, qtbot, tmp_path / "gradient.png")
    settle(w, qtbot)
    delta, inverted = w.state.generator, w.frame
    assert delta is not None
    assert torch.equal(inverted.image, w.engine.render(inverted.z, delta)[0].image)
    w.attribute_panel.rows["Smiling"].slider.setValue(60)
    settle(w, qtbot)
    assert w.state.generator is delta
    expected = w.engine.edit_job(inverted.z, {"Smiling": 1.8}, [], delta=delta)
    assert torch.equal(w.frame.image, expected.image)
    w.undo()
    settle(w, qtbot)
    assert w.state.generator is delta and torch.equal(w.frame.image, inverted.image)


def test_file_open_uses_the_same_path(make_window, qtbot, tmp_path, monkeypatch):
    w = make_window()
    path = no_face_image(tmp_path / "opened.png")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))
    w.action_open.trigger()
    qtbot.waitUntil(lambda: "No face was found in opened.png" in w.message(), timeout=20_000)
    assert w.settings.value("paths/open_dir") == str(tmp_path)


def test_dropped_picture_data_is_accepted(make_window, qtbot):
    w = make_window()
    image = QImage(80, 60, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.darkCyan)
    mime = QMimeData()
    mime.setImageData(image)
    assert drop(w, mime)
    qtbot.waitUntil(lambda: "No face was found in the dropped picture" in w.message(), timeout=20_000)
    settle(w, qtbot)


@pytest.mark.parametrize("case", ["text", "corrupt", "truncated", "folder", "many", "remote", "empty"])
def test_bad_drops_show_a_message_and_lose_nothing(make_window, qtbot, tmp_path, case):
    w = make_window()
    w.attribute_panel.rows["Smiling"].slider.setValue(30)
    qtbot.waitUntil(w.is_ready, timeout=20_000)
    before_z, before_state, entries = w.frame.z, w.state, len(w.history)
    if case == "text":
        (tmp_path / "notes.txt").write_text("not a photo")
        mime, expect = files(tmp_path / "notes.txt"), "not an image"
    elif case == "corrupt":
        (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 50)
        mime, expect = files(tmp_path / "broken.jpg"), "broken.jpg could not be used"
    elif case == "truncated":
        no_face_image(tmp_path / "full.png")
        data = (tmp_path / "full.png").read_bytes()
        (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
        mime, expect = files(tmp_path / "cut.png"), "cut.png could not be used"
    elif case == "folder":
        (tmp_path / "holiday").mkdir()
        mime, expect = files(tmp_path / "holiday"), "is a folder"
    elif case == "many":
        paths = [no_face_image(tmp_path / f"p{i}.png") for i in range(3)]
        mime, expect = files(*paths), "You dropped 3 items; drop one photo at a time"
    elif case == "remote":
        mime = QMimeData()
        mime.setUrls([QUrl("https://example.org/face.jpg")])
        mime, expect = mime, "not a file on this computer"
    else:  # a drag holding only text
        mime = QMimeData()
        mime.setText("hello")
        expect = "no photo"
    assert drop(w, mime)
    qtbot.waitUntil(lambda: expect in w.message(), timeout=20_000)
    settle(w, qtbot)
    assert "Nothing was changed" in w.message()
    assert w.state is before_state and torch.equal(w.frame.z, before_z) and len(w.history) == entries
    assert w.attribute_panel.alpha("Smiling") == pytest.approx(0.9)
    # the window still works afterwards
    w.attribute_panel.rows["Smiling"].slider.setValue(0)
    qtbot.waitUntil(w.is_ready, timeout=20_000)
    assert w.state.edits == {}


def test_no_encoder_means_a_message_not_a_crash(make_window, qtbot, tmp_path, tiny_models):
    import shutil

    models = tmp_path / "no-encoder"
    shutil.copytree(tiny_models, models)
    (models / "encoder.pt").unlink()
    w = make_window(models=models)
    w.open_photo(no_face_image(tmp_path / "x.png"))
    assert "no encoder" in w.message()


# --------------------------------------------------------------------------- photo | aligned | result

JARGON = re.compile(r"PSNR|\bdB\b|encoder|classifier|inversion|\bz\b", re.IGNORECASE)


def a_real_photo() -> Path:
    return sorted(p for p in shared_data("photos").iterdir() if p.name.startswith("utkface"))[0]


def record(widget, method: str) -> list[str]:
    """Every text `widget.method(text)` is given from now on (the call still goes through)."""
    texts: list[str] = []
    real = getattr(widget, method)

    def spy(text: str) -> None:
        texts.append(text)
        real(text)

    setattr(widget, method, spy)
    return texts


def slow_inversion(w, monkeypatch, pause: float = 0.03) -> None:
    """The inversion in step with the window: after each progress item the worker waits until the
    window has handled it (an event the window's handler sets), then `pause` s more so that a test
    sees each stage on screen and can act in a chosen one."""
    real_job, real_handler = w.engine.invert_job, w._on_invert_progress
    taken = threading.Event()

    def handler(task, config, item):
        real_handler(task, config, item)
        taken.set()

    def in_step(*args, **kwargs):
        job = real_job(*args, **kwargs)
        while True:
            try:
                item = next(job)
            except StopIteration as stop:
                return stop.value
            taken.clear()
            yield item
            if isinstance(item, Progress):
                taken.wait(30)  # a bound for a stuck window only; normally milliseconds
                time.sleep(pause)

    monkeypatch.setattr(w, "_on_invert_progress", handler)
    monkeypatch.setattr(w.engine, "invert_job", in_step)


def rect_in(window, widget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def shows(label) -> bool:
    return label.pixmap() is not None and not label.pixmap().isNull()


def test_photo_crop_and_result_side_by_side_fit_the_smallest_window(make_window, qtbot):
    w = make_window()
    assert not w.photo_panel.isVisible()  # a seed face has no photo
    assert drop(w, files(a_real_photo()))
    settle(w, qtbot)
    panel = w.photo_panel
    assert panel.isVisible() and all(shows(v) for v in (panel.photo_view, panel.crop_view, panel.result_view))
    assert w.current_photo().found.thumbnail.shape[:2] != (64, 64)  # the whole photo, not the crop again
    assert panel.result_view.pixmap().toImage() == to_pixmap(w.frame.image, THUMB, smooth=True).toImage()

    w.resize(1024, 640)  # the smallest window, with the longest line the panel says
    panel.set_text(LIKENESS_WEAK)
    qtbot.waitUntil(lambda: w.size() == QSize(1024, 640) and w.face_view.height() >= 256, timeout=5_000)
    QApplication.processEvents()
    column, face = rect_in(w, w.face_view.parentWidget()), rect_in(w, w.face_view)
    assert w.rect().contains(column) and face.width() >= 256 and face.height() >= 256
    captions = [c for c in panel.findChildren(QLabel) if c.text() in ("Photo", "Aligned", "Result")]
    assert len(captions) == 3
    for part in (panel.photo_view, panel.crop_view, panel.result_view, panel.status, *captions):
        r = rect_in(w, part)
        assert part.isVisible() and column.contains(r) and not r.intersects(face), part
        assert r.height() >= part.minimumSizeHint().height(), part
    for view in (panel.photo_view, panel.crop_view, panel.result_view):
        assert view.size() == QSize(THUMB, THUMB)
    assert panel.status.height() >= panel.status.heightForWidth(panel.status.width())  # no line cut off

    w.new_face(3)  # a seed face: no panel; undo back to the photo's face: the panel again
    settle(w, qtbot)
    assert not panel.isVisible()
    w.undo()
    settle(w, qtbot)
    assert panel.isVisible() and w.state.label.startswith("photo ")


def test_before_shows_the_aligned_crop_of_a_photo(make_window, qtbot):
    w = make_window()
    assert drop(w, files(a_real_photo()))
    settle(w, qtbot)
    crop, result = w.current_photo().found.crop, w.frame
    w.attribute_panel.rows["Smiling"].slider.setValue(60)
    settle(w, qtbot)
    w.action_before.setChecked(True)
    assert w.face_view.image() == to_qimage(crop.image)  # the photo's crop, not its inversion
    assert w.face_view.image() != to_qimage(result.image)
    assert w.face_view.badge() == "Before: the photo"
    shown = [w.attribute_panel.probability(n) for n in w.engine.attributes]  # the crop's own reading
    assert shown == pytest.approx(w.engine.read(crop.image).tolist(), abs=1e-3)
    w.action_before.setChecked(False)
    assert w.face_view.image() == to_qimage(w.frame.image) and w.face_view.badge() == ""
    w.new_face(2)  # a seed face's "before" is its own start
    settle(w, qtbot)
    w.action_before.setChecked(True)
    assert w.face_view.image() == to_qimage(w.start_frame.image) and w.face_view.badge() == "Before"


def test_progress_in_plain_words_with_a_preview_from_the_first_guess(make_window, qtbot, monkeypatch):
    w = make_window()
    slow_inversion(w, monkeypatch)
    texts, badges = record(w.photo_panel, "set_text"), record(w.face_view, "set_badge")
    frames: list = []
    monkeypatch.setattr(w.face_view, "set_image", lambda image, real=w.face_view.set_image: (frames.append(image),
                                                                                           real(image)))
    bars: list = []  # the probability bars during the inversion, read as each live frame arrives
    monkeypatch.setattr(w.attribute_panel, "set_probabilities",
                        lambda probs, real=w.attribute_panel.set_probabilities: (bars.append(probs), real(probs)))
    assert drop(w, files(a_real_photo()))
    settle(w, qtbot)
    steps, tune = w.invert_config.steps, w.invert_config.tune.steps
    texts = [t for t in texts if t]  # (clearing the panel sets "")
    assert texts[:2] == ["Finding and aligning the face…", "First guess…"]
    assert texts[2] == "First guess shown; refining…"  # the first picture is the first guess, before refining
    with torch.no_grad():
        guess = w.engine.encoder(to_model_range(w.current_photo().found.crop.image).unsqueeze(0))
    assert torch.equal(frames[0], w.engine.render(guess)[0].image)
    guess_probs = pytest.approx(w.engine.read(frames[0]).tolist(), abs=1e-4)  # the reading of the preview shown
    assert any(b == guess_probs for b in bars)  # the bars follow the preview from the first guess on
    assert len(bars) >= (steps + tune) // READ_EVERY  # and the refining and tuning after it
    assert [f"Refining {k}/{steps}" for k in range(1, steps + 1)] == [t for t in texts if t.startswith("Refining")]
    assert f"Tuning to the photo {tune}/{tune}" in texts
    assert texts[-1].startswith(("Looks like the same person.", LIKENESS_WEAK))
    shown = texts + badges + [w.message(), w.status_text.text(), w.job_time.text(), w.photo_panel.text()]
    assert not [t for t in shown if JARGON.search(t)]
    tips = [v.toolTip() for v in (w.photo_panel.photo_view, w.photo_panel.crop_view, w.photo_panel.result_view)]
    assert not [t for t in tips if JARGON.search(t)]


@pytest.mark.parametrize("stage", ["Refining", "Tuning to the photo"])
def test_cancel_keeps_the_previous_face(make_window, qtbot, monkeypatch, stage):
    w = make_window()
    slow_inversion(w, monkeypatch)
    before_state, before_frame, entries = w.state, w.frame, len(w.history)
    assert drop(w, files(a_real_photo()))
    qtbot.waitUntil(lambda: w.photo_panel.text().startswith(stage), timeout=20_000)
    w.cancel_jobs()  # Esc
    settle(w, qtbot)
    assert w.state is before_state and w.frame is before_frame and len(w.history) == entries
    assert w.face_view.image() == to_qimage(before_frame.image) and w.current_photo() is None
    assert w.photo_panel.isVisible() and w.photo_panel.text() == "Cancelled; the previous face stays."
    assert not shows(w.photo_panel.result_view)  # no result from the cancelled photo


def test_cancel_during_refine_keeps_the_previous_photo_face(make_window, qtbot, monkeypatch, tmp_path):
    w = make_window()
    assert drop(w, files(a_real_photo()))
    settle(w, qtbot)
    photo, state, frame = w.current_photo(), w.state, w.frame
    slow_inversion(w, monkeypatch)
    use_centre_crop(w, qtbot, tmp_path / "gradient.png")
    qtbot.waitUntil(lambda: w.photo_panel.text().startswith("Refining"), timeout=20_000)
    w.cancel_button.click()
    settle(w, qtbot)
    assert w.state is state and w.frame is frame and w.current_photo() is photo
    assert w.photo_panel.text() == "Cancelled; this face stays as it was."
    assert w.photo_panel.crop_view.pixmap().toImage() == to_pixmap(photo.found.crop.padding_shown(), THUMB,
                                                                   smooth=True).toImage()
    w.action_before.setChecked(True)
    assert w.face_view.image() == to_qimage(photo.found.crop.image)


@pytest.mark.parametrize("distance, words", [(0.31, "Looks like the same person."), (0.74, LIKENESS_WEAK),
                                             (None, "Ready to edit.")])
def test_likeness_in_plain_words_measured_on_the_worker(make_window, qtbot, monkeypatch, tmp_path, distance, words):
    import ui.photo_flow

    calls: list = []

    def measure(a, b):
        calls.append((a, b, threading.current_thread() is threading.main_thread()))
        return distance

    monkeypatch.setattr(ui.photo_flow, "identity_distance", measure)
    w = make_window()
    use_centre_crop(w, qtbot, tmp_path / "gradient.png")
    settle(w, qtbot)
    (crop, result, on_gui), = calls
    assert torch.equal(crop, w.current_photo().found.crop.image) and torch.equal(result, w.frame.image) and not on_gui
    assert w.photo_panel.text() == words


def test_likeness_by_the_real_metric(make_window, qtbot):
    from core import identity

    if not identity.available():
        pytest.skip("dlib is not installed")
    w = make_window()
    assert drop(w, files(a_real_photo()))
    settle(w, qtbot)
    crop = w.current_photo().found.crop  # judged on the face: the filled-in border left out of both
    distance = identity.IdentityMetric().distance(crop.face_only(crop.image).unsqueeze(0),
                                                  crop.face_only(w.frame.image).unsqueeze(0))[0]
    assert w.photo_panel.text().startswith("Looks like the same person." if distance < identity.SAME_PERSON
                                           else LIKENESS_WEAK)


def test_steering_a_photo_face_keeps_its_generator_and_panel(make_window, qtbot, tmp_path):
    w = make_window()
    use_centre_crop(w, qtbot, tmp_path / "gradient.png")
    settle(w, qtbot)
    delta = w.state.generator
    w.steer("Smiling", 1)
    settle(w, qtbot)
    assert w.state.generator is delta and w.photo_panel.isVisible()
    assert torch.equal(w.frame.image, w.engine.render(w.frame.z, delta)[0].image)
