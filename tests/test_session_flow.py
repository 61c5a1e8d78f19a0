"""Nothing lost (issue 14 §2): the real window killed mid-edit comes back with the same z, history and
snapshots; File → Save/Open session; autosave; snapshots across restarts; closing with unsaved work
asks. The window runs offscreen on the test-built tiny models."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from core.session import SessionError, load_session, read_meta, save_session
from ui.session_flow import SessionFlow, models_check, window_session
from conftest import settle

ROOT = Path(__file__).resolve().parents[1]




def install(window, data_dir, **kw) -> SessionFlow:
    kw.setdefault("ask_close", lambda w: "discard")  # pytest-qt closes the window at teardown
    kw.setdefault("ask_restore", lambda w, t: pytest.fail("unexpected offer to restore"))
    flow = SessionFlow(window, data_dir, poll_ms=kw.pop("poll_ms", 50), **kw)
    flow.start()
    return flow


def edit(window, qtbot) -> None:
    """Two slider edits, a lock, a snapshot, a steering run, another snapshot, one undo."""
    panel = window.attribute_panel
    panel.rows["Smiling"].slider.setValue(panel.rows["Smiling"].slider.maximum() // 2)
    settle(window, qtbot)
    panel.rows["Male"].lock.setChecked(True)
    settle(window, qtbot)
    window.take_snapshot()
    panel.rows["Eyeglasses"].slider.setValue(panel.rows["Eyeglasses"].slider.minimum() // 3)
    settle(window, qtbot)
    window.steer("Young", 1)
    settle(window, qtbot)
    window.take_snapshot()
    window.undo()
    settle(window, qtbot)


def record(window) -> dict:
    """What must come back: the history (recipe + exact z of each state), its position, the snapshots."""
    h = window.history
    return {"index": h.index,
            "states": [(dict(s.alphas), sorted(s.locked), s.label, s.seed, s.z) for s in h.states],
            "z": window.frame.z, "snapshots": [(s.label, s.state.z, s.image) for s in window.snapshots]}


def assert_same(truth: dict, window) -> None:
    got = record(window)
    assert got["index"] == truth["index"] and len(got["states"]) == len(truth["states"])
    for (a, l, lab, seed, z), (a2, l2, lab2, seed2, z2) in zip(truth["states"], got["states"]):
        assert (a, l, lab, seed) == (a2, l2, lab2, seed2)
        assert (z is None and z2 is None) or torch.equal(z, z2)
    assert torch.equal(truth["z"], got["z"])  # the face on screen has exactly the same code
    assert len(truth["snapshots"]) == len(got["snapshots"])
    for (lab, z, image), (lab2, z2, image2) in zip(truth["snapshots"], got["snapshots"]):
        assert lab == lab2 and torch.equal(z, z2) and torch.equal(image, image2)


CHILD = textwrap.dedent("""
    import os, sys
    import torch
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    models, data, settings_file, truth, cache = sys.argv[1:6]
    sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "tests")]  # the repo, and conftest beside this test
    from core.engine import Engine
    from core.steering import SteerConfig
    from ui.app import run
    from ui.main_window import MainWindow
    from ui.session_flow import SessionFlow
    from tests.test_session_flow import record

    app = QApplication([])
    plan = []

    def window():
        return next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)), None)

    def steps(w):
        panel = w.attribute_panel
        yield lambda: panel.rows["Smiling"].slider.setValue(panel.rows["Smiling"].slider.maximum() // 2)
        yield lambda: panel.rows["Male"].lock.setChecked(True)
        yield w.take_snapshot
        yield lambda: panel.rows["Eyeglasses"].slider.setValue(panel.rows["Eyeglasses"].slider.minimum() // 3)
        yield lambda: w.steer("Young", 1)
        yield w.take_snapshot
        yield w.undo

    def tick():
        w = window()
        if w is None or not w.is_ready():
            return
        if not plan:
            w.steer_config = SteerConfig(steps=4, until=None)
            plan.append(steps(w))
        step = next(plan[0], None)
        if step is not None:
            step()
            return
        flow = w.findChild(SessionFlow)
        if flow.is_saved() and not os.path.exists(truth):
            facts = record(w)
            w.steer_config = SteerConfig(steps=10_000, until=None)
            task = w.steer("Smiling", 1)  # mid-edit: a long steering run is going when the kill comes
            facts["steering"] = task is not None and not task.done
            torch.save(facts, truth + ".part")
            os.replace(truth + ".part", truth)
            print("READY", flush=True)  # now the test kills this process (SIGKILL: nothing runs after)

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(50)
    settings = QSettings(settings_file, QSettings.Format.IniFormat)
    run([], engine_factory=lambda: Engine(models, device="cpu", directions_cache=cache), settings=settings,
        data_dir=data)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_mid_edit_then_restarted_restores_the_same_z_history_and_snapshots(make_window, qtbot, tiny_models,
                                                                                   tmp_path):
    data, truth = tmp_path / "data", tmp_path / "truth.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen", "LATENT_STEER_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tiny_models), str(data), str(tmp_path / "child.ini"),
                              str(truth), str(tmp_path / "directions")], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not truth.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert truth.exists(), f"the app never got through its edits: {child.poll()} {child.stderr.read()[-2000:]}"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # mid-session: no close, no clean autosave, the lock left behind
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    expected = torch.load(truth, weights_only=True)
    assert len(expected["snapshots"]) == 2 and expected["index"] < len(expected["states"]) - 1  # a redo branch
    assert expected["steering"]  # killed while a steering run was changing the face
    assert read_meta(data / "autosave-0.lsteer")["clean"] is False

    offers = []
    w = make_window(settings_file=tmp_path / "restart.ini")
    flow = install(w, data, ask_restore=lambda win, saved_at: offers.append(saved_at) or True)
    settle(w, qtbot)
    assert len(offers) == 1, w.message()  # the restart offered to restore the killed session
    assert flow.autosave_path == data / "autosave-0.lsteer"  # the dead process's slot is taken over
    assert_same(expected, w)
    assert w.snapshot_strip.count() == 2 and w.history.can_redo
    w.redo()  # the redo branch works: the steered face
    settle(w, qtbot)
    assert torch.equal(w.frame.z, expected["states"][expected["index"] + 1][4])
    assert flow.unsaved()  # restored work is not in a session file yet


def test_save_then_open_session_in_the_window(make_window, qtbot, tmp_path):
    w = make_window()
    flow = install(w, tmp_path / "data")
    w.steer_config.steps = 4
    edit(w, qtbot)
    truth = record(w)
    assert flow.unsaved()
    path = flow.save(tmp_path / "work")
    assert path == tmp_path / "work.lsteer" and not flow.unsaved()
    w.new_face(12345)  # something else
    settle(w, qtbot)
    w.remove_snapshot(0)
    assert flow.unsaved()
    flow.ask_close = lambda win: "discard"
    assert flow.open(path)
    settle(w, qtbot)
    assert_same(truth, w)
    assert not flow.unsaved() and flow.path == path
    assert "another generator" not in w.message()
    session = load_session(path)
    session.models.generator_hash = "0" * 16
    assert flow.open(save_session(session, tmp_path / "old-models.lsteer"))
    assert "another generator" in w.message()
    # the File menu has both actions
    names = [a.text() for a in w.menuBar().actions()[0].menu().actions()]
    assert "Save &session…" in names and "Open s&ession…" in names


def test_opening_a_damaged_session_changes_nothing(make_window, qtbot, tmp_path):
    w = make_window()
    flow = install(w, tmp_path / "data")
    before = w.state
    bad = tmp_path / "bad.lsteer"
    bad.write_bytes(b"PK\x03\x04 not really")
    assert not flow.open(bad)
    assert w.state is before and "bad.lsteer" in w.message() and "Nothing was changed" in w.message()


def test_autosave_follows_changes_once_they_settle(make_window, qtbot, tmp_path):
    w = make_window()
    flow = install(w, tmp_path / "data")
    qtbot.waitUntil(flow.is_saved, timeout=10_000)
    w.new_face(7)
    settle(w, qtbot)
    qtbot.waitUntil(flow.is_saved, timeout=10_000)
    saved = load_session(flow.autosave_path)
    assert read_meta(flow.autosave_path)["clean"] is False
    assert saved.current.seed == 7 and torch.equal(saved.current.z, w.state.z)
    assert len(saved.history) == len(w.history)
    w.add_pin()  # pins and snapshots are changes too
    w.take_snapshot()
    qtbot.waitUntil(flow.is_saved, timeout=10_000)
    saved = load_session(flow.autosave_path)
    assert len(saved.keyframes) == 1 and len(saved.snapshots) == 1
    w.remove_snapshot(0)
    qtbot.waitUntil(flow.is_saved, timeout=10_000)
    assert len(load_session(flow.autosave_path).snapshots) == 0


def test_snapshots_survive_a_normal_restart(make_window, qtbot, tmp_path):
    data = tmp_path / "data"
    w = make_window()
    flow = install(w, data, ask_close=lambda win: "discard")
    w.take_snapshot()
    image = w.snapshots[0].image
    w.new_face(99)
    settle(w, qtbot)
    w.close()  # asks (there is work), discarded: the session file is not written, the snapshots are kept
    assert read_meta(data / "autosave-0.lsteer")["clean"] is True
    assert not (data / "autosave-0.lock").exists()
    w2 = make_window(settings_file=tmp_path / "second.ini")
    install(w2, data)  # a clean close: no offer to restore
    assert len(w2.snapshots) == 1 and torch.equal(w2.snapshots[0].image, image) and w2.snapshot_strip.count() == 1
    assert len(w2.history) == 1  # the face and history start afresh
    w2.restore_snapshot(0)
    settle(w2, qtbot)
    assert torch.equal(w2.frame.image, image)


def test_closing_with_unsaved_work_asks(make_window, qtbot, tmp_path, monkeypatch):
    w = make_window()
    answers = ["cancel"]
    asked = []
    flow = install(w, tmp_path / "data", ask_close=lambda win: (asked.append(1), answers.pop(0))[1])
    w.close()  # nothing done yet: no question
    assert not asked and not w.isVisible()
    w = make_window(settings_file=tmp_path / "b.ini")
    flow = install(w, tmp_path / "data2", ask_close=lambda win: (asked.append(1), answers.pop(0))[1])
    w.new_face(5)
    settle(w, qtbot)
    assert not w.close() and w.isVisible() and len(asked) == 1  # Cancel keeps the window and its work
    answers.append("save")
    target = tmp_path / "kept.lsteer"
    monkeypatch.setattr("ui.session_flow.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), ""))
    assert w.close() and len(asked) == 2 and not w.isVisible()
    assert load_session(target).current.seed == 5


def test_a_second_window_autosaves_to_its_own_file(make_window, qtbot, tmp_path):
    data = tmp_path / "data"
    a = install(make_window(), data)
    b = install(make_window(settings_file=tmp_path / "b.ini"), data)
    assert a.autosave_path != b.autosave_path


def test_window_session_is_the_windows_objects(make_window):
    w = make_window()
    s = window_session(w)
    assert s.history is w.history and s.snapshots is w.snapshots and s.keyframes is w.keyframes
    assert s.models.z_dim == w.engine.z_dim


def test_a_session_from_other_models_is_refused_by_the_window(make_window, qtbot, tmp_path):
    w = make_window()
    flow = install(w, tmp_path / "data")
    session = window_session(w)
    session.history.current.alphas = {"Not_An_Attribute": 1.0}
    path = save_session(session, tmp_path / "other.lsteer")
    with pytest.raises(SessionError):
        load_session(path, check=models_check(w))
    assert not flow.open(path) and "Not_An_Attribute" in w.message()


def test_a_photo_face_comes_back_with_its_own_generator(make_window, qtbot, tmp_path):
    """A photo's face is its z under its own tuned generator: the session keeps the generator change,
    so the opened face is the same picture, not the shared generator's reading of that z."""
    import copy

    from core.history import EditState
    from core.tuning import make_delta

    w = make_window()
    flow = install(w, tmp_path / "data")
    tuned = copy.deepcopy(w.engine.generator)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))
    delta = make_delta(w.engine.generator, tuned, w.engine.generator_hash)
    z = w.engine.z_from_seed(77)[0]
    photo = EditState(base=z, label="photo me.jpg", z=z, generator=delta)
    w._start_new_face(photo)
    w._apply(photo)
    settle(w, qtbot)
    w.take_snapshot()
    shown = w.frame.image
    assert not torch.equal(shown, w.engine.render(z)[0].image)  # its own generator draws another picture
    path = flow.save(tmp_path / "photo.lsteer")
    w.new_face(1)
    settle(w, qtbot)
    assert flow.open(path)
    settle(w, qtbot)
    assert w.state.generator is not None and w.state.generator.key == delta.key
    assert torch.equal(w.frame.image, shown) and torch.equal(w.frame.z, z)
    assert torch.equal(w.snapshots[0].image, shown) and w.snapshots[0].state.generator is w.state.generator


@pytest.mark.parametrize("button, answer", [("Save", "save"), ("Discard", "discard"), ("Cancel", "cancel")])
def test_the_close_question_maps_its_buttons(qapp, monkeypatch, button, answer):
    from PySide6.QtWidgets import QMessageBox

    from ui.session_flow import ask_save_changes

    monkeypatch.setattr(QMessageBox, "exec", lambda self: getattr(QMessageBox.StandardButton, button).value)
    assert ask_save_changes(None) == answer


def test_the_window_edits_a_core_session_the_cli_can_read(make_window, qtbot, tmp_path):
    """One session model: the window's history, snapshots, pins and "before" face are a
    core.session.Session's, so what it holds is what `--session` commands read and write."""
    from core.session import Session

    w = make_window()
    assert isinstance(w.session, Session)
    w.take_snapshot()
    w.add_pin()
    assert w.session.history is w.history and w.session.current is w.state
    assert w.session.snapshots is w.snapshots and len(w.session.snapshots) == 1
    assert w.session.keyframes is w.keyframes and len(w.session.keyframes) == 1
    assert w.session.start is w.state  # a fresh face is its own "before"
    assert window_session(w) is w.session and w.session.models.z_dim == w.engine.z_dim
