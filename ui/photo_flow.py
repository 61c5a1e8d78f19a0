"""The photo flow of the main window: open or drop a photo, find and align the face, invert it
stage by stage with live frames (photo | aligned crop | result in the photo panel), make it the
face being edited, and say in plain words how alike it came out.

A mixin of `ui.main_window.MainWindow`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QFileDialog

from core.engine import Frame, Progress
from core.history import EditState
from core.inversion import InvertConfig
from core.jobs import FoundFace, PhotoInversion, find_face, invert_photo
from core.readout import identity_distance, likeness_words
from ui.bridge import Task
from ui.images import qimage_to_png_bytes
from ui.photo_panel import THUMB

PHOTOS_KEPT = 8  # photos whose panel undo can bring back (each keeps a thumbnail and a 64-px crop)
FIND, INVERT = "find the face", "photo to face"  # the photo jobs' names (the status bar shows them)
PADDED_NOTE = 0.10  # a crop this much filled in (a tight photo) says so beside the likeness
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


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


@dataclass
class PhotoFace:
    """The photo the face being edited came from: what the photo panel and "Before" show."""

    name: str
    found: FoundFace
    start: EditState  # the photo's first state
    before: Frame  # the aligned crop with its own reading: "Before" shows the photo, not its inversion
    likeness: str = ""  # the identity verdict in plain words, once the worker has measured it


def stage_text(item: Progress, config: InvertConfig) -> str:
    """Where an inversion is, in plain words."""
    if item.stage == "encode":
        return "First guess shown; refining…"
    if item.stage == "tune":
        return f"Tuning to the photo {item.step - config.steps}/{config.tune.steps}"
    return f"Refining {item.step}/{config.steps}"


class PhotoFlow:
    """Photo drops and inversion (mixed into MainWindow)."""

    photo_faces: tuple[PhotoFace, ...] = ()  # the latest photos' faces, newest first (undo may return to one)

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
        """Photo -> aligned face (shown beside the photo) -> inversion with live frames -> the editable face."""
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
        panel = self.photo_panel
        panel.clear()
        panel.setVisible(True)
        panel.set_text("Finding and aligning the face…")
        task = self.bridge.submit(find_face, self.engine, source, 2 * THUMB, name=FIND, long=True)
        task.succeeded.connect(lambda found, t=task: self._on_found(t, found, name))
        task.failed.connect(lambda exc, t=task: self._on_photo_failed(t, name, exc))
        task.cancelled.connect(lambda t=task: self._on_photo_cancelled(t))
        self._face_task = task
        return task

    def _on_found(self, task: Task, found: FoundFace, name: str) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        self._show_found(found, name)
        if found.crop.face is None:
            self.photo_panel.set_text(f"No face found in {name}.")
            self.show_message(f"No face was found in {name}, so nothing was changed. You can still use the centre "
                              "of the photo as the face.", "warning",
                              action=("Use centre crop", lambda: self.invert_crop(found, name)))
            return
        self.invert_crop(found, name)

    def _show_found(self, found: FoundFace, name: str) -> None:
        panel = self.photo_panel
        panel.setVisible(True)
        panel.set_photo(found.thumbnail, found.outline, name)
        panel.set_crop(found.crop.padding_shown())  # what the photo did not have is shaded

    def invert_crop(self, found: FoundFace, name: str) -> Task | None:
        if self._closing:
            return None
        self._cancel_face_jobs()
        self._show_found(found, name)
        self.photo_panel.set_result(None)
        self.photo_panel.set_text("First guess…")
        config = self.invert_config
        task = self.bridge.submit(invert_photo, self.engine, found.crop, config, name=INVERT, long=True)
        task.progress.connect(lambda item, t=task: self._on_invert_progress(t, config, item))
        task.succeeded.connect(lambda out, t=task: self._on_inverted(t, found, name, out))
        task.failed.connect(lambda exc, t=task: self._on_photo_failed(t, name, exc))
        task.cancelled.connect(lambda t=task: self._on_photo_cancelled(t))
        self._face_task = task
        self.face_view.set_badge("First guess…")
        return task

    def _on_invert_progress(self, task: Task, config: InvertConfig, item: Any) -> None:
        if task is not self._face_task or not isinstance(item, Progress) or item.frame is None:
            return
        self.live_frames += 1
        text = stage_text(item, config)
        self.face_view.set_image(item.frame.image)
        self.face_view.set_badge(text.removesuffix("; refining…"))
        if item.frame.probs.numel():  # the frames that carry a reading (core.engine.READ_EVERY)
            self.attribute_panel.set_probabilities(item.frame.probs.tolist())  # the bars follow the preview
        self.photo_panel.set_result(item.frame.image)
        self.photo_panel.set_text(text)

    def _on_inverted(self, task: Task, found: FoundFace, name: str, inverted: PhotoInversion) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        frame = inverted.outcome.frame
        state = EditState.photo_face(frame.z, name, inverted.outcome.delta)
        self._start_new_face(state)
        photo = PhotoFace(name, found, state, Frame(z=frame.z, image=found.crop.image, probs=inverted.crop_probs))
        self.photo_faces = (photo, *self.photo_faces[:PHOTOS_KEPT - 1])
        self._apply(state, frame=frame)
        self.photo_panel.set_text("Ready to edit; checking the likeness…")
        # judged on the face: the filled-in border is left out of both pictures
        self.bridge.submit(identity_distance, *found.crop.likeness_pair(frame.image), name="likeness check",
                           on_result=lambda distance: self._on_likeness(photo, distance))

    def _on_likeness(self, photo: PhotoFace, distance: float | None) -> None:
        photo.likeness = likeness_words(distance) or "Ready to edit."
        padded = photo.found.crop.padded_share
        if padded >= PADDED_NOTE:
            photo.likeness += (f" {100 * padded:.0f} % of the aligned crop lies outside the photo (shaded): it was "
                               "filled in, and the likeness is judged on the face alone.")
        if photo is self.current_photo() and not self._photo_job_running():
            self.photo_panel.set_text(self._panel_likeness(photo))

    def current_photo(self) -> PhotoFace | None:
        """The photo the current face came from (its own generator tells; without one, its start)."""
        state = self.state
        for photo in self.photo_faces if state is not None else ():
            own = photo.start.generator
            if (state.generator is own) if own is not None else (self._start_state is photo.start):
                return photo
        return None

    def _photo_job_running(self) -> bool:
        task = self._face_task
        return task is not None and not task.done and task.name in (FIND, INVERT)

    def _sync_photo_panel(self) -> None:
        """The panel follows the face: its photo, crop and result for a photo's face, hidden otherwise.
        A running photo job owns it."""
        if self._photo_job_running():
            return
        photo = self.current_photo()
        panel = self.photo_panel
        if photo is None:
            panel.setVisible(False)
            return
        self._show_found(photo.found, photo.name)
        panel.set_result(self.frame.image if self.frame is not None else None)
        panel.set_text(self._panel_likeness(photo))

    def _panel_likeness(self, photo: PhotoFace) -> str:
        """The panel's verdict is about the photo's own face, so it shows only while that face is on
        screen; once it is edited, the one identity line is the readout under the face (compared with
        the photo, `_update_readout`), and two lines never disagree."""
        if self.state is not photo.start:
            return "Edited: the line under the face says whether it still looks like the photo."
        return photo.likeness or "Ready to edit; checking the likeness…"

    def _on_photo_failed(self, task: Task, name: str, exc: BaseException) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        self._display_current()
        self._sync_photo_panel()
        self.show_message(f"{name} could not be used: {exc}. Nothing was changed.")

    def _on_photo_cancelled(self, task: Task) -> None:
        if task is self._face_task:
            self._face_task = None
        if not self._previewing():
            self._display_current()
        if self._face_task is not None:  # a newer job (another photo, an edit) owns the view now
            return
        if self.current_photo() is not None:
            self._sync_photo_panel()
            self.photo_panel.set_text("Cancelled; this face stays as it was.")
        else:  # the face is not a photo's: the cancelled photo stays in view until the next change
            self.photo_panel.set_result(None)
            self.photo_panel.set_text("Cancelled; the previous face stays.")

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
