"""qtawesome icons drawn in the palette's text colour, redrawn when the palette changes (light/dark)."""
from __future__ import annotations

import weakref
from typing import Any

import qtawesome as qta
from PySide6.QtGui import QIcon, QPalette
from PySide6.QtWidgets import QApplication

# What each action shows; one place, so the look is consistent.
NAMES = {
    "open": "fa5s.folder-open",
    "random": "fa5s.dice",
    "grid": "fa5s.th",
    "mix": "fa5s.object-group",
    "undo": "fa5s.undo",
    "redo": "fa5s.redo",
    "before": "fa5s.adjust",
    "snapshot": "fa5s.camera",
    "save": "fa5s.save",
    "copy": "fa5s.copy",
    "gif": "fa5s.film",
    "lock": "fa5s.lock",
    "unlock": "fa5s.lock-open",
    "more": "fa5s.plus",
    "less": "fa5s.minus",
    "search": "fa5s.search",
    "cancel": "fa5s.times-circle",
    "close": "fa5s.times",
    "play": "fa5s.play",
    "stop": "fa5s.stop",
    "pin": "fa5s.map-pin",
    "centre": "fa5s.crosshairs",
    "clear": "fa5s.trash",
    "reset": "fa5s.eraser",
    "warning": "fa5s.exclamation-triangle",
    "info": "fa5s.info-circle",
    "fit": "fa5s.sync-alt",
    "quit": "fa5s.times",
}


def icon(key: str, on: str | None = None) -> QIcon:
    """The icon for `key` in the current application palette's colours.

    With `on`, a two-state icon for a checkable button: `key` when off, `on` (in the highlight
    colour) when checked.
    """
    palette = QApplication.palette()
    normal = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText)
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText)
    highlight = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Highlight)
    name = NAMES.get(key, key)
    if on is None:
        return qta.icon(name, color=normal, color_disabled=disabled, color_active=normal, color_selected=normal)
    on_name = NAMES.get(on, on)
    return qta.icon(name, on=on_name, off=name, on_active=on_name, off_active=name, on_selected=on_name,
                    off_selected=name, on_disabled=on_name, off_disabled=name, color=normal,
                    color_on=highlight, color_on_active=highlight, color_on_selected=highlight,
                    color_off=normal, color_off_active=normal, color_off_selected=normal,
                    color_disabled=disabled)


class IconBinder:
    """Remembers which object shows which icon, so all can be redrawn after a palette change."""

    def __init__(self) -> None:
        self._bound: list[tuple[weakref.ref, str, str | None]] = []

    def bind(self, obj: Any, key: str, on: str | None = None) -> Any:
        obj.setIcon(icon(key, on))
        self._bound.append((weakref.ref(obj), key, on))
        return obj

    def refresh(self) -> None:
        alive = []
        for ref, key, on in self._bound:
            obj = ref()
            if obj is None:
                continue
            try:
                obj.setIcon(icon(key, on))
            except RuntimeError:  # the Qt object is gone
                continue
            alive.append((ref, key, on))
        self._bound = alive
