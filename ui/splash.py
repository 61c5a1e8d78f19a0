"""The start-up splash: something on screen within a fraction of a second of launching, while torch
imports and the models load (seconds on a busy 2-core machine), instead of nothing at all.

Drawn with QPainter (no image file, no model code), so it shows before `core` is imported.
"""
from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QSplashScreen

SIZE = (440, 200)


def _picture() -> QPixmap:
    ratio = QGuiApplication.primaryScreen().devicePixelRatio() if QGuiApplication.primaryScreen() else 1.0
    pixmap = QPixmap(round(SIZE[0] * ratio), round(SIZE[1] * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(QColor("#20242b"))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QColor("#f2f2f2"))
    title = QFont()
    title.setPointSize(22)
    title.setBold(True)
    painter.setFont(title)
    painter.drawText(QRect(0, 40, SIZE[0], 50), Qt.AlignmentFlag.AlignCenter, "Latent Steer")
    body = QFont()
    body.setPointSize(11)
    painter.setFont(body)
    painter.setPen(QColor("#b8bec8"))
    painter.drawText(QRect(0, 95, SIZE[0], 30), Qt.AlignmentFlag.AlignCenter, "Steer a face, keep the person")
    painter.end()
    return pixmap


def show_splash(app: QApplication) -> QSplashScreen:
    """Show the splash now (the event loop is not running yet, so paint it by hand)."""
    splash = QSplashScreen(_picture())
    splash.show()
    say(splash, "Loading the models…")
    return splash


def say(splash: QSplashScreen, text: str) -> None:
    """A one-line status at the bottom of the splash, painted at once."""
    splash.showMessage(text, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter, QColor("#f2f2f2"))
    QApplication.processEvents()
