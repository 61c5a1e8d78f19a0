"""The strip of snapshots: small faces the user saved and can click to go back to."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QMenu

from ui.images import to_pixmap

THUMB = 64


class SnapshotStrip(QListWidget):
    restore_requested = Signal(int)
    remove_requested = Signal(int)
    mix_requested = Signal(int)  # mix this snapshot with another

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(THUMB + 44)
        self.setToolTip("Snapshots: click one to go back to it; Delete removes it")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.itemClicked.connect(lambda item: self.restore_requested.emit(self.row(item)))

    def add(self, image: Any, label: str) -> None:
        item = QListWidgetItem(QIcon(to_pixmap(image, THUMB)), label[:18])
        item.setToolTip(label)
        self.addItem(item)
        self.scrollToItem(item)

    def remove(self, index: int) -> None:
        self.takeItem(index)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.currentRow() >= 0:
            self.remove_requested.emit(self.currentRow())
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentRow() >= 0:
            self.restore_requested.emit(self.currentRow())
            return
        super().keyPressEvent(event)

    def _menu(self, pos) -> None:
        item = self.itemAt(pos)
        if item is None:
            return
        menu = QMenu(self)
        restore = menu.addAction("Go back to this face")
        mix = menu.addAction("Mix with another snapshot…")
        mix.setEnabled(self.count() >= 2)
        remove = menu.addAction("Remove snapshot")
        chosen = menu.exec(self.mapToGlobal(pos))
        if chosen is restore:
            self.restore_requested.emit(self.row(item))
        elif chosen is mix:
            self.mix_requested.emit(self.row(item))
        elif chosen is remove:
            self.remove_requested.emit(self.row(item))
