"""What users of Artbreeder/GANSpace-style tools expect, driven through the real window (offscreen):
a grid of random faces to pick from, mixing two snapshots, a light/dark switch, typing a strength."""
from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QWidget

from core.history import EditState, SeedPoint, mix_state
from ui.attribute_panel import MAX_ALPHA
from ui.face_grid import COLUMNS, ROWS
from ui.theme import SETTING, apply_theme
from conftest import settle




def menu_action(window, menu: str, text: str):
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    found = [a for a in menus[menu].actions() if a.text().replace("&", "").startswith(text)]
    assert found, f"no {text!r} in {menu}"
    return found[0]


# ------------------------------------------------------------------------------------ face grid
def test_pick_from_random_faces_makes_the_tile_clicked_the_face(make_window, qtbot):
    w = make_window()
    menu_action(w, "Edit", "Pick from random faces").trigger()
    grid = w.face_grid
    assert grid is not None and grid.isVisible()
    assert 9 <= len(grid.tiles) == COLUMNS * ROWS <= 16
    qtbot.waitUntil(lambda: all(t.isEnabled() and not t.icon().isNull() for t in grid.tiles), timeout=20_000)
    assert len(set(grid.seeds)) == len(grid.seeds)
    k = 5
    seed = grid.seeds[k]
    with qtbot.waitSignal(w.face_shown, timeout=10_000):
        qtbot.mouseClick(grid.tiles[k], Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert not grid.isVisible()
    assert w.state.seed == seed and w.seed_box.value() == seed
    assert torch.equal(w.frame.z, w.engine.z_from_seed(seed)[0])
    assert w.history.current is w.state  # undoable like any new face


def test_face_grid_more_draws_new_faces_and_esc_closes(make_window, qtbot):
    w = make_window()
    grid = w.pick_random_face()
    with qtbot.waitSignal(grid.faces_shown, timeout=20_000):
        pass
    first = list(grid.seeds)
    before = grid.tiles[0].icon().pixmap(64).toImage()
    with qtbot.waitSignal(grid.faces_shown, timeout=20_000):
        qtbot.mouseClick(grid.more_button, Qt.MouseButton.LeftButton)
    assert grid.seeds != first
    assert grid.tiles[0].icon().pixmap(64).toImage() != before
    state = w.state
    grid.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is grid, timeout=10_000)
    qtbot.keyClick(grid, Qt.Key.Key_Escape)
    assert not grid.isVisible()
    assert w.state is state  # closing picks nothing
    settle(w, qtbot)


def test_the_faces_of_a_grid_are_the_faces_of_their_seeds(make_window, qtbot):
    from core.worker import run_inline
    from core.jobs import random_faces

    w = make_window()
    frames = run_inline(random_faces, w.engine, [3, 7])
    assert [f.image.shape for f in frames] == [(3, 64, 64)] * 2
    assert torch.equal(frames[1].z, w.engine.z_from_seed(7)[0])


# ------------------------------------------------------------------------------------ mixing
def snapshot_of(w, qtbot, seed: int) -> None:
    w.new_face(seed)
    settle(w, qtbot)
    w.take_snapshot()


