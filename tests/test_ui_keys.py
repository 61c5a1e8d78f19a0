"""The window as a new user tries it, driven through real keys, clicks and signals (offscreen): where
the keyboard goes (the face, the attribute filter), smooth faces by default, fitting the directions
(asked first, cancellable, the status and the seed box telling the truth), the seed box after
snapshots and photos, pins that belong to their face, the Help menu, double-click to reset a slider."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionSlider

from core.directions import FitConfig
from ui.attribute_panel import slider_to_alpha
from ui.dialogs import format_duration
from ui.main_window import NO_SEED
from conftest import activate, settle

CTRL = Qt.KeyboardModifier.ControlModifier






def press(qtbot, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """A key pressed by the user: it goes to whichever widget has the keyboard focus."""
    target = QApplication.focusWidget()
    assert target is not None
    qtbot.keyClick(target, key, modifiers)


def no_face_photo(path: Path) -> Path:
    yy, xx = np.mgrid[0:120, 0:160]
    Image.fromarray(np.stack([xx * 1.5, yy * 2.0, 255 - xx], -1).clip(0, 255).astype(np.uint8)).save(path)
    return path


def open_photo(w, qtbot, path: Path) -> None:
    """File → Open's path: no face is found in the test photo, so accept the centre crop it offers."""
    w.open_photo(path)
    qtbot.waitUntil(lambda: w.message_bar.action.isVisible() and "centre" in w.message_bar.action.text(),
                    timeout=60_000)
    qtbot.mouseClick(w.message_bar.action, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.state.label.startswith("photo"), timeout=60_000)
    settle(w, qtbot)


# -- where the keyboard goes -------------------------------------------------------------------


