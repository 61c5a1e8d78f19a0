"""The main window: face view, attribute panel, latent canvas, snapshots, history, photo drops.

The window keeps the editor's state as `core.history.EditState` recipes and never runs model
code: every face, steering run, inversion, canvas map and export is a job submitted through the
`Bridge` (which uses `Engine.submit`), and results come back as signals on the GUI thread.
"""
from __future__ import annotations

from typing import Any

import torch
from PySide6.QtCore import QSettings, QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QMainWindow, QProgressBar, QSizePolicy, QSpinBox,
                               QSplitter, QToolBar, QToolButton, QVBoxLayout, QWidget)

from core.directions import FitConfig
from core.engine import Engine, Frame, SteerOutcome
from core.history import EditState, History, Keyframes, Snapshots
from core.inversion import InvertConfig
from core.jobs import CanvasMap, FaceResult, render_face
from core.policy import WINDOW_STEER
from core.session import Session, models_info
from core.worker import JobState
from ui.attribute_panel import AttributePanel
from ui.bridge import Bridge, Task
from ui.canvas_flow import MAP_DELAY_MS, PLAY_FPS, CanvasFlow
from ui.dialogs import ShortcutsDialog, shortcut_rows
from ui.directions_flow import FIT_BATCH, DirectionsFlow
from ui.edit_flow import NO_SEED, SEED_BOX_MAX, EditFlow
from ui.face_view import FaceView
from ui.gif_dialog import GifDialog
from ui.icons import IconBinder
from ui.latent_canvas import CanvasPanel
from ui.message_bar import MessageBar
from ui.photo_flow import PhotoFlow
from ui.photo_panel import PhotoPanel
from ui.snapshot_strip import SnapshotStrip
from ui.theme import theme_actions

BLANK_SNAPSHOT = torch.zeros(3, 64, 64, dtype=torch.uint8)  # a snapshot saved without its picture


def _session_part(name: str) -> property:
    """A window attribute that reads and writes `window.session.<name>` (the window keeps no copy)."""
    return property(lambda self: getattr(self.session, name), lambda self, value: setattr(self.session, name, value))


