"""Photo | aligned crop | result, side by side under the face while it came from a photo, and one
line of plain words under them: the stage being worked on, then how alike the result is."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPainter, QPalette, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from ui.images import to_pixmap, to_qimage

THUMB = 64  # each picture's side: at the smallest window (1024×640) the face keeps its 256 px above them


def _picture(parent: QWidget, tip: str) -> QLabel:
    label = QLabel(parent)
    label.setFixedSize(THUMB, THUMB)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setToolTip(tip)
    label.setAccessibleName(tip)
    return label


class PhotoPanel(QWidget):
    """Three small pictures with captions and a status line; it paints what the photo flow gives it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbnail: Any = None  # the photo's thumbnail now shown (to skip repainting the same one)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        self.photo_view = _picture(self, "The photo, with the part that was aligned outlined")
        self.crop_view = _picture(self, "The face as aligned from the photo: what the result is fitted to")
        self.result_view = _picture(self, "The editable face now")
        small = self.font()
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        for column, (view, caption) in enumerate(((self.photo_view, "Photo"), (self.crop_view, "Aligned"),
                                                  (self.result_view, "Result"))):
            grid.addWidget(view, 0, column)
            label = QLabel(caption, self)
            label.setFont(small)
            label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(label, 1, column)
        grid.setColumnStretch(3, 1)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.setFixedHeight(3 * self.status.fontMetrics().lineSpacing() + 4)  # long lines never resize it
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.status, 2, 0, 1, 4)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.sizeHint().height())  # pictures or none, one height: the face above stays put

    def set_photo(self, thumbnail: Any, outline: list[tuple[float, float]] | None = None, name: str = "") -> None:
        """The whole photo (H×W×3 uint8), fitted into the square, with the aligned part outlined."""
        if thumbnail is self._thumbnail:
            return
        self._thumbnail = thumbnail
        self.photo_view.setToolTip(f"{name}: the photo, with the part that was aligned outlined" if name
                                   else "The photo, with the part that was aligned outlined")
        if thumbnail is None:
            self.photo_view.clear()
            return
        image = to_qimage(thumbnail)
        scale = min(THUMB / image.width(), THUMB / image.height())
        pixmap = QPixmap.fromImage(image.scaled(max(1, round(image.width() * scale)),
                                                max(1, round(image.height() * scale)),
                                                Qt.AspectRatioMode.IgnoreAspectRatio,
                                                Qt.TransformationMode.SmoothTransformation))
        if outline:
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 1.5))
            painter.drawPolygon(QPolygonF([QPointF(x * scale, y * scale) for x, y in outline]))
            painter.end()
        self.photo_view.setPixmap(pixmap)

    def set_crop(self, image: Any) -> None:
        self._set(self.crop_view, image)

    def set_result(self, image: Any) -> None:
        self._set(self.result_view, image)

    def set_text(self, text: str) -> None:
        self.status.setText(text)

    def text(self) -> str:
        return self.status.text()

    def clear(self) -> None:
        self.set_photo(None)
        self.set_crop(None)
        self.set_result(None)
        self.set_text("")

    @staticmethod
    def _set(view: QLabel, image: Any) -> None:
        if image is None:
            view.clear()
        else:
            view.setPixmap(to_pixmap(image, THUMB, smooth=True))
