"""Edit → Mix two snapshots: choose two faces of the snapshot strip and a blend between them (slerp in
z, `core.history.mix_state`), drawn on the worker; "Use this face" makes the blend the face being
edited (one undo step)."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QSlider,
                               QVBoxLayout, QWidget)

from core.engine import Engine
from core.history import EditState, Snapshots
from core.jobs import FaceResult, mix_face
from ui.bridge import Bridge
from ui.images import to_pixmap

PREVIEW = 192
STEPS = 100  # the blend slider runs 0..STEPS
JOB_KEY = "mix"


class MixDialog(QDialog):
    use_face = Signal(object, object)  # the blend's EditState and its Frame
    preview_shown = Signal()

    def __init__(self, bridge: Bridge, engine: Engine, snapshots: Snapshots, first: int = 0, second: int = 1,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Mix two faces")
        self.setWindowModality(Qt.WindowModality.WindowModal)  # the snapshot strip stays as listed here
        self.bridge, self.engine, self.snapshots = bridge, engine, snapshots
        self.result: FaceResult | None = None  # the blend on screen
        self.face_a, self.face_b = QComboBox(self), QComboBox(self)
        for combo in (self.face_a, self.face_b):
            combo.setIconSize(QSize(32, 32))
            for snap in snapshots:
                thumb = QIcon(to_pixmap(snap.image, 32, smooth=True)) if snap.image is not None else QIcon()
                combo.addItem(thumb, snap.label[:40])
        self.face_a.setCurrentIndex(max(0, min(first, len(snapshots) - 1)))
        self.face_b.setCurrentIndex(max(0, min(second, len(snapshots) - 1)))
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, STEPS)
        self.slider.setValue(STEPS // 2)
        self.slider.setPageStep(10)
        self.slider.setAccessibleName("Mix")
        self.amount = QLabel(self)
        self.amount.setMinimumWidth(self.amount.fontMetrics().horizontalAdvance("100 % second"))
        self.preview = QLabel(self)
        self.preview.setFixedSize(PREVIEW, PREVIEW)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note = QLabel(self)  # why a photo's face does not mix exactly
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.use_button = buttons.addButton("&Use this face", QDialogButtonBox.ButtonRole.AcceptRole)
        self.use_button.setEnabled(False)
        buttons.accepted.connect(self.use)
        buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("First face", self.face_a)
        form.addRow("Second face", self.face_b)
        mix_row = QHBoxLayout()
        mix_row.addWidget(self.slider, 1)
        mix_row.addWidget(self.amount)
        form.addRow("Mix", mix_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        for signal in (self.face_a.currentIndexChanged, self.face_b.currentIndexChanged, self.slider.valueChanged):
            signal.connect(self.refresh)
        self.refresh()

    def states(self) -> tuple[EditState, EditState]:
        return (self.snapshots[self.face_a.currentIndex()].state, self.snapshots[self.face_b.currentIndex()].state)

    def blend(self) -> float:
        return self.slider.value() / STEPS

    def refresh(self) -> None:
        """Draw the blend the controls ask for (newer requests replace older ones waiting)."""
        a, b = self.states()
        t = self.blend()
        self.amount.setText(f"{100 - self.slider.value()} % first" if t < 0.5 else f"{self.slider.value()} % second")
        own = [s for s in (a, b) if s.generator is not None]
        self.note.setText("A photo's face is drawn by a generator fine-tuned to that photo; a mix is drawn by the "
                          "plain generator, so that face looks less like the photo, even at its own end of the "
                          "slider." if own else "")
        self.note.setVisible(bool(own))
        self.use_button.setEnabled(False)
        self.bridge.request(JOB_KEY, mix_face, self.engine, a, b, t, name="mix faces",
                            on_result=lambda r: self._on_mix(r, a, b, t),
                            on_error=lambda exc: self.note.setText(f"This mix could not be drawn: {exc}"))

    def _on_mix(self, result: FaceResult, a: EditState, b: EditState, t: float) -> None:
        if (a, b, t) != (*self.states(), self.blend()):
            return  # the controls moved on; a newer request is on its way
        self.result = result
        self.preview.setPixmap(to_pixmap(result.frame.image, PREVIEW, smooth=True))
        self.use_button.setEnabled(True)
        self.preview_shown.emit()

    def use(self) -> None:
        if self.result is not None and self.use_button.isEnabled():
            self.use_face.emit(self.result.state, self.result.frame)
            self.accept()

    def done(self, result: int) -> None:
        self.bridge.cancel_key(JOB_KEY)
        super().done(result)
