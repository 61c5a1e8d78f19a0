"""The window speaks plainly: no PSNR, dB, z, Pillow, classifier or gradient in what a user reads."""
from __future__ import annotations

import re

from PySide6.QtWidgets import QAbstractButton, QLabel, QWidget

from tests.test_ui_window import settle

JARGON = re.compile(r"\bPSNR\b|\bdB\b|(?-i:\bz\b)|Pillow|classifier|gradient|\bencoder\b|\blogit", re.IGNORECASE)


def visible_words(window) -> list[str]:
    """Every label, button text, tooltip and status tip of the window and its actions."""
    texts: list[str] = []
    for widget in [window, *window.findChildren(QWidget)]:
        texts += [widget.toolTip(), widget.statusTip(), widget.whatsThis()]
        if isinstance(widget, (QLabel, QAbstractButton)):
            texts.append(widget.text())
    for action in window.findChildren(type(window.actions()[0])):
        texts += [action.text(), action.toolTip(), action.statusTip()]
    return [t for t in texts if t]


def test_no_jargon_in_the_window(make_window, qtbot):
    w = make_window()
    settle(w, qtbot)
    found = sorted({t for t in visible_words(w) if JARGON.search(t)})
    assert not found, found


def test_the_slider_end_hint_is_in_plain_words(make_window, qtbot):
    from tests.test_ui_window import _drag_to_end

    w = make_window()
    shown: list[str] = []
    w.message_bar.show_message = lambda text, kind="error", action=None: shown.append(text)
    _drag_to_end(w, qtbot, "Bald", 1)
    probs = w.frame.probs.clone()
    probs[w.engine.attribute_index("Bald")] = 0.1  # the face still reads "not bald" at the slider's end
    w.frame.probs = probs
    shown.clear()
    w._hint_if_unreached("Bald")
    assert len(shown) == 1 and "Bald" in shown[0] and not JARGON.search(shown[0]), shown


def test_the_jargon_check_itself_catches_jargon():
    assert JARGON.search("PSNR 25.1 dB (encoder)") and JARGON.search("a straight line in z")
    assert not JARGON.search("Looks like the same person") and not JARGON.search("Undo (Ctrl+Z)")
