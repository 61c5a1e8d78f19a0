"""The latent canvas: a 2-D plane through the current z, spanned by two axes the user picks.

The background is a map of small faces sampled on the plane's grid (rendered by a job); the
handle is the current face, and dragging it moves z live. Keyframe pins sit on the plane and
are joined by the path that "Play" animates and "Export…" writes to a GIF. The canvas itself
only draws and reports (u, v); the window turns that into jobs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QSizePolicy, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from core.canvas import Axis
from ui.attribute_panel import display_name
from ui.icons import IconBinder
from ui.images import to_qimage

MARGIN = 22  # room for the axis labels (left and bottom)
PCS = 4
RANDOM_AXES = 2


class LatentCanvas(QWidget):
    """The plane's map, its pins and the draggable handle, in plane coordinates (u right, v up)."""

    handle_moved = Signal(float, float)  # while dragging (and on click)
    handle_released = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tiles: list[QImage] = []
        self._n = 0
        self._extent = 3.0
        self._labels = ("", "")
        self._handle = (0.0, 0.0)
        self._pins: list[tuple[float, float]] = []
        self._marker: tuple[float, float] | None = None
        self._stale = False
        self._dragging = False
        self.setMinimumSize(240, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(False)
        self.setAccessibleName("Latent canvas")
        self.setToolTip("Drag the handle to move the face in the plane; arrow keys nudge it")

    # -- state -------------------------------------------------------------------------------
    def set_map(self, images: Sequence[Any], n: int, extent: float, labels: tuple[str, str]) -> None:
        self._tiles = [to_qimage(im) for im in images]
        self._n, self._extent, self._labels = n, float(extent), labels
        self._stale = False
        self.update()

    def clear_map(self) -> None:
        self._tiles, self._n = [], 0
        self.update()

    def has_map(self) -> bool:
        return bool(self._tiles)

    def is_stale(self) -> bool:
        return self._stale

    def set_stale(self, stale: bool) -> None:
        self._stale = stale
        self.update()

    def set_extent(self, extent: float) -> None:
        self._extent = float(extent)
        self.update()

    def set_handle(self, u: float, v: float) -> None:
        self._handle = (float(u), float(v))
        self.update()

    def handle(self) -> tuple[float, float]:
        return self._handle

    def set_pins(self, pins: Sequence[tuple[float, float]]) -> None:
        self._pins = [(float(u), float(v)) for u, v in pins]
        self.update()

    def pins(self) -> list[tuple[float, float]]:
        return list(self._pins)

    def set_marker(self, uv: tuple[float, float] | None) -> None:
        self._marker = uv
        self.update()

    def dragging(self) -> bool:
        return self._dragging

    # -- geometry ----------------------------------------------------------------------------
    def half_range(self) -> float:
        """Plane coordinates reach ±this at the map's edges (half a cell beyond the outer centres)."""
        n = max(self._n, 2)
        return self._extent * (1 + 1 / (n - 1))

    def area(self) -> QRectF:
        side = max(10.0, min(self.width() - MARGIN - 6, self.height() - MARGIN - 6))
        left = MARGIN + (self.width() - MARGIN - 6 - side) / 2
        top = 6 + (self.height() - MARGIN - 6 - side) / 2
        return QRectF(left, top, side, side)

    def to_pixel(self, u: float, v: float) -> QPointF:
        area, r = self.area(), self.half_range()
        return QPointF(area.left() + (u + r) / (2 * r) * area.width(), area.top() + (r - v) / (2 * r) * area.height())

    def to_plane(self, point: QPointF) -> tuple[float, float]:
        area, r = self.area(), self.half_range()
        u = (point.x() - area.left()) / area.width() * 2 * r - r
        v = r - (point.y() - area.top()) / area.height() * 2 * r
        return max(-r, min(r, u)), max(-r, min(r, v))

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(320, 320)

    # -- input -------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        self._dragging = True
        self._move_to(event.position())

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._dragging:
            self._move_to(event.position())

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._dragging and event.button() == Qt.MouseButton.LeftButton:
            self._dragging = False
            self._move_to(event.position())
            self.handle_released.emit(*self._handle)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        step = self.half_range() / 16
        moves = {Qt.Key.Key_Left: (-step, 0), Qt.Key.Key_Right: (step, 0), Qt.Key.Key_Up: (0, step),
                 Qt.Key.Key_Down: (0, -step)}
        if event.key() not in moves:
            return super().keyPressEvent(event)
        du, dv = moves[event.key()]
        r = self.half_range()
        self._handle = (max(-r, min(r, self._handle[0] + du)), max(-r, min(r, self._handle[1] + dv)))
        self.update()
        self.handle_moved.emit(*self._handle)
        self.handle_released.emit(*self._handle)

    def _move_to(self, point: QPointF) -> None:
        uv = self.to_plane(point)
        if uv != self._handle:
            self._handle = uv
            self.update()
            self.handle_moved.emit(*uv)

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        area = self.area()
        painter.fillRect(area, palette.color(QPalette.ColorRole.Base))
        if self._tiles and self._n:
            cell = area.width() / self._n
            for i, tile in enumerate(self._tiles):
                r, c = divmod(i, self._n)
                painter.drawImage(QRectF(area.left() + c * cell, area.top() + r * cell, cell, cell), tile)
            if self._stale:
                veil = QColor(palette.color(QPalette.ColorRole.Base))
                veil.setAlpha(110)
                painter.fillRect(area, veil)
        else:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "The map of faces on this plane appears here")
        text = palette.color(QPalette.ColorRole.WindowText)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.drawRect(area)
        # axis labels
        painter.setPen(text)
        painter.drawText(QRectF(area.left(), area.bottom() + 2, area.width(), MARGIN - 2),
                         Qt.AlignmentFlag.AlignCenter, f"← {self._labels[0]} →")
        painter.save()
        painter.translate(area.left() - 4, area.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-area.height() / 2, -MARGIN + 4, area.height(), MARGIN - 4),
                         Qt.AlignmentFlag.AlignCenter, f"← {self._labels[1]} →")
        painter.restore()
        painter.setClipRect(area)
        highlight = palette.color(QPalette.ColorRole.Highlight)
        # keyframe path and pins
        if self._pins:
            path = QPainterPath(self.to_pixel(*self._pins[0]))
            for uv in self._pins[1:]:
                path.lineTo(self.to_pixel(*uv))
            painter.setPen(QPen(QColor(0, 0, 0, 160), 4))
            painter.drawPath(path)
            painter.setPen(QPen(highlight, 2, Qt.PenStyle.DashLine))
            painter.drawPath(path)
            for k, uv in enumerate(self._pins, start=1):
                p = self.to_pixel(*uv)
                painter.setPen(QPen(QColor(0, 0, 0), 1))
                painter.setBrush(highlight)
                painter.drawEllipse(p, 8, 8)
                painter.setPen(palette.color(QPalette.ColorRole.HighlightedText))
                painter.drawText(QRectF(p.x() - 8, p.y() - 8, 16, 16), Qt.AlignmentFlag.AlignCenter, str(k))
        if self._marker is not None:
            p = self.to_pixel(*self._marker)
            painter.setPen(QPen(QColor(255, 255, 255), 2))
            painter.setBrush(QColor(0, 0, 0, 140))
            painter.drawEllipse(p, 5, 5)
        # the handle: a ring with a dark and a light outline, visible on any face
        p = self.to_pixel(*self._handle)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0), 5))
        painter.drawEllipse(p, 10, 10)
        painter.setPen(QPen(QColor(255, 255, 255), 2.5))
        painter.drawEllipse(p, 10, 10)
        painter.setPen(QPen(highlight, 2))
        painter.drawLine(QPointF(p.x() - 4, p.y()), QPointF(p.x() + 4, p.y()))
        painter.drawLine(QPointF(p.x(), p.y() - 4), QPointF(p.x(), p.y() + 4))
        if self.hasFocus():
            painter.setClipping(False)
            painter.setPen(QPen(highlight, 1, Qt.PenStyle.DotLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(area.adjusted(-2, -2, 2, 2))
        painter.end()


def axis_choices(attributes: Sequence[str], available: Sequence[bool] | None) -> list[Axis]:
    """Attribute directions (when fitted), their principal components, then random directions."""
    out: list[Axis] = []
    if available is not None:
        out += [Axis("attribute", i, display_name(a)) for i, a in enumerate(attributes)
                if i < len(available) and available[i]]
        if sum(bool(x) for x in available) >= PCS:
            out += [Axis("pc", k, f"Main variation {k + 1}") for k in range(PCS)]
    out += [Axis("random", k, f"Random direction {k + 1}") for k in range(RANDOM_AXES)]
    return out


class CanvasPanel(QWidget):
    """The canvas and its controls: axes, extent, grid, re-centre, pins, play, export."""

    view_changed = Signal()  # axes, extent or grid changed: the map needs rendering
    recentre_clicked = Signal()
    pin_clicked = Signal()
    clear_pins_clicked = Signal()
    play_toggled = Signal(bool)
    export_clicked = Signal()

    def __init__(self, icons: IconBinder | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.icons = icons or IconBinder()
        self.canvas = LatentCanvas(self)
        self.axis_a = QComboBox(self)
        self.axis_b = QComboBox(self)
        for combo, tip in ((self.axis_a, "Horizontal axis"), (self.axis_b, "Vertical axis")):
            combo.setToolTip(f"{tip}: an attribute direction, a principal component of the directions, "
                             "or a random direction")
            combo.setMinimumContentsLength(12)
            combo.currentIndexChanged.connect(lambda _=0: self.view_changed.emit())
        self.extent = QDoubleSpinBox(self)
        self.extent.setRange(0.5, 20.0)
        self.extent.setSingleStep(0.5)
        self.extent.setValue(3.0)
        self.extent.setToolTip("How far the map reaches from the face along each axis (in slider strengths)")
        self.extent.valueChanged.connect(lambda _=0: self.view_changed.emit())
        self.grid = QSpinBox(self)
        self.grid.setRange(3, 11)
        self.grid.setSingleStep(2)
        self.grid.setValue(7)
        self.grid.setToolTip("Faces per side of the map")
        self.grid.valueChanged.connect(lambda _=0: self.view_changed.emit())

        def button(key: str, text: str, tip: str, checkable: bool = False, on: str | None = None) -> QToolButton:
            b = QToolButton(self)
            b.setText(text)
            b.setToolTip(tip)
            b.setCheckable(checkable)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            self.icons.bind(b, key, on)
            return b

        self.recentre = button("centre", "Re-centre", "Put the plane's centre on the current face")
        self.pin = button("pin", "Pin", "Drop a keyframe pin at the current face (K)")
        self.clear = button("clear", "Clear", "Remove all pins")
        self.play = button("play", "Play", "Play the path through the pins", checkable=True, on="stop")
        self.export = button("gif", "GIF…", "Export the path through the pins as a GIF")
        self.recentre.clicked.connect(self.recentre_clicked)
        self.pin.clicked.connect(self.pin_clicked)
        self.clear.clicked.connect(self.clear_pins_clicked)
        self.play.toggled.connect(self.play_toggled)
        self.export.clicked.connect(self.export_clicked)
        self.pins_label = QLabel("No pins", self)
        self.pins_label.setWordWrap(True)  # a narrow panel wraps the hint instead of cutting it

        form = QFormLayout()
        form.addRow("→ axis", self.axis_a)
        form.addRow("↑ axis", self.axis_b)
        sizes = QHBoxLayout()
        sizes.addWidget(QLabel("Map range ±", self))
        sizes.addWidget(self.extent)
        sizes.addWidget(QLabel("Grid", self))
        sizes.addWidget(self.grid)
        sizes.addStretch(1)
        form.addRow(sizes)
        pins = QHBoxLayout()
        for b in (self.recentre, self.pin, self.clear, self.play, self.export):
            pins.addWidget(b)
        pins.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(pins)
        layout.addWidget(self.pins_label)
        self.setMinimumWidth(280)
        self.set_pin_count(0)
        spacing = max(0, pins.spacing())  # the row's width with every label shown (measured once)
        self._labelled_width = sum(b.sizeHint().width() for b in self.buttons()) + spacing * (len(self.buttons()) - 1)

    def buttons(self) -> tuple[QToolButton, ...]:
        return (self.recentre, self.pin, self.clear, self.play, self.export)

    def _fit_buttons(self) -> None:
        """Text beside the icons when the row has room, icons alone (the tooltips name them) when not:
        at the smallest window the labels were cut to "R…e", "C…r"."""
        style = (Qt.ToolButtonStyle.ToolButtonTextBesideIcon if self._labelled_width <= self.width()
                 else Qt.ToolButtonStyle.ToolButtonIconOnly)
        for b in self.buttons():
            if b.toolButtonStyle() != style:
                b.setToolButtonStyle(style)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_buttons()

    def set_axis_choices(self, axes: Sequence[Axis], prefer: tuple[str, str] = ("Smiling", "Male")) -> None:
        """Fill both combos with `axes`: the preferred labels when offered, else the current ones, else
        the first two."""
        current = (self.axis_a.currentText(), self.axis_b.currentText())
        for combo, keep, fallback, default_index in ((self.axis_a, current[0], prefer[0], 0),
                                                     (self.axis_b, current[1], prefer[1], 1)):
            combo.blockSignals(True)
            combo.clear()
            for axis in axes:
                combo.addItem(axis.label, axis)
            labels = [a.label for a in axes]
            for choice in (fallback, display_name(fallback), keep):
                if choice in labels:
                    combo.setCurrentIndex(labels.index(choice))
                    break
            else:
                combo.setCurrentIndex(min(default_index, combo.count() - 1))
            combo.blockSignals(False)
        if self.axis_a.currentIndex() == self.axis_b.currentIndex() and self.axis_b.count() > 1:
            self.axis_b.setCurrentIndex((self.axis_a.currentIndex() + 1) % self.axis_b.count())

    def select_axes(self, a: str, b: str) -> None:
        for combo, label in ((self.axis_a, a), (self.axis_b, b)):
            index = combo.findText(label)
            if index >= 0:
                combo.setCurrentIndex(index)

    def axes(self) -> tuple[Axis | None, Axis | None]:
        return self.axis_a.currentData(), self.axis_b.currentData()

    def set_pin_count(self, n: int) -> None:
        self.pins_label.setText("No pins: drag the handle, then Pin (K) to drop keyframes" if n == 0 else
                                f"{n} pin{'s' if n != 1 else ''}" + ("" if n >= 2 else ": pin one more to play"))
        self.play.setEnabled(n >= 2 or self.play.isChecked())
        self.export.setEnabled(n >= 2)
        self.clear.setEnabled(n > 0)
