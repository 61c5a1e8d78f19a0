"""The attribute panel: the 40 attributes in groups, each with a live probability bar, a strength
slider (direction edit) with a box to type its exact value, a lock toggle and more/less buttons
(classifier-gradient steering).

The panel only shows and reports: it emits signals and never starts a job itself.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from PySide6.QtCore import QEvent, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QAbstractSpinBox, QDoubleSpinBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                               QScrollArea, QSizePolicy, QSlider, QToolButton, QVBoxLayout, QWidget)

from core.policy import SLIDER_MAX_ALPHA
from ui.icons import IconBinder, icon
from ui.readout_bar import RANGE as READOUT_RANGE, ReadoutBar

SLIDER_STEPS = 100  # the slider runs from -SLIDER_STEPS to +SLIDER_STEPS
MAX_ALPHA = SLIDER_MAX_ALPHA  # strength at the slider's end (core.policy)

# The 40 CelebA attributes, grouped the way people think about a face.
GROUPS: list[tuple[str, list[str]]] = [
    ("Hair", ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald", "Bangs", "Receding_Hairline",
              "Straight_Hair", "Wavy_Hair"]),
    ("Facial hair", ["No_Beard", "5_o_Clock_Shadow", "Goatee", "Mustache", "Sideburns"]),
    ("Expression", ["Smiling", "Mouth_Slightly_Open"]),
    ("Face shape", ["Oval_Face", "Chubby", "Double_Chin", "High_Cheekbones", "Pointy_Nose", "Big_Nose", "Big_Lips",
                    "Narrow_Eyes", "Arched_Eyebrows", "Bushy_Eyebrows", "Bags_Under_Eyes"]),
    ("Age & gender", ["Male", "Young"]),
    ("Make-up & skin", ["Heavy_Makeup", "Wearing_Lipstick", "Rosy_Cheeks", "Pale_Skin"]),
    ("Accessories", ["Eyeglasses", "Wearing_Hat", "Wearing_Earrings", "Wearing_Necklace", "Wearing_Necktie"]),
    ("Overall", ["Attractive", "Blurry"]),
]
OTHER_GROUP = "Other"


def display_name(name: str) -> str:
    if name == "5_o_Clock_Shadow":
        return "5 o'clock shadow"
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:].lower()


def group_attributes(names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Our groups restricted to `names` (in group order), then any unknown names under "Other"."""
    known = set(names)
    out, placed = [], set()
    for group, members in GROUPS:
        present = [m for m in members if m in known]
        placed.update(present)
        if present:
            out.append((group, present))
    rest = [n for n in names if n not in placed]
    if rest:
        out.append((OTHER_GROUP, rest))
    return out


def slider_to_alpha(value: int) -> float:
    return MAX_ALPHA * value / SLIDER_STEPS


def alpha_to_slider(alpha: float) -> int:
    return max(-SLIDER_STEPS, min(SLIDER_STEPS, round(alpha / MAX_ALPHA * SLIDER_STEPS)))


def matches(name: str, query: str) -> bool:
    """Case-insensitive match of every word of `query` against the name (and its group)."""
    words = query.lower().split()
    hay = f"{name} {display_name(name)} {group_of(name)}".lower().replace("_", " ")
    return all(w in hay for w in words)


def group_of(name: str) -> str:
    for group, members in GROUPS:
        if name in members:
            return group
    return OTHER_GROUP


def is_undo_redo(event) -> bool:
    ctrl_y = event.key() == Qt.Key.Key_Y and event.modifiers() == Qt.KeyboardModifier.ControlModifier
    return event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo) or ctrl_y