def test_mix_two_snapshots_blends_their_faces_and_is_undoable(make_window, qtbot):
    w = make_window()
    snapshot_of(w, qtbot, 11)
    snapshot_of(w, qtbot, 22)
    w.new_face(33)
    settle(w, qtbot)
    before, entries = w.state, len(w.history)
    a, b = w.snapshots[0], w.snapshots[1]

    dialog = w.open_mix_dialog(0)
    assert dialog.face_a.currentIndex() == 0 and dialog.face_b.currentIndex() == 1
    assert not dialog.note.isVisible()  # seed faces: nothing to warn about

    def blend_at(value: int):
        if dialog.slider.value() != value:
            dialog.slider.setValue(value)
        qtbot.waitUntil(lambda: dialog.use_button.isEnabled() and dialog.blend() == value / 100, timeout=10_000)
        return dialog.result

    at0, at1, half = blend_at(0), blend_at(100), blend_at(50)
    assert torch.equal(at0.frame.z, a.state.z) and torch.equal(at0.frame.image, a.image)
    assert torch.equal(at1.frame.z, b.state.z) and torch.equal(at1.frame.image, b.image)
    assert not torch.equal(half.frame.z, a.state.z) and not torch.equal(half.frame.z, b.state.z)
    assert not torch.equal(half.frame.image, a.image) and not torch.equal(half.frame.image, b.image)
    # slerp keeps the blend on the prior's shell: its norm sits between the two ends' (clamping it
    # into that range changes nothing)
    shortest, longest = sorted([a.state.z.norm().item(), b.state.z.norm().item()])
    radius = half.frame.z.norm().item()
    assert radius == pytest.approx(min(max(radius, shortest), longest), abs=1e-4)

    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert torch.equal(w.frame.z, half.frame.z) and torch.equal(w.state.z, half.frame.z)
    assert len(w.history) == entries + 1 and "mix" in w.state.label
    assert w.seed_box.value() == -1  # a mix is no seed's face
    w.undo()
    settle(w, qtbot)
    assert w.state is before and torch.equal(w.frame.z, before.z)
    w.redo()
    settle(w, qtbot)
    assert torch.equal(w.frame.z, half.frame.z)


def test_mix_needs_two_snapshots_and_names_the_plain_generator_for_a_photo(make_window, qtbot):
    w = make_window()
    assert w.open_mix_dialog() is None and "two snapshots" in w.message()
    snapshot_of(w, qtbot, 1)
    w.take_snapshot()
    w.snapshots[1].state.generator = object()  # as a photo's own tuned generator would be
    w.snapshots[1].state.z = w.snapshots[0].state.z
    dialog = w.open_mix_dialog(0)
    assert dialog.note.isVisible() and "plain generator" in dialog.note.text()
    qtbot.waitUntil(dialog.use_button.isEnabled, timeout=10_000)  # still mixes (with the shared G)


def test_mix_state_is_slerp_of_the_faces_and_refuses_outside_0_1():
    za, zb = torch.randn(8), torch.randn(8)
    a, b = EditState(base=za, label="A", z=za), EditState(base=SeedPoint(1), label="B", z=zb)
    assert torch.equal(mix_state(a, b, 0.0, lambda s: s.z).z, za)
    assert torch.equal(mix_state(a, b, 1.0, lambda s: s.z).z, zb)
    mid = mix_state(a, b, 0.25, lambda s: s.z)
    assert mid.generator is None and mid.label == "mix: 75 % A + 25 % B" and mid.base is mid.z
    with pytest.raises(ValueError):
        mix_state(a, b, 1.5, lambda s: s.z)


