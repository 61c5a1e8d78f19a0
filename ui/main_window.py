"""The main window: face view, attribute panel, latent canvas, snapshots, history, photo drops.

The window keeps the editor's state as `core.history.EditState` recipes and never runs model
code: every face, steering run, inversion, canvas map and export is a job submitted through the
`Bridge` (which uses `Engine.submit`), and results come back as signals on the GUI thread.
"""
from __future__ import annotations


import random
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QSettings, QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QProgressBar,
                               QSizePolicy, QSpinBox, QSplitter, QToolBar, QToolButton, QVBoxLayout, QWidget)

from core.directions import FitConfig
from core.engine import Engine, Frame, InvertOutcome, Progress, SteerOutcome
from core.export import save_png
from core.history import EditState, History, Keyframes, PlanePoint, SeedPoint, Snapshots
from core.inversion import FaceCrop, InvertConfig
from core.policy import WINDOW_STEER, window_steer_config
from core.readout import describe, identity_distance, identity_words, side_effects
from core.steering import SteerConfig
from ui.attribute_panel import MAX_ALPHA, AttributePanel, display_name
from ui.bridge import Bridge, Task
from ui.dialogs import ShortcutsDialog, fit_confirmation, shortcut_rows
from ui.face_view import FaceView
from ui.gif_dialog import GifDialog, GifSources
from ui.icons import IconBinder
from ui.images import qimage_to_png_bytes, to_pixmap, to_qimage
from ui.jobs import (CanvasMap, FaceResult, canvas_map, directions_status, estimate_fit_seconds, keyframe_frames,
                     render_face, steer_face)
from ui.latent_canvas import CanvasPanel, axis_choices
from ui.message_bar import MessageBar
from ui.snapshot_strip import SnapshotStrip

MAX_SEED = 2**31 - 1
NO_SEED = -1  # the seed box's value (shown as "—") while the face is not a seed's (a photo, a steered face)
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
PLAY_FPS = 12
MAP_DELAY_MS = 250  # the canvas map is re-rendered once the face has settled this long
FIT_BATCH = 200  # faces per step of the directions fit: a cancel lands between steps, ~1 s apart on
# one CPU thread (6 s at the default 1,000), at the same faces per second


class DropError(ValueError):
    """A drop the window cannot use; the message is for the user."""


def photo_from_mime(mime: QMimeData) -> tuple[str | bytes, str]:
    """(source for `Engine.crop_job`, a name for messages) from a drop, or DropError saying why not."""
    urls = list(mime.urls()) if mime.hasUrls() else []
    if urls:
        if len(urls) > 1:
            raise DropError(f"You dropped {len(urls)} items; drop one photo at a time. Nothing was changed.")
        url = urls[0]
        if not url.isLocalFile():
            raise DropError(f"{url.toString()} is not a file on this computer; save the photo first, then drop "
                            "the file. Nothing was changed.")
        path = Path(url.toLocalFile())
        if path.is_dir():
            raise DropError(f"“{path.name}” is a folder; drop one photo file instead. Nothing was changed.")
        if not path.exists():
            raise DropError(f"“{path.name}” does not exist (any more). Nothing was changed.")
        return str(path), path.name
    if mime.hasImage():
        image = mime.imageData()
        if image is None or image.isNull():
            raise DropError("The dropped picture could not be read. Nothing was changed.")
        return qimage_to_png_bytes(image), "the dropped picture"
    raise DropError("That drop holds no photo; drop an image file (JPEG, PNG, …). Nothing was changed.")


