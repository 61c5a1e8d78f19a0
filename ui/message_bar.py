"""A message strip at the top of the window: what went wrong (or needs doing), in one sentence,
with an optional action button. Never modal, so nothing the user was doing is interrupted."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton

from ui.icons import IconBinder, icon


class MessageBar(QFrame):
    shown = Signal(str)
    closed = Signal()

    def __init__(self, icons: IconBinder | None = None, parent=None) -> None:
        super().__init__(parent)
        self.icons = icons or IconBinder()
        self.setObjectName("MessageBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.glyph = QLabel(self)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.action = QPushButton(self)
        self.action.setVisible(False)
        self.action.clicked.connect(self._run_action)
        self.close_button = QToolButton(self)
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.icons.bind(self.close_button, "close")
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.glyph)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.action)
        layout.addWidget(self.close_button)
        self._callback: Callable[[], object] | None = None
        self._kind = "info"
        self.setVisible(False)

    def show_message(self, text: str, kind: str = "error", action: tuple[str, Callable[[], object]] | None = None
                     ) -> None:
        """kind: "error" | "warning" | "info"; action: (button text, callback), run once then dismissed."""
        self._kind = kind
        self.glyph.setPixmap(icon("info" if kind == "info" else "warning").pixmap(18, 18))
        self.text.setText(text)
        self._callback = action[1] if action else None
        self.action.setText(action[0] if action else "")
        self.action.setVisible(action is not None)
        self.setVisible(True)
        self.shown.emit(text)

    def message(self) -> str:
        return "" if self.isHidden() else self.text.text()

    def kind(self) -> str:
        return self._kind

    def _run_action(self) -> None:
        callback, self._callback = self._callback, None
        self.dismiss()
        if callback is not None:
            callback()

    def dismiss(self) -> None:
        self._callback = None
        self.setVisible(False)
        self.closed.emit()
