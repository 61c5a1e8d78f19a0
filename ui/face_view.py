"""The face, large: the 64-px picture drawn at 256–1024 px (as large as the window allows), crisp
(nearest) or smooth."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.images import to_qimage

MIN_SIDE, MAX_SIDE = 256, 1024  # a maximised window shows a large face, not a 512-px one in margins
SOURCE_SIDE = 64


def display_side(width: int, height: int, smooth: bool) -> int:
    """Side of the drawn face: as large as fits, within 256–1024; crisp keeps whole-pixel multiples of 64."""
    side = max(MIN_SIDE, min(MAX_SIDE, width, height))
    if not smooth:
        side = max(MIN_SIDE, side // SOURCE_SIDE * SOURCE_SIDE)
    return side


class FaceView(QWidget):
    """Draws one face image; an optional badge (e.g. "Before", "Steering 4/30") in a corner."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._smooth = True
        self._badge = ""
        self._placeholder = "No face yet"
        self.setMinimumSize(MIN_SIDE, MIN_SIDE)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Face")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # clicking the face takes the keyboard (for the shortcuts)

    # -- state -------------------------------------------------------------------------------
    def set_image(self, image: Any) -> None:
        """A (3, 64, 64) uint8 tensor/array or a QImage; None clears."""
        self._image = None if image is None else image if isinstance(image, QImage) else to_qimage(image)
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def set_smooth(self, smooth: bool) -> None:
        self._smooth = bool(smooth)
        self.update()

    def smooth(self) -> bool:
        return self._smooth

    def set_badge(self, text: str) -> None:
        if text != self._badge:
            self._badge = text
            self.update()

    def badge(self) -> str:
        return self._badge

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def side(self) -> int:
        return display_side(self.width(), self.height(), self._smooth)

    def face_rect(self) -> QRect:
        side = self.side()
        return QRect((self.width() - side) // 2, (self.height() - side) // 2, side, side)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(384, 384)

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        palette = self.palette()
        rect = self.face_rect()
        if self._image is None:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1, Qt.PenStyle.DashLine))
            painter.drawRect(rect.adjusted(0, 0, -1, -1))
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self._placeholder)
        else:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth)
            painter.drawImage(rect, self._image)
        if self._badge:
            metrics = painter.fontMetrics()
            w = metrics.horizontalAdvance(self._badge) + 12
            h = metrics.height() + 6
            badge = QRect(rect.left() + 8, rect.top() + 8, w, h)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.Highlight))
            painter.drawRoundedRect(badge, 4, 4)
            painter.setPen(palette.color(QPalette.ColorRole.HighlightedText))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, self._badge)
        painter.end()
