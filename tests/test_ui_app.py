"""Starting the app, remembered settings, light/dark palettes, missing directions, and the pieces
under the window: the bridge (worker callbacks -> GUI-thread signals), images, the PySide6 fix."""
from __future__ import annotations

import shutil
import sys
import threading

import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from core.engine import Engine, Notice, Progress
from ui.bridge import Bridge
from ui.images import qimage_to_png_bytes, to_array, to_qimage
from conftest import settle




# -- starting -----------------------------------------------------------------------------------


def test_run_shows_a_clear_dialog_when_models_are_missing(qapp, tmp_path, monkeypatch):
    from ui.app import run

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(QMessageBox, "critical", staticmethod(lambda parent, title, text: shown.append((title, text))))
    assert run([], models_dir=tmp_path / "nothing-here") == 1
    title, text = shown[0]
    assert "models" in title and str(tmp_path / "nothing-here") in text and "generator.pt" in text
    assert not _visible_splashes()  # the splash does not hide the error dialog


def _visible_splashes() -> list:
    from PySide6.QtWidgets import QSplashScreen

    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QSplashScreen) and w.isVisible()]


def test_run_shows_a_clear_dialog_when_a_model_is_broken(qapp, tmp_path, tiny_models, monkeypatch):
    from ui.app import run

    broken = tmp_path / "broken"
    shutil.copytree(tiny_models, broken)
    (broken / "generator.pt").write_bytes(b"not a checkpoint")
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", staticmethod(lambda parent, title, text: shown.append(text)))
    assert run([], models_dir=broken) == 1
    assert "generator.pt" in shown[0]


def test_run_opens_the_window_and_returns_the_exit_code(qapp, qtbot, tmp_path, tiny_models, monkeypatch):
    from ui.app import run
    from ui.main_window import MainWindow

    seen: list[MainWindow] = []
    splash_while_loading: list[int] = []

    def load() -> Engine:  # the models load (seconds on a busy machine) behind a splash, not nothing
        splash_while_loading.append(len(_visible_splashes()))
        return Engine(tiny_models, device="cpu", directions_cache=tmp_path / "d")

    def fake_exec(app) -> int:  # a real exec() + quit() would end pytest-qt's event loop for later tests
        qtbot.waitUntil(lambda: any(isinstance(w, MainWindow) and w.isVisible() and w.is_ready()
                                    for w in QApplication.topLevelWidgets()), timeout=20_000)
        qtbot.waitUntil(lambda: not _visible_splashes(), timeout=5_000)  # gone once the window is up
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        seen.append(window)
        window.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    settings = QSettings(str(tmp_path / "run.ini"), QSettings.Format.IniFormat)
    code = run([], engine_factory=load, settings=settings, data_dir=tmp_path / "data")
    assert splash_while_loading == [1]
    assert code == 0 and seen and seen[0].frame is not None and seen[0].engine.worker.closed
    assert QApplication.applicationName() == "Latent Steer"
    seen[0].deleteLater()


def test_main_gui_entry_calls_run(monkeypatch):
    import main
    import ui.app

    monkeypatch.setattr(ui.app, "run", lambda: 7)
    assert main.main([]) == 7  # `python main.py` with no subcommand opens the window through ui.app.run


# -- settings and palettes ----------------------------------------------------------------------


def test_geometry_and_last_settings_are_remembered(make_window, qtbot, tmp_path):
    ini = tmp_path / "remember.ini"
    w = make_window(settings_file=ini)
    w.resize(1024, 700)  # the offscreen screen is 800 px: wider would be clamped on restore
    sizes = [400, 420, 300]
    w.splitter.setSizes(sizes)
    sizes = w.splitter.sizes()
    w.action_smooth.setChecked(True)
    w.canvas_panel.extent.setValue(4.5)
    w.canvas_panel.grid.setValue(5)
    w.canvas_panel.select_axes("Young", "Eyeglasses")
    w.seed_box.setValue(42)
    settle(w, qtbot)
    w.close()
    again = make_window(settings_file=ini)
    assert (again.width(), again.height()) == (1024, 700)
    assert again.splitter.sizes() == sizes
    assert again.action_smooth.isChecked() and again.face_view.smooth()
    assert again.canvas_panel.extent.value() == 4.5 and again.canvas_panel.grid.value() == 5
    assert (again.canvas_panel.axis_a.currentText(), again.canvas_panel.axis_b.currentText()) == ("Young", "Eyeglasses")
    assert again.state.seed == 42


def dark_palette() -> QPalette:
    p = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, "#202124"), (QPalette.ColorRole.WindowText, "#e8eaed"),
                         (QPalette.ColorRole.Base, "#17181a"), (QPalette.ColorRole.AlternateBase, "#2a2b2e"),
                         (QPalette.ColorRole.Text, "#e8eaed"), (QPalette.ColorRole.Button, "#2d2e31"),
                         (QPalette.ColorRole.ButtonText, "#e8eaed"), (QPalette.ColorRole.Highlight, "#8ab4f8"),
                         (QPalette.ColorRole.HighlightedText, "#202124")):
        p.setColor(role, QColor(colour))
    return p


def test_light_and_dark_palettes(make_window, qtbot):
    w = make_window()
    app = QApplication.instance()
    light = app.palette()
    try:
        for palette in (dark_palette(), light):
            app.setPalette(palette)
            QApplication.processEvents()
            image = w.grab().toImage()
            assert not image.isNull()
            # the icons are redrawn in the palette's text colour
            icon = w.action_undo.icon().pixmap(32, 32).toImage()
            colours = {icon.pixelColor(x, y).name() for x in range(32) for y in range(32) if icon.pixelColor(x, y).alpha() > 200}
            assert palette.color(QPalette.ColorRole.ButtonText).name() in colours
            # the canvas background follows the palette
            canvas = w.canvas_panel.canvas
            canvas.clear_map()
            shot = canvas.grab().toImage()
            corner = canvas.area().topLeft().toPoint()
            assert shot.pixelColor(corner.x() + 3, corner.y() + 3).name() == palette.color(QPalette.ColorRole.Base).name()
    finally:
        app.setPalette(light)


