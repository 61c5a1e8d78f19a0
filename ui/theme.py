"""View → Theme: the system's look, or Fusion with a light or a dark palette, for the whole app.

Native styles (Windows, macOS) ignore a custom palette, so Light and Dark use Fusion; System puts
back the style and palette the app started with. Widgets that draw icons redraw them on the
palette change (ui.icons).
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QSettings
from PySide6.QtGui import QActionGroup, QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

THEMES = {"system": "&System", "light": "&Light", "dark": "&Dark"}
SETTING = "view/theme"

_started_with: tuple[str, QPalette] | None = None  # the app's own style and palette, kept at the first switch

_DARK = {  # role: (active/inactive colour, disabled colour or None)
    QPalette.ColorRole.Window: ("#2d2d30", None),
    QPalette.ColorRole.WindowText: ("#e8e8e8", "#7f7f7f"),
    QPalette.ColorRole.Base: ("#1e1e1e", "#2d2d30"),
    QPalette.ColorRole.AlternateBase: ("#333337", None),
    QPalette.ColorRole.ToolTipBase: ("#3c3c40", None),
    QPalette.ColorRole.ToolTipText: ("#e8e8e8", None),
    QPalette.ColorRole.PlaceholderText: ("#8a8a8a", None),
    QPalette.ColorRole.Text: ("#e8e8e8", "#7f7f7f"),
    QPalette.ColorRole.Button: ("#3a3a3d", "#333336"),
    QPalette.ColorRole.ButtonText: ("#e8e8e8", "#7f7f7f"),
    QPalette.ColorRole.BrightText: ("#ff6b6b", None),
    QPalette.ColorRole.Light: ("#505054", None),
    QPalette.ColorRole.Midlight: ("#444448", None),
    QPalette.ColorRole.Mid: ("#2a2a2d", None),
    QPalette.ColorRole.Dark: ("#1a1a1c", None),
    QPalette.ColorRole.Shadow: ("#0c0c0c", None),
    QPalette.ColorRole.Highlight: ("#3d7ccc", "#4a4a4e"),
    QPalette.ColorRole.HighlightedText: ("#ffffff", "#9a9a9a"),
    QPalette.ColorRole.Link: ("#6fa8ff", None),
    QPalette.ColorRole.LinkVisited: ("#b48cff", None),
}


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, (colour, disabled) in _DARK.items():
        palette.setColor(role, QColor(colour))
        if disabled is not None:
            palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled))
    return palette


def light_palette() -> QPalette:
    return QStyleFactory.create("Fusion").standardPalette()


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(name: str, app: QApplication | None = None) -> str:
    """Switch the whole app to `name` (an unknown name means "system"); returns the name applied."""
    global _started_with
    app = app or QApplication.instance()
    name = name if name in THEMES else "system"
    if name == "system":
        if _started_with is not None:  # nothing to undo when the app never left its own look
            style, palette = _started_with
            if app.style().name() != style:
                app.setStyle(style)
            app.setPalette(palette)
        return name
    if _started_with is None:
        _started_with = (app.style().name(), QPalette(app.palette()))
    if app.style().name() != "fusion":
        app.setStyle("Fusion")
    app.setPalette(dark_palette() if name == "dark" else light_palette())
    return name


def theme_actions(parent: QObject, settings: QSettings) -> QActionGroup:
    """View → Theme's entries (one checked, the saved one, which is applied); choosing one applies
    and remembers it."""
    group = QActionGroup(parent)
    current = apply_theme(settings.value(SETTING, "system", type=str))
    for key, text in THEMES.items():
        action = group.addAction(text)
        action.setCheckable(True)
        action.setChecked(key == current)
        action.setData(key)

    def chosen(action) -> None:
        settings.setValue(SETTING, apply_theme(action.data()))
        settings.sync()

    group.triggered.connect(chosen)
    return group
