"""The photo flow of the main window: open or drop a photo, find the face, invert it with live
frames, make it the face being edited.

A mixin of `ui.main_window.MainWindow`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QFileDialog

from core.engine import InvertOutcome, Progress
from core.history import EditState
from core.inversion import FaceCrop
from ui.bridge import Task
from ui.images import qimage_to_png_bytes, to_pixmap

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


class PhotoFlow:
    """Photo drops and inversion (mixed into MainWindow)."""

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