def test_without_directions_the_window_offers_to_fit_them(make_window, qtbot, tmp_path, tiny_models):
    models = tmp_path / "no-directions"
    shutil.copytree(tiny_models, models)
    (models / "directions.pt").unlink()
    w = make_window(models=models)
    assert w.engine.directions is None and w.directions_available is None
    assert "not fitted" in w.message() and w.message_bar.action.text() == "Learn the sliders"
    assert not w.attribute_panel.rows["Smiling"].slider.isEnabled()
    labels = [w.canvas_panel.axis_a.itemText(i) for i in range(w.canvas_panel.axis_a.count())]
    assert labels == ["Random direction 1", "Random direction 2"]
    # steering works without directions
    w.attribute_panel.rows["Smiling"].more.click()
    settle(w, qtbot)
    assert w.state.label == "more Smiling"
    qtbot.mouseClick(w.message_bar.action, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.fit_confirm is not None, timeout=30_000)  # it asks first, with an estimate
    qtbot.mouseClick(w.fit_confirm.fit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.directions_available is not None, timeout=60_000)
    settle(w, qtbot)
    assert w.engine.directions is not None and w.attribute_panel.rows["Smiling"].slider.isEnabled()
    assert (tmp_path / "directions").exists()  # cached in the test's folder, not the user's
    assert "Smiling" in [w.canvas_panel.axis_a.itemText(i) for i in range(w.canvas_panel.axis_a.count())]


# -- the bridge ---------------------------------------------------------------------------------


@pytest.fixture
def engine(tiny_models, tmp_path):
    e = Engine(tiny_models, device="cpu", directions_cache=tmp_path / "d")
    yield e
    e.close()


def test_bridge_delivers_results_progress_and_errors_on_the_gui_thread(qtbot, engine):
    bridge = Bridge(engine)
    gui = threading.current_thread()
    seen: list[tuple[str, object, threading.Thread]] = []

    def job():
        for i in range(5):
            yield Progress(step=i + 1, total=5)
        yield Notice("hello")
        return None  # a None result is delivered like any other

    notices: list[str] = []
    bridge.notice.connect(notices.append)
    task = bridge.submit(job, long=True,
                         on_progress=lambda p: seen.append(("progress", p, threading.current_thread())),
                         on_result=lambda r: seen.append(("result", r, threading.current_thread())))
    qtbot.waitUntil(lambda: task.done, timeout=10_000)
    assert task.state == "done" and seen[-1][:2] == ("result", None)
    assert all(t is gui for _, _, t in seen) and notices == ["hello"]
    assert any(kind == "progress" for kind, _, _ in seen)

    def boom():
        raise ValueError("bad input")

    errors: list[BaseException] = []
    failed = bridge.submit(boom, on_error=errors.append)
    qtbot.waitUntil(lambda: failed.done, timeout=10_000)
    assert failed.state == "failed" and str(errors[0]) == "bad input"
    assert bridge.idle()
    bridge.shutdown()
    assert engine.worker.closed


def test_bridge_request_keeps_one_job_in_flight_and_one_waiting(qtbot, engine):
    bridge = Bridge(engine)
    gate = threading.Event()
    done: list[int] = []

    def slow(i):
        gate.wait(60)  # released by the test; the bound only keeps a broken test from hanging
        return i

    for i in range(20):
        bridge.request("k", slow, i, on_result=done.append)
    assert bridge.submitted["k"] == 1 and bridge.has_pending("k")
    gate.set()
    qtbot.waitUntil(bridge.idle, timeout=10_000)
    assert done == [0, 19]  # the first, then only the newest
    bridge.shutdown()


def test_bridge_coalesces_progress_so_the_gui_is_never_flooded(qtbot, engine):
    bridge = Bridge(engine)
    got: list[int] = []

    def chatty():
        for i in range(20_000):
            yield Progress(step=i + 1, total=20_000)
        return "ok"

    task = bridge.submit(chatty, on_progress=lambda p: got.append(p.step))
    qtbot.waitUntil(lambda: task.done, timeout=30_000)
    assert task.result == "ok" and 0 < len(got) < 20_000 and got == sorted(got)
    bridge.shutdown()


# -- images and the PySide6 workaround ----------------------------------------------------------


def test_images_convert_and_copy_their_pixels():
    t = torch.zeros(3, 4, 5, dtype=torch.uint8)
    t[0, 1, 2] = 255
    img = to_qimage(t)
    assert (img.width(), img.height()) == (5, 4) and img.pixelColor(2, 1).red() == 255
    t[0, 1, 2] = 0  # the QImage owns a copy
    assert img.pixelColor(2, 1).red() == 255
    assert to_array(np.zeros((4, 5, 3), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(ValueError):
        to_array(np.zeros((4, 5), np.uint8))
    png = qimage_to_png_bytes(img)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_qt_binding_keeps_references_to_none_and_true(qapp):
    """PySide6 6.12.0 drops a reference to None/True per void call or emit on Python 3.11 and the
    interpreter aborts after a few thousand; pyproject excludes it. This guards the pin."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    before_none, before_true = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(200):
        probe.setObjectName("probe")
        probe.ping.emit()
    assert before_none - sys.getrefcount(None) < 100
    assert before_true - sys.getrefcount(True) < 100
