"""Small dialogs of the main window: the keyboard shortcuts (Help menu) and the confirmation before
fitting the latent directions, which takes minutes."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QMessageBox, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

# What the keyboard and mouse do that no menu action shows.
EXTRA_SHORTCUTS: list[tuple[str, str]] = [
    ("Esc or Enter in the attribute filter", "Back to the face (the other shortcuts work again)"),
    ("Double-click a strength slider", "Set it back to 0"),
    ("Type in a strength's number box, then Enter", "Set that exact strength"),
    ("Arrow keys / Page Up / Page Down on a slider", "Change its strength"),
    ("Delete in the snapshot strip", "Remove the selected snapshot"),
    ("Right-click a snapshot", "Go back to it, mix it with another, or remove it"),
    ("Drop a photo on the window", "Turn it into an editable face"),
]


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(keys, what) for every action that has a shortcut, in the order given, then the extras."""
    rows = []
    for action in actions:
        keys = [s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts() if not s.isEmpty()]
        if keys:
            rows.append((", ".join(keys), action.text().replace("&", "").replace("…", "")))
    return rows + EXTRA_SHORTCUTS


class ShortcutsDialog(QDialog):
    """Help → Keyboard shortcuts: a two-column table built from the window's own actions."""

    def __init__(self, rows: Sequence[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Keys", "What it does"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        for r, (keys, what) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(keys))
            self.table.setItem(r, 1, QTableWidgetItem(what))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(560, 520)

    def rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]


def format_duration(seconds: float) -> str:
    """'about 40 seconds', 'about 6 minutes', 'about 1.5 hours'."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} second{'s' if round(seconds) > 1 else ''}"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    return f"about {seconds / 3600:.1f} hours"


def fit_confirmation(parent: QWidget, samples: int, seconds: float) -> QMessageBox:
    """The question before fitting (not shown yet: call `open()`); Fit is the accept button, Esc cancels."""
    box = QMessageBox(QMessageBox.Icon.Question, "Learn the attribute sliders",
                      f"Learning how each attribute moves a face draws and reads {samples:,} faces. On this computer that "
                      f"takes {format_duration(seconds)}.", QMessageBox.StandardButton.NoButton, parent)
    box.setInformativeText("While it runs the face cannot be changed (new faces, sliders, steering and the canvas "
                           "wait for it). Esc or the Cancel button in the status bar stops it.")
    box.fit_button = box.addButton("Learn the sliders", QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    return box