# ------------------------------------------------------------------------------------ theme
def background(widget: QWidget):
    """The colour a person sees at the window's edge (the central widget's margin)."""
    return widget.grab().toImage().pixelColor(widget.width() - 3, widget.height() // 2)


def choose(action) -> None:
    action.trigger()
    QApplication.processEvents()  # the palette reaches the widgets as posted events


def test_theme_switch_dark_light_and_it_persists(make_window, qtbot, tmp_path):
    settings_file = tmp_path / "theme.ini"
    w = make_window(settings_file=settings_file)
    try:
        menu_action(w, "View", "Theme")  # the submenu is there
        dark = next(a for a in w.theme_group.actions() if a.data() == "dark")
        light = next(a for a in w.theme_group.actions() if a.data() == "light")
        choose(dark)
        assert w.palette().color(QPalette.ColorRole.Window).lightness() < 80
        assert background(w).lightness() < 80
        assert w.settings.value(SETTING) == "dark"
        choose(light)
        assert w.palette().color(QPalette.ColorRole.Window).lightness() > 200
        assert background(w).lightness() > 200
        choose(dark)
        w.close()
        apply_theme("system")  # as a fresh start of the app would be
        w2 = make_window(settings_file=settings_file)
        QApplication.processEvents()
        checked = w2.theme_group.checkedAction()
        assert checked is not None and checked.data() == "dark"
        assert background(w2).lightness() < 80
        choose(next(a for a in w2.theme_group.actions() if a.data() == "system"))
        assert w2.settings.value(SETTING) == "system"
    finally:
        apply_theme("system")  # the QApplication is shared with the other tests


# ------------------------------------------------------------------------------------ typing a strength
def test_typed_strength_moves_the_slider_and_the_face_exactly(make_window, qtbot):
    w = make_window()
    row = w.attribute_panel.rows["Smiling"]
    base = w.frame.z
    entries = len(w.history)
    seen = []
    w.attribute_panel.alpha_changed.connect(lambda n, a: seen.append((n, a)))
    row.value.setFocus()
    row.value.selectAll()
    qtbot.keyClicks(row.value, "1.25")
    assert seen == []  # nothing until Enter
    with qtbot.waitSignal(w.face_shown, timeout=10_000):
        qtbot.keyClick(row.value, Qt.Key.Key_Return)
    settle(w, qtbot)
    assert seen == [("Smiling", pytest.approx(1.25))]
    assert w.state.edits == {"Smiling": pytest.approx(1.25)}  # exact, not rounded to a slider step
    assert row.slider.value() == round(1.25 / MAX_ALPHA * 100)
    assert torch.allclose(w.frame.z, w.engine.edit_z(base, {"Smiling": 1.25}, []), atol=1e-6)
    assert len(w.history) == entries + 1
    # a typed value beyond the range is held at the slider's end, and the window says so
    row.value.selectAll()
    qtbot.keyClicks(row.value, "10")
    qtbot.keyClick(row.value, Qt.Key.Key_Return)
    settle(w, qtbot)
    assert row.value.value() == MAX_ALPHA and w.state.edits["Smiling"] == MAX_ALPHA
    assert "strength of 10 is beyond the slider's range" in w.message()
    # the slider moves the box; double-clicking the slider resets both
    row.slider.setValue(-40)
    settle(w, qtbot)
    assert row.value.value() == pytest.approx(-0.4 * MAX_ALPHA)
    qtbot.mouseDClick(row.slider, Qt.MouseButton.LeftButton, pos=row.slider.rect().center())
    settle(w, qtbot)
    assert row.value.value() == 0 and "Smiling" not in w.state.edits
    # undo puts the box back too
    w.undo()
    settle(w, qtbot)
    assert row.value.value() == pytest.approx(-0.4 * MAX_ALPHA)


def test_strength_box_leaves_undo_to_the_window_and_keeps_letters(make_window, qtbot):
    w = make_window()
    w.activateWindow()
    row = w.attribute_panel.rows["Male"]
    row.value.setFocus()
    row.value.selectAll()
    qtbot.keyClicks(row.value, "2")
    qtbot.keyClick(row.value, Qt.Key.Key_Return)
    settle(w, qtbot)
    assert w.state.edits == {"Male": pytest.approx(2.0)}
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=10_000)
    row.value.setFocus()
    qtbot.keyClick(row.value, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    settle(w, qtbot)
    assert "Male" not in w.state.edits and row.value.value() == 0  # the face's undo, not the box's
    qtbot.keyClick(row.value, Qt.Key.Key_B)
    assert not w.action_before.isChecked()  # a key typed into a field stays in it (the box refuses a letter)


def test_rows_fit_the_panel_at_the_smallest_window(make_window, qtbot):
    w = make_window()
    w.resize(w.minimumSize())
    assert (w.width(), w.height()) == (1024, 640)
    w.layout().activate()  # lay the resized window out now, instead of waiting for it
    QApplication.processEvents()
    panel = w.attribute_panel
    viewport = panel.scroll.viewport()
    assert panel.geometry().right() <= w.splitter.width()
    for name, row in panel.rows.items():
        for widget in (row.value, row.lock, row.less, row.more):
            left = widget.mapTo(viewport, QPoint(0, 0)).x()
            assert left >= 0 and left + widget.width() <= viewport.width(), (name, widget.toolTip(), left,
                                                                              widget.width(), viewport.width())
        assert row.slider.width() >= 60
    # the canvas panel beside it is not squeezed off the window either
    assert w.canvas_panel.mapTo(w, QPoint(0, 0)).x() + w.canvas_panel.width() <= w.width()
