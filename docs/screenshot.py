"""Take the README's screenshot: the real window on a virtual X screen, after a few real edits.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb python docs/screenshot.py docs/window.png

Opens the app on the shipped models, picks a face, moves a slider, locks an attribute, drops a
keyframe pin, waits until every job has finished, then grabs the window.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.engine import MODELS_DIR, Engine  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402


def main(out: str, models: str = str(MODELS_DIR)) -> int:
    app = QApplication(sys.argv[:1])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "shot.ini"), QSettings.Format.IniFormat)
    window = MainWindow(Engine(models), settings=settings)
    window.resize(1480, 900)
    window.show()
    steps = [
        lambda: window.new_face(seed=11),
        lambda: window._on_alpha("Smiling", 2.0),
        lambda: window._on_lock("Male", True),
        lambda: window.add_pin(),
    ]

    def run_step() -> None:
        if not window.is_ready():
            QTimer.singleShot(100, run_step)
            return
        if steps:
            steps.pop(0)()
            QTimer.singleShot(300, run_step)
            return
        QTimer.singleShot(1500, finish)

    def finish() -> None:
        if not window.is_ready():
            QTimer.singleShot(200, finish)
            return
        window.grab().save(out)
        print(f"wrote {out} ({window.width()}×{window.height()})")
        window.close()
        app.quit()

    QTimer.singleShot(500, run_step)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
