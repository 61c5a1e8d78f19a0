"""Nothing lost: File → Save/Open session, autosave of every change, the offer to restore after a
crash, snapshots that survive restarts, and "save your work?" on closing — for a `MainWindow`.

The session itself (and its file) is `core.session`; this module only connects it to the window.
The window keeps its history, snapshots and pins as today; the flow reads them as a `Session`
and, to open one, puts a session's objects back into the window and renders its face.

Autosave: a timer looks at a cheap fingerprint of the session twice a second and, once it has
stopped changing (a slider drag is saved when it pauses, not at every step), encodes the session
on the GUI thread (no copies: tensors are never changed in place) and hands it to a writer thread,
which writes `autosave-N.lsteer` atomically in the data folder. A running window holds
`autosave-N.lock` (a `QLockFile`, so a second window takes the next N); the file says `clean`
once the window has closed normally. A file that is not clean and whose lock is free was left by
a crash or a kill: the next start offers to restore it. A clean one gives back its snapshots.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QLockFile, QObject, QSettings, QStandardPaths, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from core.messages import one_line
from core.session import (SUFFIX, Encoded, ModelsInfo, Session, SessionError, encode, load_session, models_info,
                          read_meta, write_encoded)

AUTOSAVE_POLL_MS = 500
MAX_SLOTS = 8  # windows open at once, each with its own autosave file

_serials: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_next_serial = [0]


def _serial(obj: Any) -> int:
    """A number that names one live object for ever (ids are reused once an object is gone)."""
    if obj is None:
        return -1
    number = _serials.get(obj)
    if number is None:
        _next_serial[0] += 1
        number = _serials[obj] = _next_serial[0]
    return number


def default_data_dir() -> Path:
    """`$LATENT_STEER_DATA`, else the platform's per-user data folder for this app (QStandardPaths'
    AppDataLocation; needs the application name set)."""
    override = os.environ.get("LATENT_STEER_DATA")
    if override:
        return Path(override)
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))


def window_session(window) -> Session:
    """The window's editing session: the `Session` it edits (nothing copied), stamped with its models."""
    window.session.models = models_info(window.engine)
    return window.session


def work_fingerprint(session: Session) -> tuple:
    """What the user did: the states, where in the history, snapshots, pins, the "before" face."""
    h = session.history
    return (h.index, tuple(_serial(s) for s in h.states), tuple(_serial(s.state) for s in session.snapshots),
            tuple((_serial(k.state), k.uv) for k in session.keyframes), _serial(session.start))


def save_fingerprint(session: Session) -> tuple:
    """The work plus which faces have their exact code recorded (a render adds it: worth saving)."""
    return work_fingerprint(session), tuple(s.z is not None for s in session.history.states)


def models_check(window) -> ModelsInfo:
    return ModelsInfo(z_dim=window.engine.z_dim, attributes=list(window.engine.attributes))


class _Writer:
    """One background thread that writes the newest encoded session handed to it (older ones are
    dropped), so a large session (photos with their own generators) never stalls the window."""

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._cond = threading.Condition()
        self._job: tuple[Encoded, Path] | None = None
        self._busy = False
        self._stop = False
        self._on_error = on_error
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="session autosave", daemon=True)
        self._thread.start()

    def submit(self, encoded: Encoded, path: Path) -> None:
        with self._cond:
            self._job = (encoded, path)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait()
                if self._job is None:
                    return
                job, self._job, self._busy = self._job, None, True
            try:
                write_encoded(*job)
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - a failed autosave is reported, never fatal
                self._on_error(exc)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything handed over is written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._job is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        self.flush()
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(5.0)


