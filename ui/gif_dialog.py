"""GIF export: choose the source (last steering run, keyframe path, walk along a direction), size,
fps, loop / ping-pong, captions and, for a face from a photo, pasting every frame into that photo;
the export runs as a job with progress and can be cancelled; the result's folder opens on request."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QStandardItemModel
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressBar, QPushButton,
                               QSpinBox, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from core.align import PLACEMENT_SIDE, PhotoPlacement
from core.engine import Engine, Progress
from core.export import MAX_FPS, MAX_GIF_SIZE, MIN_FPS, MIN_GIF_SIZE, GifOptions
from core.history import EditState
from core.jobs import GifRequest, PathGif, SteerGif, WalkGif, export_gif
from core.policy import PATH_FRAMES_PER_SEGMENT, PATH_LOOPS
from ui.attribute_panel import display_name
from ui.bridge import Bridge, Task

SOURCES = [("steer", "Last steering run"), ("path", "Keyframe path"), ("walk", "Walk along a direction")]


@dataclass
class GifSources:
    """What the window can offer to export right now."""

    attributes: list[str]
    available: list[bool] | None = None  # attributes with a direction (None: not fitted)
    steer_frames: list[Any] | None = None
    steer_targets: list[str] = field(default_factory=list)
    pins: list[EditState] = field(default_factory=list)
    state: EditState | None = None
    walk_attribute: str | None = None
    photo: PhotoPlacement | None = None  # the face's photo (None: found on the face's own generator, if any)

    def __post_init__(self) -> None:
        if self.photo is None and self.state is not None:
            self.photo = getattr(self.state.generator, "photo", None)

    def reason_unavailable(self, source: str) -> str | None:
        if source == "steer" and not self.steer_frames:
            return "No steering run yet: use a more/less button first."
        if source == "path" and len(self.pins) < 2:
            return "Drop at least two pins on the latent canvas first."
        if source == "walk":
            if self.state is None:
                return "There is no face yet."
            if not self.available or not any(self.available):
                return "Walks need the latent directions, which are not fitted yet."
        return None


def default_folder(settings: QSettings | None) -> Path:
    saved = settings.value("paths/gif_dir", "", type=str) if settings is not None else ""
    if saved and Path(saved).is_dir():
        return Path(saved)
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return Path(pictures) if pictures and Path(pictures).is_dir() else Path.home()


def open_folder(path: Path) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path if path.is_dir() else path.parent)))


class GifDialog(QDialog):
    exported = Signal(str)
    failed = Signal(str)

    def __init__(self, bridge: Bridge, engine: Engine, sources: GifSources, settings: QSettings | None = None,
                 source: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export GIF")
        self.setMinimumWidth(440)
        self.bridge, self.engine, self.sources, self.settings = bridge, engine, sources, settings
        self.task: Task | None = None
        self.result_path: Path | None = None
        self._path_edited = False

        self.source = QComboBox(self)
        model = QStandardItemModel(self.source)
        self.source.setModel(model)
        for key, text in SOURCES:
            self.source.addItem(text, key)
            reason = sources.reason_unavailable(key)
            item = model.item(self.source.count() - 1)
            item.setEnabled(reason is None)
            if reason:
                item.setToolTip(reason)
        self.source_note = QLabel(self)
        self.source_note.setWordWrap(True)

        # per-source options
        self.stack = QStackedWidget(self)
        steer_page = QWidget()
        steer_form = QFormLayout(steer_page)
        steer_form.setContentsMargins(0, 0, 0, 0)
        frames = len(sources.steer_frames or [])
        targets = ", ".join(display_name(t) for t in sources.steer_targets) or "—"
        self.steer_info = QLabel(f"{frames} frames of steering ({targets})", steer_page)
        steer_form.addRow(self.steer_info)
        path_page = QWidget()
        path_form = QFormLayout(path_page)
        path_form.setContentsMargins(0, 0, 0, 0)
        self.segment_frames = QSpinBox(path_page)
        self.segment_frames.setRange(2, 240)
        self.segment_frames.setValue(12)
        self.loop_path = QCheckBox("Return to the first pin", path_page)
        path_form.addRow(f"{len(sources.pins)} pins; frames between pins", self.segment_frames)
        path_form.addRow(self.loop_path)
        walk_page = QWidget()
        walk_form = QFormLayout(walk_page)
        walk_form.setContentsMargins(0, 0, 0, 0)
        self.walk_attribute = QComboBox(walk_page)
        for i, name in enumerate(sources.attributes):
            if sources.available and i < len(sources.available) and sources.available[i]:
                self.walk_attribute.addItem(display_name(name), name)
        if sources.walk_attribute:
            idx = self.walk_attribute.findData(sources.walk_attribute)
            if idx >= 0:
                self.walk_attribute.setCurrentIndex(idx)
        self.max_alpha = QDoubleSpinBox(walk_page)
        self.max_alpha.setRange(0.5, 10.0)
        self.max_alpha.setSingleStep(0.5)
        self.max_alpha.setValue(3.0)
        self.walk_frames = QSpinBox(walk_page)
        self.walk_frames.setRange(2, 240)
        self.walk_frames.setValue(24)
        walk_form.addRow("Attribute", self.walk_attribute)
        walk_form.addRow("From −s to +s, s =", self.max_alpha)
        walk_form.addRow("Frames", self.walk_frames)
        for page in (steer_page, path_page, walk_page):
            self.stack.addWidget(page)

        # common options
        self.size = QSpinBox(self)
        self.size.setRange(MIN_GIF_SIZE, MAX_GIF_SIZE)
        self.size.setSingleStep(64)
        self.size.setSuffix(" px")
        self.smooth = QCheckBox("Smooth scaling", self)
        self.fps = QSpinBox(self)
        self.fps.setRange(MIN_FPS, MAX_FPS)
        self.fps.setSuffix(" fps")
        self.loop = QComboBox(self)
        self.loop.addItem("Forever", 0)
        self.loop.addItem("Once", 1)
        self.loop.addItem("A number of times", -1)
        self.loop_count = QSpinBox(self)
        self.loop_count.setRange(2, 1000)
        self.loop_count.setValue(3)
        self.pingpong = QCheckBox("Ping-pong (play forwards, then backwards)", self)
        self.captions = QCheckBox("Captions (attribute probabilities or frame numbers)", self)
        self.in_photo = QCheckBox("In the original photo", self)
        if sources.photo is None:
            self.in_photo.setEnabled(False)
            self.in_photo.setToolTip("Only for a face that came from a photo")
        else:
            w, h = sources.photo.size
            self.in_photo.setToolTip(f"Paste every frame into the photo the face came from ({w}×{h} px, "
                                     f"longest side at most {PLACEMENT_SIDE} px)")
        self.path_edit = QLineEdit(self)
        self.browse = QToolButton(self)
        self.browse.setText("…")
        self.browse.setToolTip("Choose where to save the GIF")
        self.browse.clicked.connect(self._browse)
        self.path_edit.textEdited.connect(lambda _: setattr(self, "_path_edited", True))
        self.open_when_done = QCheckBox("Open the folder when done", self)

        self.progress = QProgressBar(self)
        self.progress.setVisible(False)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.buttons = QDialogButtonBox(self)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.open_button = QPushButton("Open folder", self)
        self.open_button.setEnabled(False)
        self.buttons.addButton(self.open_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.open_button.clicked.connect(self.open_result_folder)
        self.close_button.clicked.connect(self._close_or_cancel)

        form = QFormLayout()
        form.addRow("Source", self.source)
        form.addRow(self.source_note)
        form.addRow(self.stack)
        size_row = QHBoxLayout()
        size_row.addWidget(self.size)
        size_row.addWidget(self.smooth)
        size_row.addStretch(1)
        form.addRow("Size", size_row)
        form.addRow("Speed", self.fps)
        loop_row = QHBoxLayout()
        loop_row.addWidget(self.loop)
        loop_row.addWidget(self.loop_count)
        loop_row.addStretch(1)
        form.addRow("Loop", loop_row)
        form.addRow(self.pingpong)
        form.addRow(self.captions)
        form.addRow(self.in_photo)
        file_row = QHBoxLayout()
        file_row.addWidget(self.path_edit, 1)
        file_row.addWidget(self.browse)
        form.addRow("File", file_row)
        form.addRow(self.open_when_done)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        self._restore()
        self.loop.currentIndexChanged.connect(self._sync_loop)
        self.in_photo.toggled.connect(self._sync_size)
        self.source.currentIndexChanged.connect(self._source_changed)
        self.select_source(source or (settings.value("gif/source", "", type=str) if settings else "") or "steer")
        self._sync_loop()
        self._sync_size()

    # -- settings ----------------------------------------------------------------------------
    def _restore(self) -> None:
        s = self.settings

        def value(key: str, default: Any, kind: type) -> Any:
            return s.value(f"gif/{key}", default, type=kind) if s is not None else default

        self.size.setValue(value("size", 256, int))
        self.smooth.setChecked(value("smooth", True, bool))
        self.fps.setValue(value("fps", PATH_FRAMES_PER_SEGMENT, int))
        self.loop.setCurrentIndex(max(0, self.loop.findData(value("loop_mode", 0, int))))
        self.loop_count.setValue(value("loop_count", 3, int))
        self.pingpong.setChecked(value("pingpong", False, bool))
        self.captions.setChecked(value("captions", False, bool))
        self.in_photo.setChecked(self.in_photo.isEnabled() and value("in_photo", False, bool))
        self.open_when_done.setChecked(value("open_folder", False, bool))
        self.segment_frames.setValue(value("segment_frames", PATH_FRAMES_PER_SEGMENT, int))
        self.loop_path.setChecked(value("loop_path", PATH_LOOPS, bool))  # the path as Play shows it
        self.walk_frames.setValue(value("walk_frames", 24, int))
        self.max_alpha.setValue(value("max_alpha", 3.0, float))

    def _save(self) -> None:
        s = self.settings
        if s is None:
            return
        for key, val in (("size", self.size.value()), ("smooth", self.smooth.isChecked()), ("fps", self.fps.value()),
                         ("loop_mode", self.loop.currentData()), ("loop_count", self.loop_count.value()),
                         ("pingpong", self.pingpong.isChecked()), ("captions", self.captions.isChecked()),
                         *((("in_photo", self.in_photo.isChecked()),) if self.in_photo.isEnabled() else ()),
                         ("open_folder", self.open_when_done.isChecked()), ("source", self.current_source()),
                         ("segment_frames", self.segment_frames.value()), ("loop_path", self.loop_path.isChecked()), ("walk_frames", self.walk_frames.value()),
                         ("max_alpha", self.max_alpha.value())):
            s.setValue(f"gif/{key}", val)
        if self.result_path is not None:
            s.setValue("paths/gif_dir", str(self.result_path.parent))

    # -- choices -----------------------------------------------------------------------------
    def current_source(self) -> str:
        return self.source.currentData()

    def select_source(self, key: str) -> None:
        """Pick `key` if available, else the first available source."""
        keys = [k for k, _ in SOURCES]
        order = ([key] if key in keys else []) + keys
        for k in order:
            if self.sources.reason_unavailable(k) is None:
                self.source.setCurrentIndex(keys.index(k))
                break
        else:
            self.source.setCurrentIndex(keys.index(key) if key in keys else 0)
        self._source_changed()

    def _source_changed(self) -> None:
        key = self.current_source()
        self.stack.setCurrentIndex([k for k, _ in SOURCES].index(key))
        reason = self.sources.reason_unavailable(key)
        self.source_note.setText(reason or "")
        self.source_note.setVisible(bool(reason))
        self.export_button.setEnabled(reason is None and self.task is None)
        if not self._path_edited:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.path_edit.setText(str(default_folder(self.settings) / f"latent-steer-{key}-{stamp}.gif"))

    def _sync_loop(self) -> None:
        self.loop_count.setVisible(self.loop.currentData() == -1)

    def _sync_size(self) -> None:
        """In the photo, the GIF has the photo's size: the size box does not apply."""
        pasted = self.pasting()
        self.size.setEnabled(not pasted)
        self.size.setToolTip("The photo's own size (longest side at most "
                             f"{PLACEMENT_SIDE} px)" if pasted else "Side of the square face in each frame")

    def pasting(self) -> bool:
        return self.in_photo.isEnabled() and self.in_photo.isChecked()

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save GIF", self.path_edit.text(), "GIF animations (*.gif)")
        if path:
            self.path_edit.setText(path)
            self._path_edited = True

    def options(self) -> GifOptions:
        loop = self.loop.currentData()
        return GifOptions(size=self.size.value(), smooth=self.smooth.isChecked(), fps=self.fps.value(),
                          loop=self.loop_count.value() if loop == -1 else loop, pingpong=self.pingpong.isChecked())

    def output_path(self) -> Path:
        text = self.path_edit.text().strip()
        if not text:
            raise ValueError("choose a file to save the GIF to")
        path = Path(text).expanduser()
        if path.suffix.lower() != ".gif":
            path = path.with_name(path.name + ".gif")
        if path.is_dir():
            raise ValueError(f"{path} is a folder; give a file name")
        return path

    def request(self) -> GifRequest:
        """The chosen source as its own kind of request (core.jobs: SteerGif, PathGif, WalkGif)."""
        src = self.sources
        common = dict(path=self.output_path(), options=self.options(), captions=self.captions.isChecked(),
                      photo=src.photo if self.pasting() else None)
        source = self.current_source()
        if source == "steer":
            return SteerGif(steps=list(src.steer_frames or []), targets=list(src.steer_targets), **common)
        if source == "path":
            return PathGif(pins=list(src.pins), frames_per_segment=self.segment_frames.value(),
                           loop=self.loop_path.isChecked(), **common)
        return WalkGif(state=src.state, attribute=self.walk_attribute.currentData(), max_alpha=self.max_alpha.value(),
                       count=self.walk_frames.value(), **common)

    # -- export ------------------------------------------------------------------------------
    def start_export(self) -> Task | None:
        if self.task is not None:
            return self.task
        reason = self.sources.reason_unavailable(self.current_source())
        if reason:
            self._show_error(reason)
            return None
        try:
            request = self.request()
        except ValueError as exc:
            self._show_error(str(exc))
            return None
        if request.path.exists() and not self.ask_overwrite(self, request.path):
            self.status.setText(f"Not exported: {request.path.name} already exists (choose another name)")
            return None
        self.result_path = None
        self.open_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.status.setText("Exporting…")
        self.export_button.setEnabled(False)
        self.close_button.setText("Cancel")
        self.task = self.bridge.submit(export_gif, self.engine, request, name="export GIF", long=True,
                                       on_progress=self._on_progress, on_result=self._on_done,
                                       on_error=self._on_error, on_cancelled=self._on_cancelled)
        return self.task

    @staticmethod
    def ask_overwrite(parent: QWidget, path: Path) -> bool:
        """Replace an existing file? (a desktop app asks; tests put their answer here)."""
        answer = QMessageBox.question(parent, "Replace the file?", f"{path.name} already exists in {path.parent}. "
                                      "Replace it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _on_progress(self, item: Any) -> None:
        if isinstance(item, Progress) and item.total:
            self.progress.setRange(0, item.total)
            self.progress.setValue(item.step)
            self.status.setText(item.message or f"Rendering frame {item.step} of {item.total}…")

    def _finish(self) -> None:
        self.task = None
        self.progress.setVisible(False)
        self.close_button.setText("Close")
        self.export_button.setEnabled(self.sources.reason_unavailable(self.current_source()) is None)

    def _on_done(self, path: Any) -> None:
        self._finish()
        self.result_path = Path(path)
        self.status.setText(f"Saved {self.result_path}")
        self.open_button.setEnabled(True)
        self._save()
        if self.open_when_done.isChecked():
            self.open_result_folder()
        self.exported.emit(str(self.result_path))

    def _on_error(self, exc: BaseException) -> None:
        self._finish()
        self._show_error(f"The GIF could not be written: {exc}")

    def _on_cancelled(self) -> None:
        self._finish()
        self.status.setText("Export cancelled; nothing was written.")

    def _show_error(self, text: str) -> None:
        self.status.setText(text)
        self.failed.emit(text)

    def open_result_folder(self) -> bool:
        return self.result_path is not None and open_folder(self.result_path)

    def _close_or_cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        else:
            self._save()
            self.reject()

    def reject(self) -> None:
        if self.task is not None:
            self.task.cancel()
        super().reject()

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.task is not None:
            self.task.cancel()
        super().closeEvent(event)