class FilterBox(QLineEdit):
    """The attribute filter. Letters typed here filter (so K, P, B type), but the box gives the
    keyboard back: Esc or Enter leave it (`left`), Space in an empty box leaves it and gives the
    window's Space, and undo/redo always act on the face, not on the filter text."""

    left = Signal()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride:
            if is_undo_redo(event):
                return True  # not claimed: the window's undo/redo shortcut gets the key
            if (event.key() == Qt.Key.Key_Space and not self.text().strip()
                    and event.modifiers() == Qt.KeyboardModifier.NoModifier):
                self.left.emit()
                return True  # nothing to separate yet: Space is the window's (a random face)
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.key() == Qt.Key.Key_Escape:
                self.clear()  # Esc gives up the filter: every attribute comes back (Enter keeps the matches)
            self.left.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class ResetSlider(QSlider):
    """A strength slider; a double-click sets it back to 0."""

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if self.isEnabled() and event.button() == Qt.MouseButton.LeftButton:
            self.sliderPressed.emit()  # as a drag back to 0 would: one undo step of its own
            self.setValue(0)
            self.sliderReleased.emit()
            event.accept()
            return
        super().mouseDoubleClickEvent(event)


TYPED_MAX = 99.99  # a typed strength beyond ±MAX_ALPHA is accepted, then clamped with a note


