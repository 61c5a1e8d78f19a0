"""The window at its smallest (1024×640) and maximised: nothing cut off, the face uses the room."""
from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, Qt

from tests.test_ui_window import settle


def _inside(widget, ancestor) -> bool:
    """`widget`'s whole rectangle lies inside `ancestor`'s."""
    top_left = widget.mapTo(ancestor, QPoint(0, 0))
    return ancestor.rect().contains(QRect(top_left, widget.size()))


def test_canvas_buttons_are_whole_at_the_smallest_window(make_window, qtbot):
    w = make_window()
    w.resize(1024, 640)
    settle(w, qtbot)
    qtbot.waitUntil(lambda: w.canvas_panel.width() <= 320, timeout=5_000)
    panel = w.canvas_panel
    for b in panel.buttons():
        assert _inside(b, panel), b.toolTip()
        # a label that does not fit is not drawn cut ("R…e"): the button shows its icon alone
        labelled = b.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        assert not labelled or b.width() >= b.sizeHint().width(), b.text()
        assert b.toolTip()  # icon-only buttons still say what they do
    assert panel.buttons()[0].toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonIconOnly


def test_wide_canvas_panel_shows_the_labels_and_a_maximised_face_is_large(make_window, qtbot):
    w = make_window()
    w.resize(1900, 1060)
    settle(w, qtbot)
    w.splitter.setSizes([900, 500, 500])
    qtbot.waitUntil(lambda: w.canvas_panel.width() >= 480, timeout=5_000)
    assert all(b.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon for b in w.canvas_panel.buttons())
    assert w.face_view.side() > 512


def test_a_photo_face_keeps_its_own_generator_when_moved_on_the_canvas(make_window, qtbot):
    from tests.test_paste_back import _photo_face

    w = make_window()
    face = _photo_face(w.engine)
    w._apply(face)
    settle(w, qtbot)
    w.canvas_panel.canvas.handle_moved.emit(1.0, 0.5)
    w.canvas_panel.canvas.handle_released.emit(1.0, 0.5)
    settle(w, qtbot)
    assert w.state is not face and w.state.label == "move on the canvas"
    assert w.state.generator is face.generator  # drawn, pasted back and saved with the photo's generator