def ask_save_changes(window) -> str:
    """'save' | 'discard' | 'cancel': the question asked before unsaved work would be lost."""
    box = QMessageBox(QMessageBox.Icon.Question, "Latent Steer", "Save the current editing session first?",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                      | QMessageBox.StandardButton.Cancel, window)
    box.setInformativeText("A session file keeps the face, its undo history, snapshots and pins; you can open "
                           "it later (File → Open session). Snapshots stay in the strip either way.")
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    answer = box.exec()
    return {QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard"}.get(QMessageBox.StandardButton(answer), "cancel")


def ask_restore(window, saved_at: float) -> bool:
    when = time.strftime("%d %b %H:%M", time.localtime(saved_at))
    answer = QMessageBox.question(window, "Latent Steer",
                                  f"Latent Steer did not close properly last time. Restore the editing session "
                                  f"autosaved at {when}?",
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.Yes)
    return answer == QMessageBox.StandardButton.Yes


class SessionFlow(QObject):
    """Saving, opening and autosaving a window's session; install once, then call `start()`."""

    autosaved = Signal()
    _write_failed = Signal(str)

    def __init__(self, window, data_dir: str | Path | None = None,
                 ask_close: Callable[[Any], str] = ask_save_changes,
                 ask_restore: Callable[[Any, float], bool] = ask_restore,
                 settings: QSettings | None = None, poll_ms: int = AUTOSAVE_POLL_MS) -> None:
        super().__init__(window)
        self.window = window
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.ask_close, self.ask_restore = ask_close, ask_restore
        self.settings = settings if settings is not None else window.settings
        self.path: Path | None = None  # the session file this work was last saved to or opened from
        self.autosave_path: Path | None = None
        self._lock: QLockFile | None = None
        self._clean_work = work_fingerprint(window_session(window))  # a fresh face is no work yet
        self._seen: tuple | None = None
        self._saved: tuple | None = None
        self._closed = False
        self._writer = _Writer(lambda exc: self._write_failed.emit(str(exc)))
        self._write_failed.connect(self._on_write_failed)
        self._warned = False
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        self._build_actions()
        window.installEventFilter(self)

    # ------------------------------------------------------------------ menu
    def _build_actions(self) -> None:
        w = self.window
        self.action_save = QAction("Save &session…", w)
        self.action_save.setShortcut(QKeySequence("Ctrl+Shift+S"))
        self.action_save.setToolTip("Save the editing session (history, snapshots, pins) to a file (Ctrl+Shift+S)")
        self.action_save.triggered.connect(self.save_dialog)
        self.action_open = QAction("Open s&ession…", w)
        self.action_open.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.action_open.setToolTip("Open a saved editing session (Ctrl+Shift+O)")
        self.action_open.triggered.connect(self.open_dialog)
        for action in (self.action_save, self.action_open):
            action.setShortcutContext(w.action_quit.shortcutContext())
            w.addAction(action)
        file_menu = self._file_menu()
        if file_menu is not None:
            file_menu.insertActions(w.action_quit, [self.action_open, self.action_save])
            file_menu.insertSeparator(w.action_quit)

    def _file_menu(self):
        for action in self.window.menuBar().actions():
            if action.menu() is not None and self.window.action_quit in action.menu().actions():
                return action.menu()
        return None

    # ------------------------------------------------------------------ start: slot, restore offer, snapshots
    def start(self) -> None:
        """Take an autosave slot; offer to restore what a crash left there, else bring back its snapshots."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.window.show_message(f"Autosave is off: the folder {self.data_dir} cannot be made ({exc.strerror}).",
                                     "warning")
            return
        for slot in range(MAX_SLOTS):
            lock = QLockFile(str(self.data_dir / f"autosave-{slot}.lock"))
            lock.setStaleLockTime(0)  # stale only when its process is gone, however long it ran
            if lock.tryLock(0):
                self._lock, self.autosave_path = lock, self.data_dir / f"autosave-{slot}{SUFFIX}"
                break
            if lock.error() != QLockFile.LockError.LockFailedError:  # not another window: the folder refuses
                self.window.show_message(f"Autosave is off: the folder {self.data_dir} cannot be written to.",
                                         "warning")
                return
        if self.autosave_path is None:
            self.window.show_message(f"Autosave is off: {MAX_SLOTS} Latent Steer windows are open already.", "warning")
            return
        if self.autosave_path.exists():
            self._take_over(self.autosave_path)
        self._seen = None
        self._timer.start()

    def _take_over(self, path: Path) -> None:
        try:
            clean = read_meta(path).get("clean") is True
            saved_at = path.stat().st_mtime
            session = load_session(path, check=models_check(self.window))  # read whole before offering it
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file does, the window still starts
            kept = self._move_aside(path)
            where = f"; it was kept as {kept}" if kept else ""
            self.window.show_message(f"The autosaved session could not be read, so it was not restored: "
                                     f"{one_line(exc)}{where}", "warning")
            return
        if not clean and self.ask_restore(self.window, saved_at):
            self.window.use_session(session)
            self._clean_work = None  # restored work is not saved to a file yet
            self.window.status_text.setText("Restored the autosaved editing session")
            self._note_other_models(session)
        elif len(session.snapshots):
            self.window.set_snapshots(session.snapshots)
            self._clean_work = work_fingerprint(window_session(self.window))

    @staticmethod
    def _move_aside(path: Path) -> Path | None:
        """Rename a file the autosave cannot read (a newer version's, a damaged one) so that the next
        autosave never writes over it; None when even that fails (then autosave is turned off)."""
        aside = path.with_name(f"{path.stem}-unreadable-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
        try:
            os.replace(path, aside)
            return aside
        except OSError:
            return None

    # ------------------------------------------------------------------ autosave
    def _poll(self) -> None:
        if self._closed:
            return
        fp = save_fingerprint(window_session(self.window))
        if fp != self._seen:
            self._seen = fp  # still changing: wait until it has settled for one tick
        elif fp != self._saved:
            self.autosave()

    def autosave(self, clean: bool = False) -> None:
        """Hand the session to the writer (the write happens on its thread)."""
        if self.autosave_path is None or self.window.history.current is None:
            return
        session = window_session(self.window)
        self._saved = save_fingerprint(session)
        self._writer.submit(encode(session, clean=clean, saved_at=time.time()), self.autosave_path)
        self.autosaved.emit()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the last autosave handed over is on disk (tests, closing)."""
        return self._writer.flush(timeout)

    def is_saved(self) -> bool:
        """The autosave file holds the session as it is now."""
        return self._saved == save_fingerprint(window_session(self.window)) and self._writer.flush(0.0)

    def _on_write_failed(self, text: str) -> None:
        if not self._warned:
            self._warned = True
            self.window.show_message(f"Autosave failed: {text}. Save the session yourself (File → Save session).",
                                     "warning")

    # ------------------------------------------------------------------ save / open
    def unsaved(self) -> bool:
        return work_fingerprint(window_session(self.window)) != self._clean_work

    def save(self, path: str | Path) -> Path | None:
        path = Path(path)
        if path.suffix.lower() != SUFFIX:
            path = path.with_name(path.name + SUFFIX)
        session = window_session(self.window)
        try:
            write_encoded(encode(session), path)
        except (OSError, ValueError) as exc:
            self.window.show_message(f"The session could not be saved: {exc}")
            return None
        self.path = path
        self._clean_work = work_fingerprint(session)
        self.window.status_text.setText(f"Saved the session to {path}")
        return path

    def _ask_path(self, saving: bool) -> str:
        """A file chosen in the dialog ('' when cancelled); its folder is remembered."""
        folder = self.settings.value("paths/session_dir", str(Path.home()), type=str)
        kinds = f"Latent Steer sessions (*{SUFFIX})"
        if saving:
            default = str(self.path) if self.path is not None else str(Path(folder) / f"session{SUFFIX}")
            path, _ = QFileDialog.getSaveFileName(self.window, "Save the editing session", default, kinds)
        else:
            path, _ = QFileDialog.getOpenFileName(self.window, "Open an editing session", folder,
                                                  f"{kinds};;All files (*)")
        if path:
            self.settings.setValue("paths/session_dir", str(Path(path).parent))
        return path

    def save_dialog(self) -> Path | None:
        path = self._ask_path(saving=True)
        return self.save(path) if path else None

    def open(self, path: str | Path) -> bool:
        """Replace the window's session by the one in `path` (the current one is left as it is on failure)."""
        try:
            session = load_session(path, check=models_check(self.window))
        except SessionError as exc:
            self.window.show_message(f"{exc}. Nothing was changed.")
            return False
        self.window.use_session(session)
        self._note_other_models(session)
        self.path = Path(path)
        self._clean_work = work_fingerprint(window_session(self.window))
        self.window.status_text.setText(f"Opened the session {Path(path).name}")
        return True

    def open_dialog(self) -> bool:
        if not self._may_replace():
            return False
        path = self._ask_path(saving=False)
        return self.open(path) if path else False

    def _note_other_models(self, session: Session) -> None:
        made_with = session.models.generator_hash
        if made_with is not None and made_with != self.window.engine.generator_hash:
            self.window.show_message("This session was made with another generator, so its faces look different "
                                     "here (and a photo's face needs the photo opened again).", "info")

    def _may_replace(self) -> bool:
        """Ask about unsaved work; False when the user cancels (or cancels the save)."""
        if not self.unsaved():
            return True
        answer = self.ask_close(self.window)
        if answer == "save":
            return self.save_dialog() is not None
        return answer == "discard"

    # ------------------------------------------------------------------ closing
    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.window and event.type() == QEvent.Type.Close and not self._closed:
            if not self._may_replace():
                event.ignore()
                return True
            self.close()
        return False

    def close(self) -> None:
        """Write the session one last time, marked clean (its snapshots come back next start)."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        if self.autosave_path is not None:
            self.autosave(clean=True)
        self._writer.stop()
        if self._lock is not None:
            self._lock.unlock()