def test_keyboard_starts_on_the_face_and_clicking_the_face_takes_it_back(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    assert QApplication.focusWidget() is w.face_view
    search = w.attribute_panel.search
    qtbot.mouseClick(search, Qt.MouseButton.LeftButton)
    assert QApplication.focusWidget() is search
    qtbot.mouseClick(w.face_view, Qt.MouseButton.LeftButton)
    assert QApplication.focusWidget() is w.face_view
    seed = w.state.seed
    press(qtbot, Qt.Key.Key_Space)  # Space on the face: a new face
    settle(w, qtbot)
    assert w.state.seed != seed and w.seed_box.value() == w.state.seed


def test_the_filter_box_types_letters_and_gives_the_shortcuts_back(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    panel, search = w.attribute_panel, w.attribute_panel.search
    w.attribute_panel.rows["Smiling"].slider.setValue(40)  # something to undo
    settle(w, qtbot)
    edited = w.frame.z
    qtbot.mouseClick(search, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(search, "black")  # B and K type into the filter while it has the keyboard
    assert search.text() == "black" and panel.visible_attributes() == ["Black_Hair"]
    assert not w.action_before.isChecked() and len(w.keyframes) == 0
    press(qtbot, Qt.Key.Key_Z, CTRL)  # Ctrl+Z undoes the face, not the filter text
    settle(w, qtbot)
    assert search.text() == "black" and w.state.edits == {} and not torch.equal(w.frame.z, edited)
    press(qtbot, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)  # and redo
    settle(w, qtbot)
    assert torch.equal(w.frame.z, edited)
    press(qtbot, Qt.Key.Key_Escape)  # Esc leaves the box and gives up the filter: every attribute is back
    assert QApplication.focusWidget() is w.face_view and search.text() == ""
    assert len(panel.visible_attributes()) == len(w.engine.attributes)
    press(qtbot, Qt.Key.Key_K)  # now K, B and Space are the window's again
    assert len(w.keyframes) == 1
    press(qtbot, Qt.Key.Key_B)
    assert w.action_before.isChecked()
    press(qtbot, Qt.Key.Key_B)
    seed = w.state.seed
    press(qtbot, Qt.Key.Key_Space)
    settle(w, qtbot)
    assert w.state.seed != seed
    # Enter leaves the box as well, keeping the matches
    qtbot.mouseClick(search, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(search, "black")
    press(qtbot, Qt.Key.Key_Return)
    assert QApplication.focusWidget() is w.face_view and panel.visible_attributes() == ["Black_Hair"]


def test_space_in_the_empty_filter_box_is_a_new_face_and_a_row_button_returns_the_keyboard(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    search = w.attribute_panel.search
    qtbot.mouseClick(search, Qt.MouseButton.LeftButton)
    seed = w.state.seed
    press(qtbot, Qt.Key.Key_Space)
    settle(w, qtbot)
    assert search.text() == "" and w.state.seed != seed and QApplication.focusWidget() is w.face_view
    # typed words may hold a space; using a row's button then hands the keyboard back to the face
    qtbot.mouseClick(search, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(search, "big nose")
    assert w.attribute_panel.visible_attributes() == ["Big_Nose"]
    qtbot.mouseClick(w.attribute_panel.rows["Big_Nose"].lock, Qt.MouseButton.LeftButton)
    assert w.state.locked == {"Big_Nose"} and QApplication.focusWidget() is not search
    settle(w, qtbot)
    seed = w.state.seed
    press(qtbot, Qt.Key.Key_Space)  # so Space is a new face again, not a space in the filter
    settle(w, qtbot)
    assert search.text() == "big nose" and w.state.seed != seed
    press(qtbot, Qt.Key.Key_F, CTRL)  # Ctrl+F goes back to the filter, its text selected
    assert QApplication.focusWidget() is search and search.selectedText() == "big nose"


# -- view defaults -----------------------------------------------------------------------------


def test_faces_are_enlarged_smoothly_by_default(make_window, qtbot):
    w = make_window()
    assert w.action_smooth.isChecked() and w.face_view.smooth()
    assert w.scale_combo.currentData() is True
    assert w.open_gif_dialog().smooth.isChecked()


# -- fitting the directions --------------------------------------------------------------------


def _ask_fit(w, qtbot):
    w.fit_config = FitConfig(samples=200_000, batch_size=20)  # minutes on the tiny models: long enough to stop
    w.action_fit.trigger()
    qtbot.waitUntil(lambda: w.fit_confirm is not None and w.fit_confirm.isVisible(), timeout=60_000)
    return w.fit_confirm


def test_fit_directions_asks_first_with_a_time_estimate_and_esc_declines(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    box = _ask_fit(w, qtbot)
    assert "200,000 faces" in box.text() and "takes about" in box.text()
    assert w._fit_task is None and not w.bridge.long_tasks()  # nothing is fitted while the question is open
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: w.fit_confirm is None, timeout=30_000)
    assert w._fit_task is None and not w.bridge.long_tasks() and w.action_fit.isEnabled()
    assert "Fitting" not in w.status_text.text() or "not started" in w.status_text.text()


def test_a_running_fit_stops_on_esc_and_new_faces_wait_without_desyncing_the_seed_box(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    box = _ask_fit(w, qtbot)
    qtbot.mouseClick(box.fit_button, Qt.MouseButton.LeftButton)
    activate(w, qtbot)  # the question closed: the window is active again (the window manager's part)
    qtbot.waitUntil(lambda: w._fit_task is not None and w._fit_task.state == "running", timeout=60_000)
    task = w._fit_task
    assert w.status_text.text().startswith("Fitting the latent directions…")
    seed, face = w.state.seed, w.frame
    press(qtbot, Qt.Key.Key_Space)  # the worker is busy for minutes: no new face, and the seed box agrees
    QApplication.processEvents()
    assert w.state.seed == seed and w.seed_box.value() == seed and w.frame is face
    assert not w.action_random.isEnabled() and not w.seed_box.isEnabled()
    row = w.attribute_panel.rows["Smiling"]  # nor slider edits, steering, the canvas, snapshots or undo
    assert not row.slider.isEnabled() and not row.more.isEnabled() and not w.canvas_panel.pin.isEnabled()
    assert not w.snapshot_strip.isEnabled() and not w.action_undo.isEnabled()
    press(qtbot, Qt.Key.Key_Escape)  # Esc cancels it, and says so at once
    assert task.done or w.status_text.text() == "Stopping the fit…"
    qtbot.waitUntil(lambda: task.done, timeout=60_000)
    settle(w, qtbot)
    assert task.state == "cancelled" and w.engine.directions is not None  # the old directions are kept
    assert "cancelled" in w.status_text.text() and "…" not in w.status_text.text()
    assert w.action_random.isEnabled() and w.seed_box.isEnabled() and w.action_fit.isEnabled()
    assert row.slider.isEnabled() and row.more.isEnabled() and w.canvas_panel.pin.isEnabled()
    press(qtbot, Qt.Key.Key_Space)
    settle(w, qtbot)
    assert w.state.seed != seed and w.seed_box.value() == w.state.seed


def test_a_fit_that_is_confirmed_finishes_and_says_so(make_window, qtbot):
    w = make_window()
    box = _ask_fit(w, qtbot)
    w.fit_config = FitConfig(samples=400, batch_size=200)  # what runs is the fit the user confirmed
    qtbot.mouseClick(box.fit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w._fit_task is not None and w._fit_task.done, timeout=60_000)
    settle(w, qtbot)
    assert w._fit_task.state == "done" and "fitted" in w.status_text.text()


def test_the_window_fits_in_batches_small_enough_for_esc_to_land_within_a_second(qtbot, tiny_models, tmp_path):
    from PySide6.QtCore import QSettings

    from core.engine import Engine
    from ui.main_window import FIT_BATCH, MainWindow

    w = MainWindow(Engine(tiny_models, device="cpu", directions_cache=tmp_path / "d"),
                   settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    assert w.fit_config.batch_size == FIT_BATCH <= 250 and w.fit_config.samples == FitConfig().samples


def test_durations_read_as_words():
    assert format_duration(0.2) == "about 1 second"
    assert format_duration(40) == "about 40 seconds"
    assert format_duration(25 * 60) == "about 25 minutes"
    assert format_duration(3 * 3600) == "about 3.0 hours"


# -- the seed box and the pins follow the face -------------------------------------------------


def test_seed_box_follows_snapshots_steering_and_photos(make_window, qtbot, tmp_path):
    w = make_window()
    seed_a = w.state.seed
    w.take_snapshot()  # a seed face
    w.attribute_panel.rows["Smiling"].more.click()  # a steered face is no seed's face
    settle(w, qtbot)
    assert w.state.seed is None and w.seed_box.value() == NO_SEED and w.seed_box.text() == "—"
    w.take_snapshot()
    w.new_face(4321)
    settle(w, qtbot)
    assert w.seed_box.value() == 4321
    w.restore_snapshot(1)  # the steered face: the box must not keep saying 4321
    settle(w, qtbot)
    assert w.seed_box.text() == "—"
    w.restore_snapshot(0)
    settle(w, qtbot)
    assert w.seed_box.value() == seed_a == w.state.seed
    w.undo()
    settle(w, qtbot)
    assert w.seed_box.text() == "—"
    open_photo(w, qtbot, no_face_photo(tmp_path / "gradient.png"))
    assert w.state.seed is None and w.seed_box.text() == "—"
    w.seed_box.stepUp()  # from "—" the arrows go to seed 0, which is shown
    settle(w, qtbot)
    assert w.state.seed == 0 and w.seed_box.value() == 0
    w.seed_box.stepDown()  # and below 0 a seed face keeps its seed
    assert w.seed_box.value() == 0 and w.state.seed == 0


def _pin_two(w, qtbot) -> None:
    panel = w.canvas_panel
    qtbot.mouseClick(panel.pin, Qt.MouseButton.LeftButton)
    panel.canvas.handle_moved.emit(2.0, 1.0)
    panel.canvas.handle_released.emit(2.0, 1.0)
    settle(w, qtbot)
    qtbot.mouseClick(panel.pin, Qt.MouseButton.LeftButton)
    assert len(w.keyframes) == 2 and len(panel.canvas.pins()) == 2 and panel.play.isEnabled()


def test_pins_belong_to_their_face(make_window, qtbot, tmp_path):
    w = make_window()
    activate(w, qtbot)
    _pin_two(w, qtbot)
    press(qtbot, Qt.Key.Key_Space)  # a new face: the old face's pins go
    settle(w, qtbot)
    assert len(w.keyframes) == 0 and w.canvas_panel.canvas.pins() == [] and not w.canvas_panel.play.isEnabled()
    _pin_two(w, qtbot)
    w.attribute_panel.rows["Smiling"].slider.setValue(30)  # an edit of the same face keeps them
    settle(w, qtbot)
    assert len(w.keyframes) == 2
    open_photo(w, qtbot, no_face_photo(tmp_path / "gradient.png"))  # a photo is a new face too
    assert len(w.keyframes) == 0 and w.canvas_panel.canvas.pins() == []


# -- help and sliders --------------------------------------------------------------------------


def test_help_menu_lists_the_shortcuts(make_window, qtbot):
    w = make_window()
    menus = {a.text().replace("&", ""): a.menu() for a in w.menuBar().actions()}
    assert "Help" in menus
    entry = next(a for a in menus["Help"].actions() if "Keyboard shortcuts" in a.text())
    assert entry.shortcut().toString() == "F1"
    entry.trigger()
    dialog = w.shortcuts_dialog
    assert dialog is not None and dialog.isVisible()
    rows = dict(dialog.rows())
    for keys, what in (("Space", "Random face"), ("Ctrl+Z", "Undo"), ("K", "Drop pin"), ("P", "Play path"),
                       ("B", "Before / after"), ("Esc", "Cancel job"), ("Ctrl+B", "Take snapshot"),
                       ("Ctrl+F", "Find attribute"), ("F1", "Keyboard shortcuts")):
        assert rows.get(keys, "").startswith(what), (keys, rows.get(keys))
    assert any("Double-click" in k for k in rows)


def test_double_click_resets_a_slider_as_one_undo_step(make_window, qtbot):
    w = make_window()
    slider = w.attribute_panel.rows["Smiling"].slider
    base = w.frame.z
    slider.sliderPressed.emit()
    slider.setValue(40)
    slider.sliderReleased.emit()
    settle(w, qtbot)
    moved = w.frame.z
    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    handle = slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                           QStyle.SubControl.SC_SliderHandle, slider)
    qtbot.mouseDClick(slider, Qt.MouseButton.LeftButton, pos=handle.center())
    settle(w, qtbot)
    assert slider.value() == 0 and w.state.edits == {} and torch.equal(w.frame.z, base)
    w.undo()
    settle(w, qtbot)
    assert w.attribute_panel.alpha("Smiling") == slider_to_alpha(40) and torch.equal(w.frame.z, moved)
    assert slider.value() == 40
