"""The main window driven through real signals (offscreen): sliders, locks + steering, undo/redo,
random faces and seeds, snapshots, before/after, search, responsiveness, cancelling, closing.

Responsiveness is asserted by what the code controls (which thread runs the models, how much the GUI
thread handles per job), never by wall-clock times: those belong to `python main.py bench`."""
from __future__ import annotations

import dataclasses
import threading

import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication
from torch.utils._python_dispatch import TorchDispatchMode

from core.jobs import face_z
from core.steering import SteerConfig
from core.worker import JobState, run_inline
from ui.attribute_panel import GROUPS, MAX_ALPHA, SLIDER_STEPS, display_name
from ui.face_view import display_side
from conftest import activate, settle






def test_window_opens_with_a_face_the_40_attributes_and_the_device(make_window):
    w = make_window()
    assert w.frame is not None and w.face_view.image() is not None
    assert w.frame.image.shape == (3, 64, 64)
    assert sorted(w.attribute_panel.rows) == sorted(w.engine.attributes)
    grouped = {n for _, names in GROUPS for n in names}
    assert grouped == set(w.engine.attributes)  # every CelebA attribute has a group
    assert w.device_label.text() == "Device: " + w.engine.device_name
    assert "done in" in w.job_time.text()
    assert w.canvas_map is not None and w.canvas_panel.canvas.has_map()
    # probability bars show the classifier on the current image
    probs = w.frame.probs.tolist()
    i = w.engine.attribute_index("Smiling")
    assert w.attribute_panel.probability("Smiling") == pytest.approx(probs[i], abs=1e-3)
    # sensible minimum sizes; the face is shown at 256-1024 px
    assert w.minimumWidth() >= 1000 and w.face_view.minimumWidth() == 256
    assert 256 <= w.face_view.side() <= 1024
    assert w.history.current is w.state and len(w.history) == 1


def test_face_size_crisp_is_whole_pixel_multiples_smooth_is_any():
    assert display_side(100, 100, False) == 256
    assert display_side(1000, 900, False) == 896
    assert display_side(3000, 2000, True) == 1024 and display_side(3000, 2000, False) == 1024
    assert display_side(400, 700, False) == 384
    assert display_side(400, 700, True) == 400
    assert display_side(300, 300, True) == 300


def test_slider_moves_the_face(make_window, qtbot):
    w = make_window()
    before = w.frame
    slider = w.attribute_panel.rows["Smiling"].slider
    slider.setFocus()
    with qtbot.waitSignal(w.face_shown, timeout=10_000):
        qtbot.keyClick(slider, Qt.Key.Key_PageUp)  # one page step: a real valueChanged from the slider
    settle(w, qtbot)
    alpha = MAX_ALPHA * slider.pageStep() / SLIDER_STEPS
    assert w.state.edits == {"Smiling": pytest.approx(alpha)}
    expected = w.engine.edit_z(before.z, {"Smiling": alpha}, [])
    assert torch.allclose(w.frame.z, expected, atol=1e-6)
    assert not torch.equal(w.frame.z, before.z)
    assert not torch.equal(w.frame.image, before.image)  # the face itself changed
    assert w.state.z is not None and torch.equal(w.state.z, w.frame.z)


def test_a_sliders_first_move_says_it_is_finding_the_path_then_moves_without_waiting(make_window, qtbot):
    w = make_window()
    base = w.frame.z
    badges = []
    real = w.face_view.set_badge
    w.face_view.set_badge = lambda text: (badges.append(text), real(text))  # every badge the view shows
    slider = w.attribute_panel.rows["Smiling"].slider
    slider.setValue(30)
    settle(w, qtbot)
    assert "Finding how this face gets more Smiling…" in badges  # its end is steered once (asked on the worker)
    assert w.face_view.badge() == ""
    assert torch.allclose(w.frame.z, w.engine.edit_z(base, {"Smiling": MAX_ALPHA * 30 / SLIDER_STEPS}, []), atol=1e-6)
    assert w.engine.slider_end_ready(base, "Smiling", +1)
    badges.clear()
    slider.setValue(60)
    settle(w, qtbot)
    assert not any(b.startswith("Finding") for b in badges)  # the same slider again: the end is known
    slider.setValue(-30)
    settle(w, qtbot)
    assert "Finding how this face gets less Smiling…" in badges  # the other side has its own end


