"""Exports from the window: the GIF dialog (steering run, keyframe path, walk), PNG, clipboard."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QUrl, Qt
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QApplication, QFileDialog

from core.export import gif_durations
from core.steering import SteerConfig
from ui.canvas_flow import PLAY_FPS
from conftest import settle




def read_gif(path: Path) -> tuple[int, tuple[int, int], dict]:
    with Image.open(path) as im:
        assert im.format == "GIF"
        n = getattr(im, "n_frames", 1)
        size, info = im.size, dict(im.info)
        for i in range(n):  # every frame decodes
            im.seek(i)
            im.load()
    return n, size, info


def frame_delays(path: Path) -> list[int]:
    """The delay stored with each frame of a GIF (metadata, in ms)."""
    with Image.open(path) as im:
        delays = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            delays.append(im.info["duration"])
    return delays


def export(dialog, qtbot, path: Path) -> Path:
    dialog.path_edit.setText(str(path))
    with qtbot.waitSignal(dialog.exported, timeout=60_000) as blocker:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    return Path(blocker.args[0])


def test_gif_of_the_last_steering_run_with_captions_and_folder_opening(make_window, qtbot, tmp_path, monkeypatch):
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url) or True))
    w = make_window()
    w.steer_config = SteerConfig(steps=5, until=None)
    w.attribute_panel.rows["Smiling"].more.click()
    settle(w, qtbot)
    dialog = w.open_gif_dialog()
    assert dialog.current_source() == "steer" and dialog.isVisible()
    dialog.size.setValue(128)
    dialog.fps.setValue(10)
    dialog.captions.setChecked(True)
    dialog.open_when_done.setChecked(True)
    out = export(dialog, qtbot, tmp_path / "gifs" / "steer")  # .gif is added
    assert out == tmp_path / "gifs" / "steer.gif" and out.exists()
    n, size, info = read_gif(out)
    assert n == 6 and size[0] == 128 and size[1] > 128  # a caption strip below the 128-px face
    assert info.get("loop") == 0 and info.get("duration") == 100
    assert opened and Path(opened[-1].toLocalFile()) == out.parent  # the folder opened on request
    assert dialog.open_button.isEnabled() and "Saved" in dialog.status.text()
    assert "export GIF: done in" in w.job_time.text()
    # the choices are remembered
    assert w.settings.value("gif/size", type=int) == 128 and w.settings.value("gif/captions", type=bool)


def window_with_two_pins(make_window, qtbot):
    """A window whose canvas holds two keyframe pins: the face, and a point moved off it."""
    w = make_window()
    w.add_pin()
    w.canvas_panel.canvas.handle_moved.emit(1.5, -1.0)
    w.canvas_panel.canvas.handle_released.emit(1.5, -1.0)
    settle(w, qtbot)
    w.add_pin()
    return w


def test_gif_of_the_keyframe_path_with_pingpong(make_window, qtbot, tmp_path):
    w = window_with_two_pins(make_window, qtbot)
    qtbot.mouseClick(w.canvas_panel.export, Qt.MouseButton.LeftButton)  # the canvas's GIF… button
    dialog = w.gif_dialog
    assert dialog.current_source() == "path"
    dialog.segment_frames.setValue(6)
    dialog.loop_path.setChecked(False)
    dialog.size.setValue(64)
    dialog.pingpong.setChecked(True)
    dialog.loop.setCurrentIndex(dialog.loop.findData(1))  # play once
    n, size, info = read_gif(export(dialog, qtbot, tmp_path / "path.gif"))
    assert n == 7 + 5 and size == (64, 64)  # 7 frames forwards, 5 back (ends not repeated)
    assert "loop" not in info  # "play once" writes no loop block


def test_the_path_gif_has_the_frames_play_shows(make_window, qtbot, tmp_path):
    w = window_with_two_pins(make_window, qtbot)
    w.set_playing(True)
    qtbot.waitUntil(lambda: len(w._play_frames) > 0, timeout=30_000)
    shown = len(w._play_frames)
    w.set_playing(False)
    dialog = w.open_gif_dialog("path")
    n, _size, info = read_gif(export(dialog, qtbot, tmp_path / "as-played.gif"))
    assert n == shown == 24  # 2 pins, back to the first: 2 segments of 12 (it used to be 13 vs 24)
    assert frame_delays(tmp_path / "as-played.gif") == gif_durations(24, PLAY_FPS)  # Play's frame rate


def test_gif_of_a_walk_along_a_direction(make_window, qtbot, tmp_path):
    w = make_window()
    dialog = w.open_gif_dialog("walk")
    assert dialog.current_source() == "walk"
    dialog.walk_attribute.setCurrentIndex(dialog.walk_attribute.findData("Eyeglasses"))
    dialog.walk_frames.setValue(10)
    dialog.size.setValue(96)
    dialog.loop.setCurrentIndex(dialog.loop.findData(-1))
    dialog.loop_count.setValue(3)
    dialog.captions.setChecked(True)
    n, size, info = read_gif(export(dialog, qtbot, tmp_path / "walk.gif"))
    assert n == 10 and size[0] == 96 and info.get("loop") == 2  # 3 plays = 2 repeats


def test_gif_dialog_explains_unavailable_sources_and_bad_paths(make_window, qtbot, tmp_path):
    w = make_window()
    dialog = w.open_gif_dialog("steer")  # no steering run yet: falls back to an available source
    assert dialog.current_source() == "walk"
    assert "No steering run yet" in dialog.sources.reason_unavailable("steer")
    assert "two pins" in dialog.sources.reason_unavailable("path")
    (tmp_path / "a-folder.gif").mkdir()
    dialog.path_edit.setText(str(tmp_path / "a-folder.gif"))
    with qtbot.waitSignal(dialog.failed, timeout=30_000) as blocker:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert "folder" in blocker.args[0] and dialog.task is None


def test_gif_export_can_be_cancelled(make_window, qtbot, tmp_path):
    w = make_window()
    dialog = w.open_gif_dialog("walk")
    dialog.walk_frames.setValue(240)
    dialog.size.setValue(1024)
    dialog.path_edit.setText(str(tmp_path / "big.gif"))
    task = dialog.start_export()
    assert dialog.close_button.text() == "Cancel"
    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: task.done, timeout=30_000)
    assert task.state in ("cancelled", "done")
    if task.state == "cancelled":
        assert not (tmp_path / "big.gif").exists() and "cancelled" in dialog.status.text()
    settle(w, qtbot)


def test_save_png_with_ctrl_s_and_copy_image(make_window, qtbot, tmp_path, monkeypatch):
    w = make_window()
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=30_000)
    target = tmp_path / "face.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    qtbot.keyClick(w, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: target.exists() and "Saved" in w.status_text.text(), timeout=20_000)
    with Image.open(target) as im:
        assert im.format == "PNG" and im.size == (w.face_view.side(), w.face_view.side())
    w.copy_image()
    image = QGuiApplication.clipboard().image()
    assert not image.isNull() and image.width() == w.face_view.side()
    assert w.action_gif.shortcut().toString() == "Ctrl+E"
    assert w.action_save.shortcut().toString() == "Ctrl+S"


@pytest.mark.parametrize("bad", ["folder"])
def test_save_png_errors_are_messages(make_window, qtbot, tmp_path, bad):
    w = make_window()
    (tmp_path / "x.png").mkdir()
    w.save_png(tmp_path / "x.png")
    qtbot.waitUntil(lambda: "could not be saved" in w.message(), timeout=20_000)
