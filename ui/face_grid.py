"""Edit → Pick from random faces: a grid of new random faces, drawn on the engine's worker; the one
clicked becomes the face being edited. "More faces" draws a new grid; Esc closes."""
from __future__ import annotations

import random

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QGridLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from core.engine import Engine, Frame, Progress
from core.jobs import random_faces
from ui.bridge import Bridge
from ui.icons import IconBinder
from ui.images import to_pixmap

COLUMNS, ROWS = 4, 3
TILE = 112  # px: a 64-px face enlarged smoothly
JOB_KEY = "face grid"


class FaceGridDialog(QDialog):
    picked = Signal(int)  # the seed of the face clicked
    faces_shown = Signal()  # every tile of the current grid has its face

    def __init__(self, bridge: Bridge, engine: Engine, icons: IconBinder, max_seed: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pick a face")
        self.bridge, self.engine, self.max_seed = bridge, engine, max_seed
        self.seeds: list[int] = []
        self.tiles: list[QToolButton] = []
        grid = QGridLayout()
        grid.setSpacing(6)
        for i in range(COLUMNS * ROWS):
            tile = QToolButton(self)
            tile.setIconSize(QSize(TILE, TILE))
            tile.setAutoRaise(True)
            tile.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            tile.clicked.connect(lambda _=False, k=i: self.pick(k))
            grid.addWidget(tile, *divmod(i, COLUMNS))
            self.tiles.append(tile)
        hint = QLabel("Click a face to start editing it.", self)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.more_button = buttons.addButton("&More faces", QDialogButtonBox.ButtonRole.ActionRole)
        icons.bind(self.more_button, "random")
        self.more_button.clicked.connect(self.more)
        buttons.rejected.connect(self.reject)  # Close, and Esc
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addLayout(grid)
        layout.addWidget(buttons)
        self.more()

    def more(self) -> None:
        """A new grid: new seeds, their faces drawn one by one on the worker (a grid still drawing is dropped)."""
        self.seeds = [random.randint(0, self.max_seed) for _ in self.tiles]
        for tile, seed in zip(self.tiles, self.seeds):
            tile.setIcon(QIcon())
            tile.setEnabled(False)
            tile.setToolTip(f"Seed {seed}")
            tile.setAccessibleName(f"Face of seed {seed}")
        self.bridge.cancel_key(JOB_KEY)
        seeds = list(self.seeds)
        self.bridge.request(JOB_KEY, random_faces, self.engine, seeds, name="random faces",
                            on_progress=lambda item: self._on_progress(seeds, item),
                            on_result=lambda frames: self._on_faces(seeds, frames))

    def _show(self, index: int, frame: Frame) -> None:
        tile = self.tiles[index]
        tile.setIcon(QIcon(to_pixmap(frame.image, TILE, smooth=True)))
        tile.setEnabled(True)

    def _on_progress(self, seeds: list[int], item: object) -> None:
        if seeds == self.seeds and isinstance(item, Progress) and item.frame is not None:
            self._show(item.step - 1, item.frame)

    def _on_faces(self, seeds: list[int], frames: list[Frame]) -> None:
        if seeds != self.seeds:
            return  # an older grid
        for index, frame in enumerate(frames):
            self._show(index, frame)
        self.faces_shown.emit()

    def pick(self, index: int) -> None:
        self.picked.emit(self.seeds[index])
        self.accept()

    def done(self, result: int) -> None:
        self.bridge.cancel_key(JOB_KEY)
        super().done(result)