def test_slider_drag_coalesces_renders_and_ends_on_the_last_value(make_window, qtbot):
    w = make_window()
    base = w.frame.z
    submitted = w.bridge.submitted["face"]
    entries = len(w.history)
    slider = w.attribute_panel.rows["Male"].slider
    slider.sliderPressed.emit()  # a drag starts (one undo step for the whole drag)
    for value in range(1, 81):
        slider.setValue(value)
        if value % 8 == 0:
            QApplication.processEvents()
    slider.sliderReleased.emit()
    settle(w, qtbot)
    renders = w.bridge.submitted["face"] - submitted
    assert 1 <= renders < 40, renders  # far fewer renders than slider values
    alpha = MAX_ALPHA * 80 / SLIDER_STEPS
    assert w.state.edits == {"Male": pytest.approx(alpha)}
    assert torch.allclose(w.frame.z, w.engine.edit_z(base, {"Male": alpha}, []), atol=1e-6)
    assert len(w.history) == entries + 1


def test_lock_and_steer_keeps_locked_probabilities(make_window, qtbot):
    w = make_window()
    w.steer_config = SteerConfig(steps=8, until=None, preserve_weight=2.0)
    panel = w.attribute_panel
    locked = ["Male", "Young", "Eyeglasses", "Smiling", "Blond_Hair"]
    for name in locked:
        qtbot.mouseClick(panel.rows[name].lock, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert w.state.locked == frozenset(locked) and panel.locked() == set(locked)
    start = w.frame
    target = "Bald"
    t = w.engine.attribute_index(target)
    with qtbot.waitSignal(w.face_shown, timeout=30_000):
        qtbot.mouseClick(panel.rows[target].more, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    end = w.frame
    assert w.live_frames > 0  # live frames were shown while steering
    assert w.state.label == "more Bald" and w.state.locked == frozenset(locked)
    assert float(end.probs[t]) > float(start.probs[t]) + 0.05  # the target moved
    idx = [w.engine.attribute_index(n) for n in locked]
    drift = (end.probs[idx] - start.probs[idx]).abs().max().item()
    assert drift < 0.2, drift  # locked attributes stay within tolerance (untrained tiny models: ~0.13)
    # the button runs the engine's one composition of "+" with the lock toggles as its locks
    direct = run_inline(w.engine.window_steer_job, start.z, target, +1, sorted(locked), None, w.steer_config)
    assert torch.allclose(end.z, direct.frames[-1].z, atol=1e-5)
    # the probability bars show the steered face; the sliders restart from 0 on the new base
    assert panel.probability(target) == pytest.approx(float(end.probs[t]), abs=1e-3)
    assert all(panel.alpha(n) == 0 for n in panel.rows)
    assert w.last_steer is not None and len(w.last_steer.frames) == 9
    assert torch.equal(w.state.base, end.z)


class _HeavyOps(TorchDispatchMode):
    """Records the model-sized torch ops (convolutions, matrix products) run on the thread that entered it."""

    HEAVY = ("convolution", "conv2d", "mm", "addmm", "bmm", "matmul", "linear", "baddbmm")

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0].lstrip("_")
        if any(name.startswith(h) or name.endswith(h) for h in self.HEAVY):
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_steering_runs_every_model_off_the_gui_thread(make_window, qtbot):
    """What the code controls, not how fast the machine is: the GUI thread runs no model and no
    convolution or matrix product while steering, and it shows live frames before the result."""
    w = make_window()
    w.steer_config = SteerConfig(steps=40, until=None)
    gui = threading.get_ident()
    model_threads: set[int] = set()
    hooks = [m.register_forward_pre_hook(lambda *_: model_threads.add(threading.get_ident()))
             for model in (w.engine.generator, w.engine.classifier) for m in model.modules()]
    live_at_result: list[int] = []
    try:
        with _HeavyOps() as heavy:  # thread-local: sees only what the GUI thread runs
            task = w.steer("Smiling", -1)
            task.succeeded.connect(lambda _out: live_at_result.append(w.live_frames))
            qtbot.waitUntil(lambda: task.done, timeout=60_000)
    finally:
        for hook in hooks:
            hook.remove()
    assert task.state == "done"
    assert model_threads and gui not in model_threads  # G and C ran, and only on the worker
    assert model_threads == {w.engine.worker.thread.ident}
    assert heavy.ops == [], heavy.ops[:5]
    assert live_at_result and live_at_result[0] >= 1  # a live frame reached the view before the result


def test_a_busy_gui_thread_gets_one_frame_per_job_not_a_backlog(make_window, qtbot):
    """However many steps the worker finishes while the GUI thread is busy, the GUI then handles one
    progress frame (the newest) and the result: its work per job is bounded, not proportional."""
    w = make_window()
    w.steer_config = SteerConfig(steps=30, until=None)
    delivered: list[int] = []
    task = w.steer("Smiling", +1)
    task.progress.connect(lambda item: delivered.append(item.step))
    assert task.handle.wait(60)  # the GUI thread handles no events meanwhile, as when it is busy
    live = w.live_frames
    qtbot.waitUntil(lambda: task.done, timeout=10_000)
    assert delivered == [30]  # one frame, the newest, though 30 steps ran
    assert w.live_frames == live + 1
    settle(w, qtbot)
    assert w.state.label == "more Smiling" and torch.equal(w.frame.z, task.result.frames[-1].z)


def test_undo_redo_restore_z_exactly_with_the_shortcuts(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    z0 = w.frame.z
    w.attribute_panel.rows["Smiling"].slider.setValue(40)
    settle(w, qtbot)
    z1 = w.frame.z
    w.attribute_panel.rows["Eyeglasses"].more.click()
    settle(w, qtbot)
    z2 = w.frame.z
    assert not torch.equal(z1, z2) and not torch.equal(z0, z1)
    for expected, key, mods in ((z1, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier),
                                (z0, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier),
                                (z1, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier),
                                (z2, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)):
        qtbot.keyClick(w, key, mods)
        settle(w, qtbot)
        assert torch.equal(w.frame.z, expected)  # bit for bit
    # the sliders follow the history too
    w.action_undo.trigger()
    settle(w, qtbot)
    assert w.attribute_panel.alpha("Smiling") == pytest.approx(MAX_ALPHA * 40 / SLIDER_STEPS)
    assert w.action_undo.shortcut().toString() == "Ctrl+Z"
    assert "Ctrl+Shift+Z" in [s.toString() for s in w.action_redo.shortcuts()]


def test_undo_of_a_canvas_move_and_of_a_lock(make_window, qtbot):
    w = make_window()
    z0 = w.frame.z
    qtbot.mouseClick(w.attribute_panel.rows["Male"].lock, Qt.MouseButton.LeftButton)
    settle(w, qtbot)
    assert w.state.locked == {"Male"} and torch.equal(w.frame.z, z0)
    w.undo()
    settle(w, qtbot)
    assert w.state.locked == frozenset() and not w.attribute_panel.rows["Male"].lock.isChecked()


def test_space_gives_a_random_face_and_the_seed_field_a_chosen_one(make_window, qtbot):
    w = make_window()
    activate(w, qtbot)
    first = w.state.seed
    qtbot.keyClick(w, Qt.Key.Key_Space)
    settle(w, qtbot)
    assert w.state.seed is not None and w.seed_box.value() == w.state.seed
    random_z = w.frame.z
    w.seed_box.setValue(1234)  # as typing 1234 + Enter does (keyboard tracking is off)
    settle(w, qtbot)
    assert w.state.seed == 1234
    assert torch.equal(w.frame.z, w.engine.z_from_seed(1234)[0])
    assert not torch.equal(random_z, w.frame.z) or first == 1234
    w.seed_box.setFocus()
    w.seed_box.lineEdit().selectAll()
    qtbot.keyClicks(w.seed_box, "77")
    qtbot.keyClick(w.seed_box, Qt.Key.Key_Return)
    settle(w, qtbot)
    assert w.state.seed == 77 and torch.equal(w.frame.z, w.engine.z_from_seed(77)[0])
    assert w.action_random.shortcut().toString() == "Space"


def test_snapshot_strip_before_after_and_view_options(make_window, qtbot):
    w = make_window()
    start = w.frame
    w.take_snapshot()
    assert w.snapshot_strip.count() == 1
    w.attribute_panel.rows["Smiling"].slider.setValue(70)
    settle(w, qtbot)
    edited = w.frame
    # before/after: the starting face, then back
    w.action_before.trigger()
    assert w.face_view.badge() == "Before"
    assert w.face_view.image() == w.face_view.image()  # drawable
    from ui.images import to_qimage

    assert w.face_view.image() == to_qimage(start.image)
    w.action_before.trigger()
    assert w.face_view.image() == to_qimage(edited.image) and w.face_view.badge() == ""
    # snapshot restore is an undoable edit back to the snapshot's exact z
    item = w.snapshot_strip.item(0)
    rect = w.snapshot_strip.visualItemRect(item)
    qtbot.mouseClick(w.snapshot_strip.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    settle(w, qtbot)
    assert torch.equal(w.frame.z, start.z) and w.state.label.startswith("snapshot")
    w.undo()
    settle(w, qtbot)
    assert torch.equal(w.frame.z, edited.z)
    # crisp / smooth
    w.scale_combo.setCurrentIndex(1)
    assert w.face_view.smooth() and w.action_smooth.isChecked()
    w.action_smooth.trigger()
    assert not w.face_view.smooth() and w.scale_combo.currentIndex() == 0


def test_search_box_filters_the_attributes(make_window, qtbot):
    w = make_window()
    panel = w.attribute_panel
    qtbot.keyClicks(panel.search, "hair")
    visible = set(panel.visible_attributes())
    assert {"Black_Hair", "Blond_Hair", "Gray_Hair", "Bald", "Receding_Hairline"} <= visible  # the Hair group
    assert "Smiling" not in visible and "Eyeglasses" not in visible
    panel.search.clear()
    qtbot.keyClicks(panel.search, "glasses")
    assert panel.visible_attributes() == ["Eyeglasses"]
    panel.search.clear()
    qtbot.keyClicks(panel.search, "zzz")
    assert panel.visible_attributes() == [] and not panel.empty.isHidden()
    panel.search.clear()
    assert len(panel.visible_attributes()) == 40


def test_cancel_button_stops_a_long_steering_run(make_window, qtbot):
    w = make_window()
    w.steer_config = SteerConfig(steps=5000, until=None)
    before = w.frame
    task = w.steer("Smiling", +1)
    qtbot.waitUntil(lambda: w.live_frames > 2 and not w.cancel_button.isHidden(), timeout=20_000)
    qtbot.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: task.done, timeout=10_000)
    settle(w, qtbot)
    assert task.state == "cancelled" and w.cancel_button.isHidden()
    assert w.frame is before and w.state.label != "more Smiling"  # nothing changed
    assert "cancelled" in w.job_time.text()


def test_closing_the_window_during_a_job_cancels_it_cleanly(make_window, qtbot):
    w = make_window()
    w.steer_config = SteerConfig(steps=5000, until=None)
    task = w.steer("Young", -1)
    qtbot.waitUntil(lambda: w.live_frames > 2, timeout=20_000)
    worker = w.engine.worker
    w.close()
    assert task.handle.state is JobState.CANCELLED
    assert not worker.thread.is_alive() and worker.closed
    QApplication.processEvents()  # late events are dropped, not delivered to a closed window


def test_latent_canvas_drag_moves_z_in_the_plane(make_window, qtbot):
    w = make_window()
    panel = w.canvas_panel
    panel.select_axes("Smiling", "Male")
    settle(w, qtbot)
    cmap = w.canvas_map
    assert cmap.plane.labels == ("Smiling", "Male") and len(cmap.images) == cmap.n ** 2
    canvas = panel.canvas
    centre = canvas.to_pixel(0.0, 0.0).toPoint()
    target = centre + QPoint(40, -30)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseMove(canvas, pos=centre + QPoint(20, -15))
    qtbot.mouseMove(canvas, pos=target)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=target)
    settle(w, qtbot)
    u, v = canvas.handle()
    assert u > 0 and v > 0
    assert torch.allclose(w.frame.z, cmap.plane.point(u, v), atol=1e-6)
    assert w.state.label == "move on the canvas" and w.history.undo_label == "move on the canvas"
    # one drag is one undo step; undo returns to the face before the drag
    entries = len(w.history)
    w.undo()
    settle(w, qtbot)
    assert len(w.history) == entries and torch.allclose(w.frame.z, cmap.plane.origin, atol=1e-6)


def test_keyframe_pins_play_the_path(make_window, qtbot):
    w = make_window()
    panel = w.canvas_panel
    qtbot.mouseClick(panel.pin, Qt.MouseButton.LeftButton)
    assert not panel.play.isEnabled()
    panel.canvas.handle_moved.emit(2.0, 1.0)
    panel.canvas.handle_released.emit(2.0, 1.0)
    settle(w, qtbot)
    qtbot.mouseClick(panel.pin, Qt.MouseButton.LeftButton)
    assert len(w.keyframes) == 2 and panel.play.isEnabled()
    assert panel.canvas.pins() == [(0.0, 0.0), (2.0, 1.0)]
    qtbot.mouseClick(panel.play, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.face_view.badge().startswith("Path"), timeout=20_000)
    qtbot.waitUntil(lambda: w._play_index > 3, timeout=30_000)
    assert len(w._play_frames) == 24  # 2 pins, looped, 12 frames a segment
    assert torch.equal(w._play_frames[0].z, face_z(w.engine, w.keyframes[0].state))
    shown = w._play_frames[(w._play_index - 1) % len(w._play_frames)]  # the bars read the face on screen
    for name in ("Smiling", "Male"):
        p = float(shown.probs[w.engine.attribute_index(name)])
        assert w.attribute_panel.probability(name) == pytest.approx(p, abs=1e-3)
    qtbot.mouseClick(panel.play, Qt.MouseButton.LeftButton)
    assert w.face_view.badge() == "" and not panel.play.isChecked()
    w.clear_pins()
    assert len(w.keyframes) == 0 and panel.canvas.pins() == []


def test_canvas_axes_can_be_principal_components_or_random(make_window, qtbot):
    w = make_window()
    labels = [w.canvas_panel.axis_a.itemText(i) for i in range(w.canvas_panel.axis_a.count())]
    assert "Main variation 1" in labels and "Random direction 1" in labels and "Smiling" in labels
    w.canvas_panel.select_axes("Main variation 1", "Main variation 2")
    settle(w, qtbot)
    assert w.canvas_map.plane.labels == ("Main variation 1", "Main variation 2")
    w.canvas_panel.select_axes("Random direction 1", "Random direction 2")
    settle(w, qtbot)
    assert w.canvas_map.plane.labels == ("Random direction 1", "Random direction 2")
    w.canvas_panel.select_axes("Smiling", "Smiling")  # the same axis twice: a message, no crash
    settle(w, qtbot)
    assert "same way" in w.message()


def _drag_to_end(w, qtbot, name: str, sign: int) -> None:
    slider = w.attribute_panel.rows[name].slider
    slider.sliderPressed.emit()
    slider.setValue(sign * SLIDER_STEPS)
    slider.sliderReleased.emit()
    settle(w, qtbot)


def test_slider_at_its_end_short_of_the_attribute_offers_steering(make_window, qtbot, monkeypatch):
    w = make_window()
    # a slider ends where one "+" run gets; on the test models a 2-step run leaves some attributes short
    monkeypatch.setattr(w.engine, "steer_config", dataclasses.replace(w.engine.steer_config, steps=2))
    origin, z = w.state, w.frame.z

    def falls_short(name: str, sign: int) -> bool:  # what the engine says the slider's end gives
        p = float(w.engine.edit_job(z, {name: sign * MAX_ALPHA}).probs[w.engine.attribute_index(name)])
        return (p < 0.5) if sign > 0 else (p > 0.5)

    ends = [(n, s) for n in w.engine.attributes for s in (+1, -1)]
    short = next(end for end in ends if falls_short(*end))
    reached = next(end for end in ends if not falls_short(*end))
    _drag_to_end(w, qtbot, *reached)
    assert "slider is at its end" not in w.message()
    w._restore(origin)
    settle(w, qtbot)
    name, sign = short
    _drag_to_end(w, qtbot, name, sign)
    word = "more" if sign > 0 else "less"
    assert "slider is at its end" in w.message()
    assert w.message_bar.action.text().startswith(f"Steer {word}")
    w.message_bar.action.click()  # the hint's button runs the steering it names
    assert w._face_task is not None and word in w._face_task.name
    settle(w, qtbot, timeout=60_000)
    # half-way along the slider there is no hint, whatever the face reads
    w.message_bar.dismiss()
    slider = w.attribute_panel.rows[name].slider
    slider.sliderPressed.emit()
    slider.setValue(sign * SLIDER_STEPS // 2)
    slider.sliderReleased.emit()
    settle(w, qtbot)
    assert "slider is at its end" not in w.message()


def test_readout_names_what_else_changed_and_whether_it_is_the_same_person(make_window, qtbot):
    from core import identity
    from core.readout import side_effects

    w = make_window()
    assert w.readout.text() == ""  # the starting face: nothing to report
    start = w.start_frame
    w.attribute_panel.rows["Male"].slider.setValue(100)  # the slider at its end
    settle(w, qtbot)
    assert w.frame is not start
    text = w.readout.text()
    changes = side_effects(start.probs, w.frame.probs, w.engine.attributes, {"Male"})
    if changes:
        name, delta = changes[0]
        assert text.startswith("Also changed: " + display_name(name)) and "Male" not in text.split(":")[1]
    else:
        assert text.startswith("Nothing else changed")
    if identity.available():
        qtbot.waitUntil(lambda: "person" in w.readout.text(), timeout=20_000)
        first, _, second = w.readout.text().partition(". ")
        assert second and "person" in second  # two sentences: what else changed. Whether it is the same person.
    w.new_face(5)  # a new starting face clears it
    settle(w, qtbot)
    assert w.readout.text() == ""