class MainWindow(EditFlow, PhotoFlow, CanvasFlow, DirectionsFlow, QMainWindow):
    face_shown = Signal()  # the face of the current state is on screen

    def __init__(self, engine: Engine, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings if settings is not None else QSettings()
        self.icons = IconBinder()
        self.bridge = Bridge(engine, self)
        # The editing session — history, snapshots, pins, the "before" face — is a core.session.Session,
        # the same model the CLI's --session reads and writes; the properties below are views of it.
        self.session = Session(models=models_info(engine))
        self.state: EditState | None = None  # the face being edited (a recipe; the history's current)
        self.frame: Frame | None = None  # the rendered face of `frame_state`
        self.frame_state: EditState | None = None
        self.start_frame: Frame | None = None  # the rendered "before" face (`session.start`)
        self.directions_available: list[bool] | None = None
        self.steer_config = WINDOW_STEER
        self.invert_config = InvertConfig()
        self.fit_config = FitConfig(batch_size=FIT_BATCH)
        self.last_steer: SteerOutcome | None = None
        self.last_steer_targets: list[str] = []
        self.last_attribute: str | None = None
        self._reach_check: str | None = None  # a slider just released: say so if its end falls short
        self.canvas_map: CanvasMap | None = None
        self.live_frames = 0  # live frames shown from steering / inversion (for tests and curiosity)
        self.gif_dialog: GifDialog | None = None
        self._face_task: Task | None = None  # the running face-changing long job (steer, photo)
        self._play_task: Task | None = None
        self._play_frames: list[Frame] = []
        self._play_index = 0
        self._pin_uv: list[tuple[float, float]] = []
        self._canvas_drag = False
        self._closing = False
        self._fit_task: Task | None = None
        self.fit_confirm = None  # the open "Fit latent directions?" question (a QMessageBox)
        self.shortcuts_dialog: ShortcutsDialog | None = None
        self.face_grid = self.mix_dialog = None  # the "Pick a face" and "Mix two faces" dialogs

        self._play_timer = QTimer(self)
        self._play_timer.setInterval(round(1000 / PLAY_FPS))
        self._play_timer.timeout.connect(self._play_tick)
        self._map_timer = QTimer(self)
        self._map_timer.setSingleShot(True)
        self._map_timer.setInterval(MAP_DELAY_MS)
        self._map_timer.timeout.connect(self._refresh_map)

        self._build_ui()
        self._build_actions()
        self._connect()
        self._restore_settings()
        self._update_actions()
        self._refresh_directions()
        self.new_face(self.settings.value("face/seed", 0, type=int))
        self.face_view.setFocus()  # the keyboard starts on the face, not in the attribute filter

    # =========================================================================== the session's parts
    history: History = _session_part("history")
    snapshots: Snapshots = _session_part("snapshots")
    keyframes: Keyframes = _session_part("keyframes")
    _start_state: EditState | None = _session_part("start")  # the "before" face's state

    # =========================================================================== building
    def _build_ui(self) -> None:
        self.setWindowTitle("Latent Steer")
        self.setAcceptDrops(True)
        self.setMinimumSize(1024, 640)
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(6, 6, 6, 6)
        self.message_bar = MessageBar(self.icons, central)
        column.addWidget(self.message_bar)

        # face column: the face, its view options, the photo being inverted
        face_col = QWidget(central)
        fc = QVBoxLayout(face_col)
        fc.setContentsMargins(0, 0, 0, 0)
        self.face_view = FaceView(face_col)
        self.face_view.setToolTip("Drop a photo here (or anywhere in the window) to edit it")
        fc.addWidget(self.face_view, 1)
        row = QHBoxLayout()
        self.before_button = QToolButton(face_col)
        self.before_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.scale_combo = QComboBox(face_col)
        self.scale_combo.addItem("Crisp pixels (nearest)", False)
        self.scale_combo.addItem("Smooth", True)
        self.scale_combo.setToolTip("How the 64-px face is enlarged")
        self.caption = QLabel(face_col)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        row.addWidget(self.before_button)
        row.addWidget(self.scale_combo)
        row.addWidget(self.caption, 1)
        fc.addLayout(row)
        self.readout = QLabel(face_col)  # what the edit did besides its target, and is it still the person
        self.readout.setWordWrap(True)
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.readout.setFixedHeight(3 * self.readout.fontMetrics().lineSpacing() + 4)  # the face never jumps
        self.readout.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        fc.addWidget(self.readout)
        self.photo_panel = PhotoPanel(face_col)  # photo | aligned crop | result, for a face from a photo
        policy = self.photo_panel.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # its space is kept, so the face does not move when it appears
        self.photo_panel.setSizePolicy(policy)
        self.photo_panel.setVisible(False)
        fc.addWidget(self.photo_panel)
        face_col.setMinimumWidth(280)

        self.attribute_panel = AttributePanel(self.engine.attributes, self.icons, central)
        self.canvas_panel = CanvasPanel(self.icons, central)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.splitter.addWidget(face_col)
        self.splitter.addWidget(self.attribute_panel)
        self.splitter.addWidget(self.canvas_panel)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setStretchFactor(2, 2)
        column.addWidget(self.splitter, 1)
        strip_row = QHBoxLayout()
        self.snapshot_label = QLabel("Snapshots", central)
        strip_row.addWidget(self.snapshot_label)
        self.snapshot_strip = SnapshotStrip(central)
        strip_row.addWidget(self.snapshot_strip, 1)
        column.addLayout(strip_row)
        self.setCentralWidget(central)

        bar = self.statusBar()
        self.status_text = QLabel("Ready", self)
        self.job_progress = QProgressBar(self)
        self.job_progress.setMaximumWidth(180)
        self.job_progress.setVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.icons.bind(self.cancel_button, "cancel")
        self.cancel_button.setVisible(False)
        self.job_time = QLabel("", self)
        self.device_label = QLabel(f"Device: {self.engine.device_name}", self)
        bar.addWidget(self.status_text, 1)
        bar.addPermanentWidget(self.job_progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.job_time)
        bar.addPermanentWidget(self.device_label)

    def _action(self, text: str, key: str | None, slot, shortcut: Any = None, checkable: bool = False,
                tip: str = "", on: str | None = None) -> QAction:
        action = QAction(text, self)
        if key:
            self.icons.bind(action, key, on)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        keys = ", ".join(QKeySequence(s).toString(QKeySequence.SequenceFormat.NativeText)
                         for s in (shortcut if isinstance(shortcut, list) else [shortcut] if shortcut else []))
        action.setToolTip(f"{tip or text.replace('…', '').replace('&', '')}" + (f" ({keys})" if keys else ""))
        action.setStatusTip(tip)
        (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.action_open = a("&Open photo…", "open", self.open_photo_dialog, QKeySequence.StandardKey.Open,
                             tip="Open a photo and turn it into an editable face")
        self.action_save = a("&Save PNG…", "save", self.save_png_dialog, "Ctrl+S", tip="Save the face as a PNG")
        self.action_copy = a("&Copy image", "copy", self.copy_image, QKeySequence.StandardKey.Copy,
                             tip="Copy the face to the clipboard")
        self.action_gif = a("&Export GIF…", "gif", lambda: self.open_gif_dialog(), "Ctrl+E",
                            tip="Export a steering run, the keyframe path or a walk as a GIF")
        self.action_quit = a("&Quit", "quit", self.close, QKeySequence.StandardKey.Quit)
        self.action_undo = a("&Undo", "undo", self.undo, "Ctrl+Z")
        self.action_redo = a("&Redo", "redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.action_random = a("&Random face", "random", lambda: self.new_face(), "Space", tip="A new random face")
        self.action_pick = a("&Pick from random faces…", "grid", self.pick_random_face, "G",
                             tip="Choose a new face from a grid of random faces")
        self.action_mix = a("&Mix two snapshots…", "mix", lambda: self.open_mix_dialog(),
                            tip="Blend two snapshot faces and edit the blend")
        self.action_snapshot = a("Take &snapshot", "snapshot", self.take_snapshot, "Ctrl+B",
                                 tip="Keep this face in the snapshot strip")
        self.action_reset = a("&Reset to the starting face", "reset", self.reset_face, "Ctrl+R",
                              tip="Undo every slider and steering edit of this face in one step (Ctrl+Z brings them back)")
        self.action_before = a("&Before / after", "before", self._on_before_toggled, "B", checkable=True,
                               tip="Show the starting face instead of the edited one")
        self.action_smooth = a("&Smooth scaling", None, self._on_smooth_toggled, checkable=True,
                               tip="Enlarge the face smoothly instead of with crisp pixels")
        self.action_pin = a("Drop &pin", "pin", self.add_pin, "K", tip="Drop a keyframe pin at the current face")
        self.action_play = a("&Play path", "play", self.set_playing, "P", checkable=True, on="stop",
                             tip="Play the path through the keyframe pins")
        self.action_fit = a("&Learn the attribute sliders…", "fit", self.fit_directions,
                            tip="Fit the attribute directions of this generator (the sliders need them)")
        self.action_find = a("&Find attribute", None, self.focus_filter, QKeySequence.StandardKey.Find,
                             tip="Type to filter the attributes (Esc or Enter returns to the face)")
        self.action_shortcuts = a("&Keyboard shortcuts", None, self.show_shortcuts,
                                  QKeySequence.StandardKey.HelpContents, tip="List every keyboard shortcut")
        self.action_cancel = a("&Cancel job", "cancel", self.cancel_jobs, "Esc",
                               tip="Stop the running steering, inversion or export")

        self.action_before.setIconText("Before")  # what the button under the face shows
        self.before_button.setDefaultAction(self.action_before)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for action in (self.action_open, self.action_save, self.action_copy, self.action_gif):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)
        edit_menu = menu.addMenu("&Edit")
        for action in (self.action_undo, self.action_redo, None, self.action_random, self.action_pick,
                       self.action_reset, self.action_snapshot, self.action_mix, None, self.action_cancel):
            edit_menu.addSeparator() if action is None else edit_menu.addAction(action)
        view_menu = menu.addMenu("&View")
        view_menu.addAction(self.action_before)
        view_menu.addAction(self.action_smooth)
        self.theme_group = theme_actions(self, self.settings)  # View → Theme: System / Light / Dark
        view_menu.addMenu("&Theme").addActions(self.theme_group.actions())
        canvas_menu = menu.addMenu("&Canvas")
        canvas_menu.addAction(self.action_pin)
        canvas_menu.addAction(self.action_play)
        tools = menu.addMenu("&Tools")
        tools.addAction(self.action_fit)
        edit_menu.addAction(self.action_find)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.action_shortcuts)

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("main-toolbar")
        toolbar.setIconSize(QSize(18, 18))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        toolbar.addAction(self.action_open)
        toolbar.addSeparator()
        toolbar.addAction(self.action_random)
        toolbar.addWidget(QLabel(" Seed ", toolbar))
        self.seed_box = QSpinBox(toolbar)
        self.seed_box.setRange(NO_SEED, SEED_BOX_MAX)
        self.seed_box.setSpecialValueText("—")
        self.seed_box.setKeyboardTracking(False)
        self.seed_box.setToolTip("Seed of the random face (Enter to show it); — when the face is not a seed's")
        self.seed_box.setAccessibleName("Seed")
        toolbar.addWidget(self.seed_box)
        toolbar.addSeparator()
        for action in (self.action_undo, self.action_redo, None, self.action_before, self.action_snapshot, None,
                       self.action_save, self.action_copy, self.action_gif):
            toolbar.addSeparator() if action is None else toolbar.addAction(action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self.toolbar = toolbar

    def _connect(self) -> None:
        panel = self.attribute_panel
        panel.alpha_changed.connect(self._on_alpha)
        panel.slider_pressed.connect(lambda _name: self.history.seal())
        panel.slider_released.connect(self._on_slider_released)
        panel.lock_toggled.connect(self._on_lock)
        panel.steer_requested.connect(self.steer)
        panel.reset_requested.connect(self.reset_face)
        panel.note.connect(lambda text: self.show_message(text, "info"))
        panel.filter_left.connect(lambda: self.face_view.setFocus(Qt.FocusReason.ShortcutFocusReason))
        self.seed_box.valueChanged.connect(self._on_seed)
        self.scale_combo.currentIndexChanged.connect(
            lambda _i: self.action_smooth.setChecked(bool(self.scale_combo.currentData())))
        canvas = self.canvas_panel
        canvas.view_changed.connect(self._on_view_changed)
        canvas.recentre_clicked.connect(self.recentre_canvas)
        canvas.pin_clicked.connect(self.add_pin)
        canvas.clear_pins_clicked.connect(self.clear_pins)
        canvas.play_toggled.connect(self.set_playing)
        canvas.export_clicked.connect(lambda: self.open_gif_dialog("path"))
        canvas.canvas.handle_moved.connect(self._on_handle_moved)
        canvas.canvas.handle_released.connect(self._on_handle_released)
        self.snapshot_strip.restore_requested.connect(self.restore_snapshot)
        self.snapshot_strip.remove_requested.connect(self.remove_snapshot)
        self.snapshot_strip.mix_requested.connect(self.open_mix_dialog)
        self.cancel_button.clicked.connect(self.cancel_jobs)
        self.bridge.long_changed.connect(self._on_long_changed)
        self.bridge.long_progress.connect(self._on_long_progress)
        self.bridge.task_finished.connect(self._on_task_finished)
        self.bridge.notice.connect(lambda text: self.show_message(text, "info"))

    # =========================================================================== settings
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry:
            self.restoreGeometry(geometry)
        else:
            self.resize(1360, 860)
        state = s.value("window/state")
        if state:
            self.restoreState(state)
        splitter = s.value("window/splitter")
        if splitter:
            self.splitter.restoreState(splitter)
        self.action_smooth.setChecked(s.value("view/smooth", True, type=bool))
        self._on_smooth_toggled(self.action_smooth.isChecked())
        with QSignalBlocker(self.canvas_panel.extent), QSignalBlocker(self.canvas_panel.grid):
            self.canvas_panel.extent.setValue(s.value("canvas/extent", 3.0, type=float))
            self.canvas_panel.grid.setValue(s.value("canvas/grid", 7, type=int))
        self._saved_axes = (s.value("canvas/axis_a", "Smiling", type=str), s.value("canvas/axis_b", "Male", type=str))

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/splitter", self.splitter.saveState())
        s.setValue("view/smooth", self.action_smooth.isChecked())
        s.setValue("canvas/extent", self.canvas_panel.extent.value())
        s.setValue("canvas/grid", self.canvas_panel.grid.value())
        s.setValue("canvas/axis_a", self._saved_axes[0])
        s.setValue("canvas/axis_b", self._saved_axes[1])
        if self.state is not None and self.state.seed is not None:
            s.setValue("face/seed", self.state.seed)
        s.sync()

    # =========================================================================== keyboard, help
    def focus_filter(self) -> None:
        self.attribute_panel.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.attribute_panel.search.selectAll()

    def show_shortcuts(self) -> ShortcutsDialog:
        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(shortcut_rows(self.actions()), self)
        self.shortcuts_dialog.show()
        self.shortcuts_dialog.raise_()
        return self.shortcuts_dialog

    # =========================================================================== status, messages
    # =========================================================================== a whole session
    def set_snapshots(self, snapshots: Snapshots) -> None:
        """Show these snapshots in the strip (the window edits them from now on)."""
        self.snapshots = snapshots
        self.snapshot_strip.clear()
        for snap in snapshots:
            self.snapshot_strip.add(snap.image if snap.image is not None else BLANK_SNAPSHOT, snap.label)

    def use_session(self, session: Session) -> None:
        """Make `session` the one being edited: its history (at its position), snapshots, pins and
        "before" face; the current face is rendered (a session keeps a photo's generator, not its
        crop, so no photo panel)."""
        self._cancel_face_jobs()
        self.set_playing(False)
        self.clear_pins()
        self.history = session.history
        self.set_snapshots(session.snapshots)
        self.keyframes = session.keyframes
        self._pin_uv = [k.uv if k.uv is not None else (0.0, 0.0) for k in session.keyframes]
        self.canvas_panel.canvas.set_pins(self._pin_uv)
        self.canvas_panel.set_pin_count(len(session.keyframes))
        start = session.start or session.current
        self._start_state, self.start_frame = start, None
        self.photo_faces = ()
        self._sync_photo_panel()
        if start is not session.current:  # the "before" face is rendered on its own
            def on_start(result: FaceResult) -> None:
                if self._start_state is result.state:
                    self.start_frame = result.frame
                    self._update_readout()

            self.bridge.submit(render_face, self.engine, start, name="render the before face", on_result=on_start)
        self._apply(session.current, push=False)

    def show_message(self, text: str, kind: str = "error", action: tuple[str, Any] | None = None) -> None:
        self.message_bar.show_message(text, kind, action)

    def message(self) -> str:
        return self.message_bar.message()

    def _on_long_changed(self, task: Task | None) -> None:
        running = task is not None
        self.job_progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.action_cancel.setEnabled(running)
        if running:
            self.job_progress.setRange(0, 0)
            self.job_progress.setFormat(task.name)
            self.job_progress.setToolTip(task.name)

    def _on_long_progress(self, step: int, total: int, message: str) -> None:
        if total > 0:
            self.job_progress.setRange(0, total)
            self.job_progress.setValue(min(step, total))
            self.job_progress.setFormat(f"{step}/{total}")

    def _on_task_finished(self, task: Task) -> None:
        ms = task.elapsed_ms or 0.0
        when = f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"
        text = {JobState.DONE: f"done in {when}", JobState.FAILED: f"failed after {when}",
                JobState.CANCELLED: "cancelled"}[task.state]
        self.job_time.setText(f"{task.name}: {text}")

    def _update_actions(self) -> None:
        h = self.history
        self.action_undo.setEnabled(h.can_undo)
        self.action_redo.setEnabled(h.can_redo)
        self.action_undo.setText(f"&Undo {h.undo_label}" if h.can_undo else "&Undo")
        self.action_redo.setText(f"&Redo {h.redo_label}" if h.can_redo else "&Redo")
        has_face = self.frame is not None
        for action in (self.action_save, self.action_copy, self.action_snapshot):
            action.setEnabled(has_face)
        self.action_reset.setEnabled(self.can_reset())
        self.action_pin.setEnabled(self.state is not None)
        self.action_play.setEnabled(self.keyframes.can_play)
        self.action_cancel.setEnabled(bool(self.bridge.long_tasks()))
        fitting = self._fitting()  # the one worker is busy for minutes: no edit that would wait behind it
        for action in (self.action_random, self.action_pick, self.action_mix):
            action.setEnabled(not fitting)
        for action in (self.action_undo, self.action_redo, self.action_reset, self.action_play):
            action.setEnabled(action.isEnabled() and not fitting)  # each was just set from its own state
        for widget in (self.seed_box, self.attribute_panel, self.canvas_panel, self.snapshot_strip):
            widget.setEnabled(not fitting)
        # Qt adds " — Latent Steer" (the application's display name) to the title itself
        self.setWindowTitle(self.state.label if self.state is not None else "")

    def _on_before_toggled(self, on: bool) -> None:
        self._display_current()

    def _on_smooth_toggled(self, smooth: bool) -> None:
        self.face_view.set_smooth(smooth)
        index = self.scale_combo.findData(bool(smooth))
        if index >= 0 and index != self.scale_combo.currentIndex():
            with QSignalBlocker(self.scale_combo):
                self.scale_combo.setCurrentIndex(index)

    # =========================================================================== Qt events
    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() in (event.Type.PaletteChange, event.Type.ApplicationPaletteChange):
            self.icons.refresh()
        super().changeEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        """Closing cancels every job cleanly and stops the worker before the window goes."""
        if not self._closing:
            self._closing = True
            self.save_settings()
            self._play_timer.stop()
            self._map_timer.stop()
            if self.gif_dialog is not None:
                self.gif_dialog.hide()
            self.bridge.shutdown()
        super().closeEvent(event)
