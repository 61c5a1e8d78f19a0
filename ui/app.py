"""Starting the desktop app: the QApplication, the engine (with a clear dialog when the models are
missing or broken), the main window."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

ORGANISATION = "Latent Steer"
APPLICATION = "Latent Steer"


def models_error_text(models_dir: Path, exc: BaseException) -> str:
    return (f"The models could not be loaded from {models_dir}:\n\n{exc}\n\n"
            "The app needs generator.pt and classifier.pt there (encoder.pt too, to open photos). "
            "Train them with the scripts in training/ (see README.md) or copy the shipped checkpoints into "
            "that folder, then start the app again.")


def run(argv: Sequence[str] | None = None, engine_factory: Callable[[], object] | None = None,
        models_dir: str | os.PathLike | None = None, settings: QSettings | None = None,
        device: str = "auto", data_dir: str | os.PathLike | None = None) -> int:
    """Open the app and return its exit code (1 when the models cannot be loaded).

    `engine_factory` (a callable returning an `Engine`) or `models_dir` replace the shipped
    models, e.g. for tests; `settings` replaces the user's QSettings; `data_dir` the platform data
    folder where the session is autosaved (ui.session_flow).
    """
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APPLICATION)
    import resources
    from PySide6.QtGui import QIcon

    app.setWindowIcon(QIcon(str(resources.ICON)))
    from ui.splash import say, show_splash

    splash = show_splash(app)  # on screen before torch imports and the models load
    mark("splash")
    from core.engine import MODELS_DIR, Engine

    folder = Path(models_dir) if models_dir is not None else MODELS_DIR
    try:
        engine = engine_factory() if engine_factory is not None else Engine(folder, device=device)
    except Exception as exc:  # noqa: BLE001 - any failure to load must become a dialog, not a traceback
        splash.close()
        QMessageBox.critical(None, "Latent Steer: models missing or broken", models_error_text(folder, exc))
        return 1

    say(splash, "Opening the window…")
    from ui.main_window import MainWindow
    from ui.session_flow import SessionFlow

    window = MainWindow(engine, settings=settings)
    window.face_shown.connect(lambda: mark("face"))
    flow = SessionFlow(window, data_dir)
    window.show()
    splash.finish(window)
    mark("window")
    flow.start()  # may ask whether to restore what a crash left
    return app.exec()


def mark(event: str) -> None:
    """With LATENT_STEER_STARTUP_PROBE set (`main.py bench` does), print when `event` happened and
    quit once the first face is on screen: how the start-up time is measured, in a fresh process."""
    if not os.environ.get("LATENT_STEER_STARTUP_PROBE"):
        return
    import time

    print(f"startup {event} {time.time():.3f}", flush=True)
    if event == "face":
        app = QApplication.instance()
        if app is not None and not getattr(app, "_probe_quit", False):
            app._probe_quit = True  # the first face only
            from PySide6.QtCore import QTimer

            QTimer.singleShot(0, app.closeAllWindows)  # a normal close: jobs stop, autosave says clean