class StrengthBox(QDoubleSpinBox):
    """The exact strength of one slider, to type (Enter or leaving the box applies it). Every key
    typed into it stays in it (a letter is refused there, it never fires a window shortcut); only
    undo/redo reach the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(-TYPED_MAX, TYPED_MAX)
        self.setDecimals(2)
        self.setSingleStep(MAX_ALPHA / SLIDER_STEPS * 2)  # the slider's arrow-key step
        self.setKeyboardTracking(False)  # one value when typing is done, not one per digit
        self.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.setFixedWidth(self.fontMetrics().horizontalAdvance("−3.00") + 14)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride:
            if is_undo_redo(event):
                return True  # not claimed: the window's undo/redo gets the key
            if event.text() and event.text().isprintable() and not event.modifiers() & ~(
                    Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier):
                event.accept()  # claimed: typed text stays in the box
                return True
        return super().event(event)


class AttributeRow:
    """The widgets of one attribute (they live in the group's grid)."""

    def __init__(self, name: str, parent: QWidget, icons: IconBinder) -> None:
        self.name = name
        self.label = QLabel(display_name(name), parent)
        self.label.setToolTip(name)
        self.bar = ReadoutBar(parent)
        self.bar.setToolTip(f"How strongly the current face reads as {display_name(name)}")
        self.slider = ResetSlider(Qt.Orientation.Horizontal, parent)
        self.slider.setRange(-SLIDER_STEPS, SLIDER_STEPS)
        self.slider.setPageStep(10)
        self.slider.setSingleStep(2)
        self.slider.setMinimumWidth(64)
        self.slider.setToolTip(f"Strength of the {display_name(name)} direction (0 = unchanged; double-click resets)")
        self.slider.setAccessibleName(f"{display_name(name)} strength")
        self.value = StrengthBox(parent)
        self.value.setToolTip(f"Strength of {display_name(name)}: type an exact value, then Enter")
        self.value.setAccessibleName(f"{display_name(name)} strength value")
        self.lock = QToolButton(parent)
        self.lock.setCheckable(True)
        self.lock.setAutoRaise(True)
        self.lock.setToolTip(f"Lock {display_name(name)}: edits and steering keep it as it is")
        icons.bind(self.lock, "unlock", on="lock")
        self.less = QToolButton(parent)
        self.less.setAutoRaise(True)
        self.less.setToolTip(f"Less {display_name(name)}: nudge the face step by step, keeping the person")
        icons.bind(self.less, "less")
        self.more = QToolButton(parent)
        self.more.setAutoRaise(True)
        self.more.setToolTip(f"More {display_name(name)}: nudge the face step by step, keeping the person")
        icons.bind(self.more, "more")

    def widgets(self) -> list[QWidget]:
        return [self.label, self.bar, self.slider, self.value, self.lock, self.less, self.more]

    def set_visible(self, visible: bool) -> None:
        for w in self.widgets():
            w.setVisible(visible)

    def set_probability(self, p: float | None) -> None:
        self.bar.set_probability(p)


class AttributePanel(QWidget):
    """Search box + grouped rows. Signals carry attribute names as the engine knows them."""

    alpha_changed = Signal(str, float)  # slider moved (strength in z units)
    slider_pressed = Signal(str)  # a drag begins (one undo step per drag)
    slider_released = Signal(str)
    lock_toggled = Signal(str, bool)
    steer_requested = Signal(str, int)  # +1 more, -1 less
    reset_requested = Signal()
    note = Signal(str)  # something the user should know about what they typed (a clamped strength)
    filter_left = Signal()  # the filter box gave the keyboard back (Esc, Enter, Space, a row's button used)

    def __init__(self, attributes: Sequence[str], icons: IconBinder | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.icons = icons or IconBinder()
        self.attributes = list(attributes)
        self.rows: dict[str, AttributeRow] = {}
        self.groups: dict[str, tuple[QWidget, list[str]]] = {}

        self.search = FilterBox(self)
        self.search.setPlaceholderText("Filter attributes (e.g. hair, smil, glasses)")
        self.search.setToolTip("Type to filter the attributes (Ctrl+F); Esc or Enter returns to the face")
        self.search.left.connect(self.filter_left)
        self.search.setClearButtonEnabled(True)
        self.icons.bind(self.search.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition), "search")
        self.search.textChanged.connect(self.filter)
        self.reset = QToolButton(self)
        self.reset.setText("Reset")
        self.reset.setToolTip("Back to this face's starting point: every slider and steering edit undone in one step (Ctrl+Z brings them back)")
        self.reset.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.icons.bind(self.reset, "reset")
        self.reset.clicked.connect(self.reset_requested)
        self.empty = QLabel("No attribute matches the filter.", self)
        self.empty.setVisible(False)
        self.notice = QLabel(self)
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.reset)

        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(4, 4, 4, 4)
        column.setSpacing(10)
        for group, names in group_attributes(self.attributes):
            box = QWidget(body)
            grid = QGridLayout(box)
            grid.setContentsMargins(0, 0, 0, 0)
            grid.setHorizontalSpacing(4)
            grid.setVerticalSpacing(2)
            header = QLabel(f"<b>{group}</b>", box)
            grid.addWidget(header, 0, 0, 1, 7)
            for r, name in enumerate(names, start=1):
                row = AttributeRow(name, box, self.icons)
                for c, w in enumerate(row.widgets()):
                    grid.addWidget(w, r, c)
                self._connect(row)
                self.rows[name] = row
            grid.setColumnStretch(2, 1)
            column.addWidget(box)
            self.groups[group] = (box, names)
        # one label width for every group, so the bars and sliders line up down the panel
        width = max(r.label.fontMetrics().horizontalAdvance(r.label.text()) for r in self.rows.values()) + 8
        for row in self.rows.values():
            row.label.setFixedWidth(width)
        column.addWidget(self.empty)
        column.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll = scroll

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.notice)
        layout.addWidget(scroll, 1)
        # wide enough for a whole row beside the scroll bar: nothing clipped at the smallest window
        self.setMinimumWidth(body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    def _connect(self, row: AttributeRow) -> None:
        name = row.name
        row.slider.valueChanged.connect(lambda v, r=row: self._on_slider(r, v))
        row.value.valueChanged.connect(lambda alpha, r=row: self._on_typed(r, alpha))
        row.slider.sliderPressed.connect(lambda n=name: self.slider_pressed.emit(n))
        row.slider.sliderReleased.connect(lambda n=name: self.slider_released.emit(n))
        row.lock.toggled.connect(lambda on, n=name: self.lock_toggled.emit(n, on))
        row.more.clicked.connect(lambda _=False, n=name: self.steer_requested.emit(n, +1))
        row.less.clicked.connect(lambda _=False, n=name: self.steer_requested.emit(n, -1))
        for button in (row.lock, row.less, row.more):  # done filtering: the keyboard goes back to the face
            button.clicked.connect(self._leave_filter)

    def _on_slider(self, row: AttributeRow, value: int) -> None:
        alpha = slider_to_alpha(value)
        with QSignalBlocker(row.value):
            row.value.setValue(alpha)
        self.alpha_changed.emit(row.name, alpha)

    def _on_typed(self, row: AttributeRow, alpha: float) -> None:
        """A typed strength: exact (not rounded to a slider step), and one undo step of its own; beyond
        the slider's ends it is clamped there, and `note` says so."""
        if abs(alpha) > MAX_ALPHA:
            typed, alpha = alpha, math.copysign(MAX_ALPHA, alpha)
            with QSignalBlocker(row.value):
                row.value.setValue(alpha)
            self.note.emit(f"{display_name(row.name)}: a strength of {typed:g} is beyond the slider's range, "
                           f"so it was set to {alpha:+.2f} (the slider's end).")
        with QSignalBlocker(row.slider):
            row.slider.setValue(alpha_to_slider(alpha))
        self.slider_pressed.emit(row.name)
        self.alpha_changed.emit(row.name, alpha)
        self.slider_released.emit(row.name)

    def _leave_filter(self) -> None:
        if self.search.hasFocus():
            self.filter_left.emit()

    # -- showing state (never emits) ---------------------------------------------------------
    def set_probabilities(self, probs: Sequence[float] | None) -> None:
        for i, name in enumerate(self.attributes):
            self.rows[name].set_probability(None if probs is None or i >= len(probs) else float(probs[i]))

    def probability(self, name: str) -> float:
        return self.rows[name].bar.value() / READOUT_RANGE

    def set_alphas(self, alphas: dict[str, float]) -> None:
        for name, row in self.rows.items():
            alpha = alphas.get(name, 0.0)
            with QSignalBlocker(row.slider), QSignalBlocker(row.value):
                row.slider.setValue(alpha_to_slider(alpha))
                row.value.setValue(alpha)

    def alpha(self, name: str) -> float:
        return self.rows[name].value.value()

    def set_locked(self, locked: Iterable[str]) -> None:
        locked = set(locked)
        for name, row in self.rows.items():
            with QSignalBlocker(row.lock):
                row.lock.setChecked(name in locked)

    def locked(self) -> set[str]:
        return {n for n, r in self.rows.items() if r.lock.isChecked()}

    def set_directions(self, available: Sequence[bool] | None) -> None:
        """Sliders work only for attributes with a direction (None: directions not fitted)."""
        for i, name in enumerate(self.attributes):
            row = self.rows[name]
            ok = available is not None and i < len(available) and bool(available[i])
            row.slider.setEnabled(ok)
            row.value.setEnabled(ok)
            if available is None:
                row.slider.setToolTip("Sliders need the latent directions, which are not fitted yet")
            elif not ok:
                row.slider.setToolTip(f"{display_name(name)} has no direction: the generator's faces always or "
                                      "never show it (steering with more/less still works)")
            else:
                row.slider.setToolTip(f"Strength of the {display_name(name)} direction (0 = unchanged; "
                                      "double-click resets)")

    def set_busy_attribute(self, name: str | None) -> None:
        """Highlight the row being steered."""
        for n, row in self.rows.items():
            font = row.label.font()
            font.setBold(n == name)
            row.label.setFont(font)

    # -- filtering ---------------------------------------------------------------------------
    def filter(self, text: str) -> None:
        any_shown = False
        for group, (box, names) in self.groups.items():
            shown = 0
            for name in names:
                visible = matches(name, text)
                self.rows[name].set_visible(visible)
                shown += visible
            box.setVisible(shown > 0)
            any_shown |= shown > 0
        self.empty.setVisible(not any_shown)

    def visible_attributes(self) -> list[str]:
        return [n for n, r in self.rows.items() if not r.label.isHidden() and not r.label.parentWidget().isHidden()]