class MainWindow(QMainWindow):
    face_shown = Signal()  # the face of the current state is on screen

    def __init__(self, engine: Engine, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings if settings is not None else QSettings()
        self.icons = IconBinder()
        self.bridge = Bridge(engine, self)
        self.history = History()
        self.snapshots = Snapshots()
        self.keyframes = Keyframes()
        self.state: EditState | None = None  # the face being edited (a recipe)
        self.frame: Frame | None = None  # the rendered face of `frame_state`
        self.frame_state: EditState | None = None
        self.start_frame: Frame | None = None  # the "before" face: where this editing session started
        self._start_state: EditState | None = None
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
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        fc.addWidget(self.readout)
        self.photo_box = QWidget(face_col)
        pb = QHBoxLayout(self.photo_box)
        pb.setContentsMargins(0, 0, 0, 0)
        self.crop_view = QLabel(self.photo_box)
        self.crop_view.setFixedSize(96, 96)
        self.crop_view.setToolTip("The face crop found in the photo (what the encoder sees)")
        self.photo_text = QLabel(self.photo_box)
        self.photo_text.setWordWrap(True)
        pb.addWidget(self.crop_view)
        pb.addWidget(self.photo_text, 1)
        self.photo_box.setVisible(False)
        fc.addWidget(self.photo_box)
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
        self.action_snapshot = a("Take &snapshot", "snapshot", self.take_snapshot, "Ctrl+B",
                                 tip="Keep this face in the snapshot strip")
        self.action_reset = a("Reset &strengths", "reset", self.reset_strengths, "Ctrl+R",
                              tip="Set every attribute slider back to 0")
        self.action_before = a("&Before / after", "before", self._on_before_toggled, "B", checkable=True,
                               tip="Show the starting face instead of the edited one")
        self.action_smooth = a("&Smooth scaling", None, self._on_smooth_toggled, checkable=True,
                               tip="Enlarge the face smoothly instead of with crisp pixels")
        self.action_pin = a("Drop &pin", "pin", self.add_pin, "K", tip="Drop a keyframe pin at the current face")
        self.action_play = a("&Play path", "play", self.set_playing, "P", checkable=True, on="stop",
                             tip="Play the path through the keyframe pins")
        self.action_fit = a("&Fit latent directions…", "fit", self.fit_directions,
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
        for action in (self.action_undo, self.action_redo, None, self.action_random, self.action_reset,
                       self.action_snapshot, None, self.action_cancel):
            edit_menu.addSeparator() if action is None else edit_menu.addAction(action)
        view_menu = menu.addMenu("&View")
        view_menu.addAction(self.action_before)
        view_menu.addAction(self.action_smooth)
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
        self.seed_box.setRange(NO_SEED, MAX_SEED)
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
        panel.reset_requested.connect(self.reset_strengths)
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

    # =========================================================================== the face state
    def _apply(self, state: EditState, *, push: bool = True, merge: Any = None, frame: Frame | None = None,
               recentre: bool = True) -> None:
        """Make `state` the face being edited: record it, sync the controls, show or render its face."""
        self.state = state
        if push:
            self.history.push(state, merge)
        self._sync_controls()
        if frame is not None:
            if state.z is None:
                state.z = frame.z
            self._show_frame(state, frame)
        else:
            self.bridge.request("face", render_face, self.engine, state, name="render face",
                                on_result=self._on_face, on_error=self._on_face_error)
        if recentre:
            base = state.base
            if (isinstance(base, PlanePoint) and self.canvas_map is not None and base.plane is self.canvas_map.plane
                    and not state.edits):
                self.canvas_panel.canvas.set_handle(base.u, base.v)
            else:
                self._schedule_map()
        self._update_actions()

    def _sync_controls(self) -> None:
        state = self.state
        if state is None:
            return
        self.attribute_panel.set_alphas(state.alphas)
        self.attribute_panel.set_locked(state.locked)
        seed = state.seed if state.seed is not None else NO_SEED
        if self.seed_box.value() != seed:
            with QSignalBlocker(self.seed_box):
                self.seed_box.setValue(seed)
        origin = f"seed {state.seed}" if state.seed is not None else state.label if not state.edits else "edited face"
        parts = [origin] + [f"{display_name(k)} {v:+.1f}" for k, v in state.edits.items()]
        if state.locked:
            parts.append(f"{len(state.locked)} locked")
        self.caption.setText(" · ".join(parts))
        self.caption.setToolTip(self.caption.text())

    def _on_face(self, result: FaceResult) -> None:
        state = result.state
        if state.z is None:
            state.z = result.frame.z
        if state is self.state:
            self._show_frame(state, result.frame)
        elif self.bridge.has_pending("face") and not self._previewing():
            self.face_view.set_image(result.frame.image)  # a passing frame while the newest one renders

    def _on_face_error(self, exc: BaseException) -> None:
        self.show_message(f"This face could not be rendered: {exc}")

    def _show_frame(self, state: EditState, frame: Frame) -> None:
        self.frame, self.frame_state = frame, state
        if state is self._start_state:
            self.start_frame = frame
        self._display_current()
        self._update_actions()
        self._update_readout()
        if self._reach_check is not None and not self.bridge.has_pending("face"):
            name, self._reach_check = self._reach_check, None
            self._hint_if_unreached(name)
        self.face_shown.emit()

    def _update_readout(self) -> None:
        """Plain words under the face: the other attributes this edit moved (the readout beside the
        face) and, from the identity metric on the worker, whether it is still the same person."""
        start, frame = self.start_frame, self.frame
        if start is None or frame is None or frame is start or self.frame_state is self._start_state:
            self.readout.setText("")
            return
        edited = set(self.state.edits) | ({self.last_attribute} if self.last_attribute else set())
        text = describe(side_effects(start.probs, frame.probs, self.engine.attributes, edited), display_name)
        self.readout.setText(text)

        def show(distance: float | None, shown: Frame = frame) -> None:
            if shown is self.frame and distance is not None:
                self.readout.setText(f"{text} {identity_words(distance)}")

        self.bridge.request("identity", identity_distance, start.image, frame.image, name="identity readout",
                            on_result=show)

    def _previewing(self) -> bool:
        """Something else owns the face view right now (a live job, the path player)."""
        return self._playing() or (self._face_task is not None and not self._face_task.done)

    def _display_current(self) -> None:
        """Show the current face (or the "before" face); a live job or the player keeps the view."""
        if self._previewing():
            return
        if self.action_before.isChecked() and self.start_frame is not None:
            shown, badge = self.start_frame, "Before"
        else:
            shown, badge = self.frame, ""
        if shown is None:
            return
        self.face_view.set_image(shown.image)
        self.face_view.set_badge(badge)
        self.attribute_panel.set_probabilities(shown.probs.tolist())

    def is_ready(self) -> bool:
        """No job running or waiting, and the current state's face is on screen."""
        return (self.bridge.idle() and not self._map_timer.isActive() and self.state is not None
                and self.frame_state is self.state)

    def _cancel_face_jobs(self) -> None:
        """A new edit supersedes a running steering run or photo inversion."""
        task, self._face_task = self._face_task, None
        if task is not None and not task.done:
            task.cancel()
        self.attribute_panel.set_busy_attribute(None)

    # =========================================================================== edits
    def new_face(self, seed: int | None = None) -> None:
        """A random face (a new seed, or `seed`); it becomes the "before" face."""
        seed = random.randint(0, MAX_SEED) if seed is None else max(0, min(MAX_SEED, int(seed)))
        self._cancel_face_jobs()
        self.set_playing(False)
        locked = self.state.locked if self.state is not None else frozenset()
        state = EditState(base=SeedPoint(seed), locked=locked, label=f"seed {seed}", seed=seed)
        self._start_new_face(state)
        self.photo_box.setVisible(False)
        self._apply(state)

    def _start_new_face(self, state: EditState) -> None:
        """`state` starts a new face (a seed, a photo): it becomes the "before" face, and the pins of the
        previous face go (they were its keyframes)."""
        self._start_state = state
        if len(self.keyframes):
            self.clear_pins()

    def _on_seed(self, seed: int) -> None:
        if seed == NO_SEED:  # stepped below 0 onto "—": a seed face keeps showing its seed
            self._sync_controls()
        elif self.state is None or self.state.seed != seed:
            self.new_face(seed)

    def _on_alpha(self, name: str, alpha: float) -> None:
        if self.state is None:
            return
        self._cancel_face_jobs()
        self.set_playing(False)
        alphas = {k: v for k, v in self.state.alphas.items() if k != name}
        if alpha:
            alphas[name] = alpha
        self.last_attribute = name
        self._apply(self.state.derive(f"{display_name(name)} {alpha:+.1f}", alphas=alphas), merge=("alpha", name))

    def _on_slider_released(self, name: str) -> None:
        self.history.seal()
        self._reach_check = name
        if self.is_ready():  # the last value is already on screen
            self._reach_check = None
            self._hint_if_unreached(name)

    def _hint_if_unreached(self, name: str) -> None:
        """A slider at its end that still leaves the face on the wrong side of 0.5: point to steering.

        The slider's range reaches rare attributes (Bald, Mustache) for about half the faces (median
        α ≈ 3, resources/MODELS.md); steering follows the classifier and gets there.
        """
        if self.state is None or self.frame is None or self.frame_state is not self.state:
            return
        alpha = self.state.edits.get(name, 0.0)
        if abs(alpha) < MAX_ALPHA - 1e-6:
            return
        p = float(self.frame.probs[self.engine.attribute_index(name)])
        sign = 1 if alpha > 0 else -1
        if (p >= 0.5) if sign > 0 else (p <= 0.5):
            return
        label = display_name(name)
        word = "more" if sign > 0 else "less"
        self.show_message(f"The {label} slider is at its end and the face reads {100 * p:.0f} % {label}: a straight "
                          f"line in z does not reach it for every face. Steering follows the classifier.", "info",
                          action=(f"Steer {word} {label}", lambda: self.steer(name, sign)))

    def _on_lock(self, name: str, on: bool) -> None:
        if self.state is None:
            return
        locked = set(self.state.locked)
        (locked.add if on else locked.discard)(name)
        keep_z = self.state.z if not self.state.edits else None  # without edits, locks do not move the face
        self._apply(self.state.derive(f"{'lock' if on else 'unlock'} {display_name(name)}",
                                      locked=frozenset(locked), z=keep_z))

    def reset_strengths(self) -> None:
        if self.state is None or not self.state.edits:
            return
        self._cancel_face_jobs()
        self._apply(self.state.derive("reset strengths", alphas={}))

    def undo(self) -> None:
        state = self.history.undo()
        if state is not None:
            self._restore(state)

    def redo(self) -> None:
        state = self.history.redo()
        if state is not None:
            self._restore(state)

    def _restore(self, state: EditState) -> None:
        self._cancel_face_jobs()
        self.set_playing(False)
        self._apply(state, push=False)

    # =========================================================================== steering
    def steer(self, name: str, sign: int) -> Task | None:
        """Classifier-gradient steering of the current face ("more"/"less"), with live frames."""
        if self.state is None:
            return None
        self._cancel_face_jobs()
        self.set_playing(False)
        origin = self.state
        label = f"{'more' if sign > 0 else 'less'} {display_name(name)}"
        self.last_attribute = name
        task = self.bridge.submit(steer_face, self.engine, origin, {name: float(sign)}, origin.locked_list or None,
                                  self._steer_config_for(name, sign), name=f"steering ({label})", long=True)
        task.progress.connect(lambda item, t=task: self._on_steer_progress(t, label, item))
        task.succeeded.connect(lambda out, t=task: self._on_steered(t, origin, name, label, out))
        task.failed.connect(lambda exc, t=task: self._on_face_task_failed(t, f"Steering ({label}) failed: {exc}"))
        task.cancelled.connect(lambda t=task: self._on_face_task_cancelled(t, "Steering cancelled"))
        self._face_task = task
        self.attribute_panel.set_busy_attribute(name)
        self.face_view.set_badge(f"{label}…")
        self.status_text.setText(f"Steering: {label}…")
        return task

    def _steer_config_for(self, name: str, sign: int) -> SteerConfig:
        """The window's "more"/"less" (core.policy), from the face's reading right now."""
        p = float(self.frame.probs[self.engine.attribute_index(name)]) if self.frame is not None else 0.5
        locked = bool(self.state is not None and self.state.locked)
        return window_steer_config(p, sign, locked, self.steer_config, self.engine.policy.hard_locks)

    def _on_steer_progress(self, task: Task, label: str, item: Any) -> None:
        if task is not self._face_task or not isinstance(item, Progress) or item.frame is None:
            return
        self.live_frames += 1
        self.face_view.set_image(item.frame.image)
        self.face_view.set_badge(f"{label} {item.step}/{item.total}")
        self.attribute_panel.set_probabilities(item.frame.probs.tolist())

    def _on_steered(self, task: Task, origin: EditState, name: str, label: str, outcome: SteerOutcome) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        self.attribute_panel.set_busy_attribute(None)
        first, final = outcome.frames[0], outcome.frames[-1]
        self.last_steer, self.last_steer_targets = outcome, [name]
        index = self.engine.attribute_index(name)
        state = EditState(base=final.z, locked=origin.locked, label=label, z=final.z)
        self._apply(state, frame=final)
        steps = len(outcome.frames) - 1
        self.status_text.setText(f"{label}: {display_name(name)} {first.probs.tolist()[index]:.2f} → "
                                 f"{final.probs.tolist()[index]:.2f} in {steps} step{'s' if steps != 1 else ''}")

    def _on_face_task_failed(self, task: Task, text: str) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        self.attribute_panel.set_busy_attribute(None)
        self._display_current()
        self.show_message(text)

    def _on_face_task_cancelled(self, task: Task, text: str) -> None:
        if task is self._face_task:
            self._face_task = None
        self.attribute_panel.set_busy_attribute(None)
        if not self._previewing():
            self._display_current()
        self.status_text.setText(text)

    # =========================================================================== photos
    def open_photo_dialog(self) -> None:
        folder = self.settings.value("paths/open_dir", str(Path.home()), type=str)
        patterns = " ".join(f"*{s}" for s in sorted(PHOTO_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo", folder, f"Images ({patterns});;All files (*)")
        if path:
            self.settings.setValue("paths/open_dir", str(Path(path).parent))
            self.open_photo(path)

    def handle_drop(self, mime: QMimeData) -> bool:
        try:
            source, name = photo_from_mime(mime)
        except DropError as exc:
            self.show_message(str(exc))
            return False
        return self.open_photo(source, name) is not None

    def open_photo(self, source: str | Path | bytes, name: str | None = None) -> Task | None:
        """Photo -> face crop (shown) -> inversion with live frames -> the editable face."""
        if isinstance(source, Path):
            source = str(source)
        name = name or (Path(source).name if isinstance(source, str) else "the photo")
        if isinstance(source, str) and Path(source).is_dir():
            self.show_message(f"“{name}” is a folder; open one photo file instead. Nothing was changed.")
            return None
        if self.engine.encoder is None:
            self.show_message("This installation has no encoder (resources/models/encoder.pt), so photos cannot "
                              "be turned into faces. Nothing was changed.")
            return None
        self._cancel_face_jobs()
        self.set_playing(False)
        self.message_bar.dismiss()
        self.photo_box.setVisible(True)
        self.crop_view.clear()
        self.photo_text.setText(f"Looking for a face in {name}…")
        task = self.bridge.submit(self.engine.crop_job, source, name="find the face", long=True)
        task.succeeded.connect(lambda crop, t=task: self._on_crop(t, crop, name))
        task.failed.connect(lambda exc, t=task: self._on_photo_failed(t, name, exc))
        task.cancelled.connect(lambda t=task: self._on_photo_cancelled(t))
        self._face_task = task
        return task

    def _on_crop(self, task: Task, crop: FaceCrop, name: str) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        self.crop_view.setPixmap(to_pixmap(crop.image, 96))
        if crop.face is None:
            self.photo_text.setText(f"{name}: no face found")
            self.show_message(f"No face was found in {name}, so nothing was changed. You can still use the centre "
                              "of the photo as the face.", "warning",
                              action=("Use centre crop", lambda: self.invert_crop(crop, name)))
            return
        self.invert_crop(crop, name)

    def invert_crop(self, crop: FaceCrop, name: str) -> Task | None:
        if self._closing:
            return None
        self._cancel_face_jobs()
        self.photo_box.setVisible(True)
        self.crop_view.setPixmap(to_pixmap(crop.image, 96))
        self.photo_text.setText(f"{name}: finding its code…")
        task = self.bridge.submit(self.engine.invert_job, crop, self.invert_config, name="photo inversion", long=True)
        task.progress.connect(lambda item, t=task: self._on_invert_progress(t, name, item))
        task.succeeded.connect(lambda out, t=task: self._on_inverted(t, name, out))
        task.failed.connect(lambda exc, t=task: self._on_photo_failed(t, name, exc))
        task.cancelled.connect(lambda t=task: self._on_photo_cancelled(t))
        self._face_task = task
        self.face_view.set_badge("Inverting…")
        return task

    def _on_invert_progress(self, task: Task, name: str, item: Any) -> None:
        if task is not self._face_task or not isinstance(item, Progress) or item.frame is None:
            return
        self.live_frames += 1
        self.face_view.set_image(item.frame.image)
        stage = "Tuning" if item.message.startswith("tuning") else "Refining"
        self.face_view.set_badge(f"{stage} {item.step}/{item.total}")
        self.photo_text.setText(f"{name}: refining {item.step}/{item.total} {item.message}")

    def _on_inverted(self, task: Task, name: str, outcome: InvertOutcome) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        frame = outcome.frame
        locked = self.state.locked if self.state is not None else frozenset()
        state = EditState(base=frame.z, locked=locked, label=f"photo {name}", z=frame.z, generator=outcome.delta)
        self._start_new_face(state)
        self._apply(state, frame=frame)
        res = outcome.result
        tuned = f" → {outcome.tuning.psnr_db:.1f} dB (its own generator)" if outcome.tuning else ""
        self.photo_text.setText(f"{name}: PSNR {res.psnr_encoder_db:.1f} dB (encoder) → {res.psnr_db:.1f} dB "
                                f"(refined){tuned}. The face is ready to edit.")

    def _on_photo_failed(self, task: Task, name: str, exc: BaseException) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        self.photo_box.setVisible(False)
        self._display_current()
        self.show_message(f"{name} could not be used: {exc}. Nothing was changed.")

    def _on_photo_cancelled(self, task: Task) -> None:
        if task is self._face_task:
            self._face_task = None
        self.photo_text.setText("Cancelled.")
        if not self._previewing():
            self._display_current()

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        # Accept every drag that carries anything: a drop we cannot use gets a message that says why,
        # which tells the user more than a refused cursor.
        if event.mimeData() is not None and event.mimeData().formats():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        event.acceptProposedAction()
        self.handle_drop(event.mimeData())

    # =========================================================================== latent canvas
    def _schedule_map(self) -> None:
        """Re-render the canvas map once the face has settled; a map in progress is dropped (the
        face's own render goes first on the one worker)."""
        if self._closing:
            return
        self.bridge.cancel_key("map")
        self.canvas_panel.canvas.set_stale(True)
        self._map_timer.start()

    def _on_view_changed(self) -> None:
        if self.canvas_panel.axis_a.count():
            self._saved_axes = (self.canvas_panel.axis_a.currentText(), self.canvas_panel.axis_b.currentText())
        self._schedule_map()

    def recentre_canvas(self) -> None:
        self._map_timer.stop()
        self._refresh_map()

    def _refresh_map(self) -> None:
        if self._closing or self.state is None:
            return
        a, b = self.canvas_panel.axes()
        if a is None or b is None:
            return
        panel = self.canvas_panel
        self.bridge.request("map", canvas_map, self.engine, self.state, a, b, panel.grid.value(), panel.extent.value(),
                            [k.state for k in self.keyframes], name="canvas map", on_result=self._on_map,
                            on_error=self._on_map_error)

    def _on_map(self, cmap: CanvasMap) -> None:
        self.canvas_map = cmap
        canvas = self.canvas_panel.canvas
        canvas.set_map(cmap.images, cmap.n, cmap.extent, cmap.plane.labels)
        canvas.set_handle(0.0, 0.0)
        self._pin_uv = list(cmap.pins)
        canvas.set_pins(self._pin_uv)

    def _on_map_error(self, exc: BaseException) -> None:
        self.canvas_panel.canvas.set_stale(False)
        self.show_message(f"The canvas plane could not be drawn: {exc}")

    def _on_handle_moved(self, u: float, v: float) -> None:
        cmap = self.canvas_map
        if cmap is None or self.state is None:
            return
        if not self._canvas_drag:
            self._canvas_drag = True
            self.history.seal()
        self._cancel_face_jobs()
        self.set_playing(False)
        self.canvas_panel.canvas.set_handle(u, v)
        state = EditState(base=PlanePoint(cmap.plane, u, v), locked=self.state.locked, label="move on the canvas")
        self._apply(state, merge="canvas", recentre=False)

    def _on_handle_released(self, u: float, v: float) -> None:
        self._canvas_drag = False
        self.history.seal()

    def add_pin(self) -> None:
        if self.state is None:
            return
        uv = self.canvas_panel.canvas.handle()
        image = self.frame.image if self.frame is not None and self.frame_state is self.state else None
        self.keyframes.add(self.state, uv, image)
        self._pin_uv = (self._pin_uv + [uv])[-len(self.keyframes):]
        self.canvas_panel.canvas.set_pins(self._pin_uv)
        self.canvas_panel.set_pin_count(len(self.keyframes))
        self.status_text.setText(f"Pin {len(self.keyframes)} dropped")

    def clear_pins(self) -> None:
        self.set_playing(False)
        self.keyframes.clear()
        self._pin_uv = []
        self.canvas_panel.canvas.set_pins([])
        self.canvas_panel.set_pin_count(0)

    def _playing(self) -> bool:
        return self._play_timer.isActive() or (self._play_task is not None and not self._play_task.done)

    def set_playing(self, on: bool) -> None:
        """Play (render, then loop) the path through the pins, or stop."""
        for control in (self.action_play, self.canvas_panel.play):
            with QSignalBlocker(control):
                control.setChecked(bool(on) and self.keyframes.can_play)
        if not on:
            was_playing = self._playing()
            self._play_timer.stop()
            if self._play_task is not None and not self._play_task.done:
                self._play_task.cancel()
            self._play_task = None
            self.canvas_panel.canvas.set_marker(None)
            if was_playing:
                self.face_view.set_badge("")
                self._display_current()
            self.canvas_panel.set_pin_count(len(self.keyframes))
            return
        if not self.keyframes.can_play:
            self.show_message("Drop at least two pins on the latent canvas to play a path.", "info")
            return
        if self._playing():
            return
        task = self.bridge.submit(keyframe_frames, self.engine, [k.state for k in self.keyframes], PLAY_FPS, True,
                                  name="render path", long=True)
        task.succeeded.connect(lambda frames, t=task: self._on_path_frames(t, frames))
        task.failed.connect(lambda exc: (self.set_playing(False), self.show_message(f"The path could not be "
                                                                                      f"rendered: {exc}")))
        self._play_task = task
        self.face_view.set_badge("Rendering path…")

    def _on_path_frames(self, task: Task, frames: list[Frame]) -> None:
        if task is not self._play_task:
            return
        self._play_task = None
        self._play_frames, self._play_index = frames, 0
        self._play_tick()
        self._play_timer.start()

    def _play_tick(self) -> None:
        frames = self._play_frames
        if not frames:
            return
        i = self._play_index % len(frames)
        self.face_view.set_image(frames[i].image)
        self.face_view.set_badge(f"Path {i + 1}/{len(frames)}")
        if self._pin_uv and len(self._pin_uv) == len(self.keyframes):
            seg, t = divmod(i / PLAY_FPS, 1.0)
            k = int(seg)
            a = self._pin_uv[k % len(self._pin_uv)]
            b = self._pin_uv[(k + 1) % len(self._pin_uv)]
            self.canvas_panel.canvas.set_marker((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
        self._play_index = i + 1

    # =========================================================================== snapshots, export
    def take_snapshot(self) -> None:
        if self.state is None or self.frame is None or self.frame_state is not self.state:
            self.status_text.setText("Wait for the face to finish rendering, then take the snapshot")
            return
        snap = self.snapshots.add(self.state, self.frame.image, self.state.label)
        if self.snapshot_strip.count() >= self.snapshots.limit:
            self.snapshot_strip.remove(0)
        self.snapshot_strip.add(snap.image, snap.label)
        self.status_text.setText(f"Snapshot {len(self.snapshots)} taken")

    def restore_snapshot(self, index: int) -> None:
        if not 0 <= index < len(self.snapshots):
            return
        snap = self.snapshots[index]
        self._cancel_face_jobs()
        self.set_playing(False)
        self._apply(snap.state.derive(f"snapshot: {snap.label}", z=snap.state.z))

    def remove_snapshot(self, index: int) -> None:
        if 0 <= index < len(self.snapshots):
            self.snapshots.remove(index)
            self.snapshot_strip.remove(index)

    def save_png_dialog(self) -> None:
        if self.frame is None:
            return
        folder = self.settings.value("paths/save_dir", str(Path.home()), type=str)
        name = f"face-seed{self.state.seed}.png" if self.state and self.state.seed is not None else "face.png"
        path, _ = QFileDialog.getSaveFileName(self, "Save the face", str(Path(folder) / name), "PNG images (*.png)")
        if path:
            self.settings.setValue("paths/save_dir", str(Path(path).parent))
            self.save_png(path)

    def save_png(self, path: str | Path) -> Task | None:
        """Save the face as shown (its displayed size and scaling) to a PNG, on the worker."""
        if self.frame is None:
            self.show_message("There is no face to save yet.")
            return None
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png")
        return self.bridge.submit(save_png, self.frame.image, path, self.face_view.side(),
                                  self.action_smooth.isChecked(), name="save PNG",
                                  on_result=lambda p: self.status_text.setText(f"Saved {p}"),
                                  on_error=lambda exc: self.show_message(f"The PNG could not be saved: {exc}"))

    def copy_image(self) -> None:
        if self.frame is None:
            return
        side = self.face_view.side()
        mode = Qt.TransformationMode.SmoothTransformation if self.action_smooth.isChecked() \
            else Qt.TransformationMode.FastTransformation
        image = to_qimage(self.frame.image).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, mode)
        QGuiApplication.clipboard().setImage(image)
        self.status_text.setText(f"Copied the face ({side}×{side}) to the clipboard")

    def gif_sources(self) -> GifSources:
        return GifSources(attributes=list(self.engine.attributes), available=self.directions_available,
                          steer_frames=self.last_steer.frames if self.last_steer is not None else None,
                          steer_targets=list(self.last_steer_targets), pins=[k.state for k in self.keyframes],
                          state=self.state, walk_attribute=self.last_attribute)

    def open_gif_dialog(self, source: str | None = None) -> GifDialog:
        if self.gif_dialog is not None and self.gif_dialog.task is None:
            self.gif_dialog.close()
            self.gif_dialog.deleteLater()
            self.gif_dialog = None
        if self.gif_dialog is None:
            self.gif_dialog = GifDialog(self.bridge, self.engine, self.gif_sources(), self.settings, source, self)
        self.gif_dialog.show()
        self.gif_dialog.raise_()
        return self.gif_dialog

    # =========================================================================== directions
    def _refresh_directions(self) -> None:
        self.bridge.submit(directions_status, self.engine, name="check directions", on_result=self._on_directions)

    def _on_directions(self, available: list[bool] | None) -> None:
        self.directions_available = available
        self.attribute_panel.set_directions(available)
        with QSignalBlocker(self.canvas_panel):
            self.canvas_panel.set_axis_choices(axis_choices(self.engine.attributes, available), self._saved_axes)
        self.action_fit.setEnabled(True)
        if available is None:
            self.attribute_panel.notice.setText("The strength sliders need the latent directions of this generator, "
                                                "which are not fitted yet. More/less steering works without them.")
            self.attribute_panel.notice.setVisible(True)
            self.show_message("The latent directions of this generator are not fitted yet, so the sliders and the "
                              "attribute axes are off. Fitting them takes a few minutes.", "warning",
                              action=("Fit directions", self.fit_directions))
        else:
            self.attribute_panel.notice.setVisible(False)
        self._schedule_map()

    def fit_directions(self) -> None:
        """Tools → Fit latent directions: time one batch on the worker, then ask with the estimate."""
        if self._closing or self.fit_confirm is not None or self._fitting():
            return
        self.action_fit.setEnabled(False)
        self.status_text.setText("Measuring how long fitting the directions takes…")
        self.bridge.submit(estimate_fit_seconds, self.engine, self.fit_config, name="estimate the fit",
                           on_result=self._ask_fit,
                           on_error=lambda exc: (self.action_fit.setEnabled(True), self.status_text.setText("Ready"),
                                                 self.show_message(f"Fitting the directions failed: {exc}")))

    def _ask_fit(self, seconds: float) -> None:
        if self._closing:
            return
        self.status_text.setText("Ready")
        box = fit_confirmation(self, self.fit_config.samples, seconds)
        box.finished.connect(lambda _r, b=box: self._on_fit_answer(b))
        self.fit_confirm = box
        box.open()

    def _on_fit_answer(self, box) -> None:
        self.fit_confirm = None
        box.deleteLater()
        if box.clickedButton() is box.fit_button and not self._closing:
            self.start_fit()
        else:
            self.action_fit.setEnabled(True)
            self.status_text.setText("Fitting the directions: not started")

    def _fitting(self) -> bool:
        return self._fit_task is not None and not self._fit_task.done

    def start_fit(self) -> Task | None:
        """Fit the latent directions now (no question); Esc or Cancel stops it."""
        if self._closing or self._fitting():
            return None
        self.action_fit.setEnabled(False)
        self.status_text.setText("Fitting the latent directions… (Esc cancels)")
        task = self.bridge.submit(self.engine.fit_directions_job, self.fit_config, name="fit directions", long=True)
        task.succeeded.connect(lambda _d: (self.status_text.setText("The latent directions are fitted"),
                                           self.show_message("The latent directions are fitted: the sliders are on.",
                                                             "info"), self._refresh_directions()))
        task.failed.connect(lambda exc: (self.action_fit.setEnabled(True), self.status_text.setText("Ready"),
                                         self.show_message(f"Fitting the directions failed: {exc}")))
        task.cancelled.connect(lambda: (self.action_fit.setEnabled(True),
                                        self.status_text.setText("Fitting the directions was cancelled")))
        task.finished.connect(lambda _state: self._update_actions())
        self._fit_task = task
        self._update_actions()
        return task

    def cancel_jobs(self) -> None:
        """Esc / Cancel: stop the long jobs; the status says so at once (a fit stops between batches)."""
        if self._fitting():
            self.status_text.setText("Stopping the fit…")
        self.bridge.cancel_long()

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
        text = {"done": f"done in {when}", "failed": f"failed after {when}", "cancelled": "cancelled"}[task.state]
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
        self.action_reset.setEnabled(bool(self.state is not None and self.state.edits))
        self.action_pin.setEnabled(self.state is not None)
        self.action_play.setEnabled(self.keyframes.can_play)
        self.action_cancel.setEnabled(bool(self.bridge.long_tasks()))
        fitting = self._fitting()  # the one worker is busy for minutes: no edit that would wait behind it
        self.action_random.setEnabled(not fitting)
        for action in (self.action_undo, self.action_redo, self.action_reset, self.action_play):
            action.setEnabled(action.isEnabled() and not fitting)  # each was just set from its own state
        for widget in (self.seed_box, self.attribute_panel, self.canvas_panel, self.snapshot_strip):
            widget.setEnabled(not fitting)
        title = "Latent Steer"
        if self.state is not None:
            title += f" — {self.state.label}"
        self.setWindowTitle(title)

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
