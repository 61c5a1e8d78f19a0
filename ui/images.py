"""Pictures between the engine and Qt: uint8 CPU tensors (3, H, W) -> QImage / QPixmap, and back to bytes.

The engine's frames are CPU uint8 tensors; `.numpy()` shares their memory, so the pixels are
rearranged to H×W×3 and the QImage is copied (it must not point into memory Python may free).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QImage, QPixmap


def to_array(image: Any) -> np.ndarray:
    """(3, H, W) uint8 tensor or array, or (H, W, 3) array -> contiguous (H, W, 3) uint8 array."""
    arr = image.numpy() if hasattr(image, "numpy") else np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an RGB image (3, H, W) or (H, W, 3), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def to_qimage(image: Any) -> QImage:
    arr = to_array(image)
    h, w, _ = arr.shape
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_pixmap(image: Any, side: int | None = None, smooth: bool = False) -> QPixmap:
    qimage = to_qimage(image)
    if side is not None:
        mode = Qt.TransformationMode.SmoothTransformation if smooth else Qt.TransformationMode.FastTransformation
        qimage = qimage.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, mode)
    return QPixmap.fromImage(qimage)


def qimage_to_png_bytes(image: QImage) -> bytes:
    """A QImage (e.g. dropped from a browser) as PNG bytes the engine can open."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())
