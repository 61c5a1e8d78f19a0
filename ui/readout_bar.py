"""A probability readout: a thin bar with its percentage beside it, never on it.

A progress bar's text drawn over its own fill changes colour mid-digit and loses contrast where
the fill covers it; here the number sits on the window's own background in the window's own text
colour, so it reads the same at 0 % and at 100 %, in every theme.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

RANGE = 1000  # value() runs 0..RANGE (a probability in tenths of a per cent)
BAR_HEIGHT = 6


class ReadoutBar(QWidget):
    """Shows one probability; `set_probability(None)` shows a dash (no reading yet)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._value = 0
        self._text = "—"
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def set_probability(self, p: float | None) -> None:
        if p is None:
            self._value, self._text = 0, "—"
        else:
            p = min(max(float(p), 0.0), 1.0)
            self._value, self._text = round(RANGE * p), f"{100 * p:.0f}%"
        self.setAccessibleDescription(self._text)
        self.update()

    def value(self) -> int:
        return self._value

    def text(self) -> str:
        return self._text

    def text_width(self) -> int:
        return self.fontMetrics().horizontalAdvance("100%") + 2

    def sizeHint(self) -> QSize:
        return QSize(self.text_width() + 4 + 28, max(self.fontMetrics().height(), BAR_HEIGHT))

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def text_rect(self) -> QRectF:
        """Where the number is drawn (right-aligned, clear of the bar)."""
        w = self.text_width()
        return QRectF(self.width() - w, 0, w, self.height())

    def bar_rect(self) -> QRectF:
        track_w = max(self.width() - self.text_width() - 4, 4)
        return QRectF(0.5, (self.height() - BAR_HEIGHT) / 2 + 0.5, track_w - 1, BAR_HEIGHT - 1)

    def paintEvent(self, event: QPaintEvent) -> None:
        pal = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        track = self.bar_rect()
        painter.setPen(pal.color(QPalette.ColorRole.Mid))
        painter.setBrush(pal.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(track, 2, 2)
        if self._value > 0:
            fill = QRectF(track)
            fill.setWidth(track.width() * self._value / RANGE)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(pal.color(QPalette.ColorRole.Highlight))
            painter.drawRoundedRect(fill, 2, 2)
        painter.setPen(pal.color(QPalette.ColorRole.WindowText))
        painter.drawText(self.text_rect(), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, self._text)
        painter.end()
