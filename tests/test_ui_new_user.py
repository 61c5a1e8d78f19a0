"""What a new user hit in the window, driven as a person would (clicks, keys into focused widgets):
a lock that silently blocked an edit, locks carried to a new face unseen, a Reset that changed
nothing after steering, letters typed into a strength box firing shortcuts."""
from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

import ui.edit_flow
from conftest import activate, settle
from core.engine import SteerOutcome


@pytest.fixture
def stuck_steering(monkeypatch):
    """Steering that cannot move the face (as a lock on Male does for Mustache on a woman's face)."""
    def window_steer_face(engine, origin, attribute, sign, base=None):
        from core.jobs import render_face

        frame = render_face(engine, origin).frame
        return SteerOutcome(frames=[frame, frame], result=None)
        yield  # a job: a generator that returns its result

    monkeypatch.setattr(ui.edit_flow, "window_steer_face", window_steer_face)


def test_a_lock_that_blocks_an_edit_says_so_and_offers_the_unlock(make_window, qtbot, stuck_steering, monkeypatch):
    w = make_window()
    panel = w.attribute_panel
    qtbot.mouseClick(panel.rows["Male"].lock, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    before = w.state
    qtbot.mouseClick(panel.rows["Mustache"].more, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    text = w.message()
    assert "lock on Male kept this face from getting more Mustache" in text and "Unlocking" in text
    assert w.state is before  # nothing recorded as if it had worked
    assert "no change" in w.status_text.text()
    assert w.message_bar.action.isVisible() and "Unlock Male" in w.message_bar.action.text()
    steered = []
    monkeypatch.setattr(type(w), "steer", lambda self, name, sign: steered.append((name, sign)))
    qtbot.mouseClick(w.message_bar.action, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert w.state.locked == frozenset() and not panel.rows["Male"].lock.isChecked()
    assert steered == [("Mustache", 1)]


def test_a_run_that_moves_nothing_without_locks_says_so_plainly(make_window, qtbot, stuck_steering):
    w = make_window()
    before = w.state
    qtbot.mouseClick(w.attribute_panel.rows["Bald"].less, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert "could not make this face less Bald" in w.message() and w.state is before


def test_a_new_face_starts_unlocked_and_says_which_locks_it_cleared(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    qtbot.mouseClick(w.attribute_panel.rows["Male"].lock, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    w.face_view.setFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Space)  # Space: a random face
    settle(w, qtbot)
    assert w.state.locked == frozenset() and not w.attribute_panel.rows["Male"].lock.isChecked()
    assert "lock on Male was cleared" in w.message()


def test_reset_returns_to_the_starting_face_after_steering_in_one_undo_step(make_window, qtbot):
    w = make_window()
    start_z = w.frame.z.clone()
    w.attribute_panel.rows["Smiling"].slider.setValue(50)
    settle(w, qtbot)
    qtbot.mouseClick(w.attribute_panel.rows["Young"].more, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert not torch.equal(w.frame.z, start_z) and w.action_reset.isEnabled()
    steered = w.frame.z.clone()
    qtbot.mouseClick(w.attribute_panel.reset, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert torch.equal(w.frame.z, start_z) and not w.state.edits and not w.action_reset.isEnabled()
    w.undo()
    settle(w, qtbot)
    assert torch.equal(w.frame.z, steered)  # one step back is the steered face


def test_keys_typed_into_a_strength_box_stay_in_it(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    row = w.attribute_panel.rows["Smiling"]
    row.value.setFocus()
    qtbot.waitUntil(row.value.hasFocus, timeout=10_000)
    seed = w.state.seed
    for key in (Qt.Key.Key_A, Qt.Key.Key_B, Qt.Key.Key_C, Qt.Key.Key_Space, Qt.Key.Key_K, Qt.Key.Key_P):
        qtbot.keyClick(QApplication.focusWidget(), key)
    settle(w, qtbot)
    assert not w.action_before.isChecked() and not w.action_play.isChecked()  # "b", "p" did not fire
    assert w.state.seed == seed and len(w.keyframes) == 0  # nor Space (new face) or "k" (pin)
    assert row.value.hasFocus()


def test_one_identity_line_about_the_face_on_screen(make_window, qtbot, monkeypatch, tmp_path):
    import ui.edit_flow
    import ui.photo_flow
    from test_ui_photos import use_centre_crop

    monkeypatch.setattr(ui.photo_flow, "identity_distance", lambda a, b: 0.3)  # the photo's own face: same person
    compared = []

    def readout_distance(a, b):
        compared.append(a)
        return 0.9  # the edited face: no longer the same person

    monkeypatch.setattr(ui.edit_flow, "identity_distance", readout_distance)
    w = make_window()
    use_centre_crop(w, qtbot, tmp_path / "gradient.png")
    settle(w, qtbot)
    assert w.photo_panel.text() == "Looks like the same person."
    w.attribute_panel.rows["Smiling"].slider.setValue(60)
    settle(w, qtbot)
    qtbot.waitUntil(lambda: "May no longer look like the same person." in w.readout.text(), timeout=20_000)
    assert "same person" not in w.photo_panel.text()  # no stale verdict beside the new one
    assert torch.equal(compared[-1], w.current_photo().found.crop.image)  # judged against the photo itself


def test_the_gif_dialog_never_offers_another_faces_run_and_asks_before_replacing(make_window, qtbot, tmp_path,
                                                                                   monkeypatch):
    from ui.gif_dialog import GifDialog

    w = make_window()
    w.steer("Smiling", 1)
    settle(w, qtbot)
    assert w.open_gif_dialog().current_source() == "steer"  # this face's run
    w.gif_dialog.close()
    w.new_face(77)
    settle(w, qtbot)
    dialog = w.open_gif_dialog()
    assert dialog.current_source() != "steer" and dialog.sources.reason_unavailable("steer")
    target = tmp_path / "walk.gif"
    target.write_bytes(b"the first export")
    dialog.path_edit.setText(str(target))
    asked = []
    monkeypatch.setattr(GifDialog, "ask_overwrite", staticmethod(lambda parent, path: asked.append(path) or False))
    assert dialog.start_export() is None and asked == [target]
    assert target.read_bytes() == b"the first export" and "already exists" in dialog.status.text()


def test_plain_words_title_and_snapshot_labels(make_window, qtbot):
    w = make_window()
    assert "Latent Steer" not in w.windowTitle()  # Qt adds the application's name once, itself
    w.attribute_panel.rows["Eyeglasses"].slider.setValue(1)  # a small nudge: 0.03
    settle(w, qtbot)
    w.take_snapshot()
    assert w.snapshots[len(w.snapshots) - 1].label == "Eyeglasses +0.03"  # not "+0.0"
    labels = [w.canvas_panel.axis_a.itemText(i) for i in range(w.canvas_panel.axis_a.count())]
    assert not any(label.startswith(("PC ", "Random 1")) for label in labels)
    assert w.action_fit.text().replace("&", "") == "Learn the attribute sliders…"


def test_no_model_runs_on_the_gui_thread_when_a_slider_moves(make_window, qtbot, monkeypatch):
    """A style G's codes come from its mapping network: the slider's first move asks the worker."""
    import threading

    import core.jobs

    w = make_window()
    on_gui = []
    real = core.jobs.base_z

    def spy(engine, state):
        on_gui.append(threading.current_thread() is threading.main_thread())
        return real(engine, state)

    monkeypatch.setattr(core.jobs, "base_z", spy)
    w.attribute_panel.rows["Smiling"].slider.setValue(40)
    settle(w, qtbot)
    assert on_gui and not any(on_gui)


def test_a_tight_photo_shows_what_was_filled_in_and_judges_the_face_alone(make_window, qtbot, monkeypatch, tmp_path):
    """A UTKFace-style crop: the face fills the picture, so the aligned crop is partly filled in."""
    import numpy as np
    from PIL import Image

    import core.align
    import ui.photo_flow
    from test_ui_photos import drop, files

    path = tmp_path / "tight.png"
    Image.fromarray(np.full((80, 80, 3), 150, np.uint8)).save(path)
    pts = core.align.TEMPLATE_64 * 1.6 - 11.2  # the crop spans 102 px of an 80-px picture
    monkeypatch.setattr(core.align, "detect_landmarks", lambda img, upscale=None: core.align.Landmarks(pts, (0, 0, 80, 80)))
    monkeypatch.setattr(core.align, "available", lambda: True)
    seen = []
    monkeypatch.setattr(ui.photo_flow, "identity_distance", lambda a, b: seen.append((a, b)) or 0.3)
    w = make_window()
    assert drop(w, files(path))
    settle(w, qtbot)
    crop = w.current_photo().found.crop
    assert crop.padded_share > 0.1
    text = w.photo_panel.text()
    assert "lies outside the photo (shaded)" in text and "judged on the face alone" in text
    a, b = seen[-1]
    outside = torch.from_numpy(crop.inside < 0.5)
    assert outside.any() and (a[:, outside] == 128).all() and (b[:, outside] == 128).all()  # border left out
    assert not torch.equal(crop.padding_shown(), crop.image)  # the panel shades it


def test_the_face_view_stays_put_when_the_readout_wraps_or_the_photo_strip_appears(make_window, qtbot, tmp_path):
    from PySide6.QtWidgets import QApplication

    from test_ui_photos import use_centre_crop

    w = make_window()
    QApplication.processEvents()
    where = w.face_view.geometry()
    w.readout.setText("Also changed: " + ", ".join(f"Attribute {i} +{i} %" for i in range(30)) + ".")
    QApplication.processEvents()
    assert w.face_view.geometry() == where
    use_centre_crop(w, qtbot, tmp_path / "gradient.png")
    settle(w, qtbot)
    w.message_bar.dismiss()  # the offer to use the centre crop is a message of its own, not the strip
    QApplication.processEvents()
    assert w.photo_panel.isVisible() and w.face_view.geometry() == where


def _luminance(c) -> float:
    def lin(v: int) -> float:
        v = v / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * lin(c.red()) + 0.7152 * lin(c.green()) + 0.0722 * lin(c.blue())


def _contrast(a, b) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)))
    return (lb + 0.05) / (la + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_percentages_read_clearly_at_any_fill(make_window, qtbot, theme):
    """The number sits beside the bar, in the window's text colour, never half on the fill."""
    from PySide6.QtGui import QPalette

    from ui.theme import apply_theme

    w = make_window()
    apply_theme(theme)
    try:
        settle(w, qtbot)
        bar = w.attribute_panel.rows["Smiling"].bar
        fill = bar.palette().color(QPalette.ColorRole.Highlight)
        for p, text in ((0.0, "0%"), (0.5, "50%"), (1.0, "100%")):
            bar.set_probability(p)
            assert bar.text() == text and w.attribute_panel.probability("Smiling") == pytest.approx(p)
            image = bar.grab().toImage()
            area = bar.text_rect().toAlignedRect().intersected(image.rect())
            pixels = [image.pixelColor(x, y) for x in range(area.left(), area.right() + 1)
                      for y in range(area.top(), area.bottom() + 1)]
            assert not any(c.rgb() == fill.rgb() for c in pixels)  # no fill behind the digits
            ground = max(set(c.rgb() for c in pixels), key=[c.rgb() for c in pixels].count)
            ground = next(c for c in pixels if c.rgb() == ground)
            assert max(_contrast(c, ground) for c in pixels) >= 4.5  # WCAG AA for text
            assert not bar.text_rect().intersects(bar.bar_rect())
    finally:
        apply_theme("system")


def test_a_reopened_session_shows_the_canvas_as_it_was(make_window, qtbot, tmp_path):
    """Pins on the map where they were dropped, the handle on the face, the plane not re-centred."""
    from ui.session_flow import SessionFlow

    w = make_window()
    flow = SessionFlow(w, tmp_path / "data", poll_ms=50, ask_close=lambda win: "discard",
                       ask_restore=lambda win, t: pytest.fail("unexpected offer to restore"))
    flow.start()
    canvas = w.canvas_panel.canvas
    settle(w, qtbot)
    qtbot.mouseClick(w.canvas_panel.pin, Qt.MouseButton.LeftButton)  # a pin at the centre
    for uv in ((1.5, -1.0), (2.5, 0.5)):
        canvas.handle_moved.emit(*uv)
        canvas.handle_released.emit(*uv)
        settle(w, qtbot)
        qtbot.mouseClick(w.canvas_panel.pin, Qt.MouseButton.LeftButton)
    origin = w.canvas_map.plane.origin.clone()
    path = flow.save(tmp_path / "walk")
    w.new_face(4321)  # another face, another plane
    settle(w, qtbot)
    qtbot.waitUntil(lambda: not torch.allclose(w.canvas_map.plane.origin, origin), timeout=20_000)
    assert flow.open(path)
    settle(w, qtbot)
    qtbot.waitUntil(lambda: w.canvas_map is not None and not canvas.is_stale(), timeout=20_000)
    assert torch.allclose(w.canvas_map.plane.origin, origin, atol=1e-5)
    assert canvas.handle() == pytest.approx((2.5, 0.5))
    assert [tuple(round(c, 4) for c in uv) for uv in canvas.pins()] == [(0.0, 0.0), (1.5, -1.0), (2.5, 0.5)]
    qtbot.mouseClick(w.canvas_panel.recentre, Qt.MouseButton.LeftButton)  # asked for: the plane moves to the face
    settle(w, qtbot)
    qtbot.waitUntil(lambda: canvas.handle() == (0.0, 0.0), timeout=20_000)
    assert torch.allclose(w.canvas_map.plane.origin, w.frame.z.reshape(-1).float(), atol=1e-4)
