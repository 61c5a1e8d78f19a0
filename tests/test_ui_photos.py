"""Photos into the window: drag & drop (files or picture data) and File → Open, the face crop, live
inversion frames, and every kind of bad input answered by a message with nothing lost."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication, QFileDialog

from conftest import shared_data


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


def settle(window, qtbot, timeout: int = 30_000) -> None:
    qtbot.waitUntil(window.is_ready, timeout=timeout)


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
    qtbot.waitUntil(lambda: w.crop_view.pixmap() is not None and not w.crop_view.pixmap().isNull(), timeout=20_000)
    settle(w, qtbot)
    assert w.live_frames >= 1  # live refinement frames were shown
    assert w.state.label == f"photo {photo.name}" and "PSNR" in w.photo_text.text()
    assert w.message() == ""
    assert not torch.equal(w.frame.z, before.z)
    assert w.start_frame is w.frame  # the photo's face is the new "before"
    # it is editable: a slider moves it
    inverted = w.frame
    w.attribute_panel.rows["Smiling"].slider.setValue(60)
    settle(w, qtbot)
    assert torch.allclose(w.frame.z, w.engine.edit_z(inverted.z, {"Smiling": 1.8}, []), atol=1e-6)
    w.undo()
    settle(w, qtbot)
    assert torch.equal(w.frame.z, inverted.z)


def test_test_made_image_without_a_face_asks_then_inverts_the_centre(make_window, qtbot, tmp_path):
    w = make_window()
    before_z, entries = w.frame.z, len(w.history)
    assert drop(w, files(no_face_image(tmp_path / "gradient.png")))
    qtbot.waitUntil(lambda: "No face was found" in w.message(), timeout=20_000)
    settle(w, qtbot)
    assert torch.equal(w.frame.z, before_z) and len(w.history) == entries  # nothing changed yet
    assert w.crop_view.pixmap() is not None and not w.crop_view.pixmap().isNull()  # the crop is shown
    assert w.message_bar.action.text() == "Use centre crop"
    qtbot.mouseClick(w.message_bar.action, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert w.state.label == "photo gradient.png" and len(w.history) == entries + 1
    assert w.live_frames >= 1 and not torch.equal(w.frame.z, before_z)


def test_photo_keeps_its_own_generator_through_edits_and_undo(make_window, qtbot, tmp_path):
    """The inverted photo is drawn by its tuned generator, and so are its slider edits and undo."""
    w = make_window()
    assert drop(w, files(no_face_image(tmp_path / "gradient.png")))
    qtbot.waitUntil(lambda: w.message_bar.action.text() == "Use centre crop", timeout=20_000)
    qtbot.mouseClick(w.message_bar.action, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    delta, inverted = w.state.generator, w.frame
    assert delta is not None and "its own generator" in w.photo_text.text()
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
