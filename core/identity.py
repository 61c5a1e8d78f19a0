"""Face identity: dlib's face-recognition ResNet as a yardstick of "is it still the same person".

A 128-d descriptor per face; two faces whose descriptors lie closer than `SAME_PERSON` (0.6,
dlib's own threshold) are read as one person. It is a *measure*, never a loss: nothing that
makes an edit or an inversion may optimise against it, or it would stop meaning anything.

Our faces are 64 px, too small for dlib's landmark model, so each is upscaled ×4 (bicubic),
the HOG detector looks for the face (a fixed box measured on CelebA's framing when it finds
none), the 5-point landmarks are placed, and dlib aligns its own 150-px chip from them.
The models ship inside the `face-recognition-models` package (no download at run time); its
`__init__` needs `pkg_resources`, so the files are located with `find_spec` instead of imported.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import torch

SAME_PERSON = 0.6
UPSCALE = 4
# Median HOG box of 200 held-out CelebA faces at 64 px ×4 (left, top, right, bottom), the
# fallback when the detector finds nothing (generated faces are framed like CelebA).
CELEBA_BOX_256 = (65, 93, 189, 217)


class IdentityUnavailable(RuntimeError):
    """dlib or its model files are not installed."""


def _model_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.origin:
        raise IdentityUnavailable("the face-identity models are not installed (pip install face-recognition-models)")
    return Path(spec.origin).parent / "models"


def available() -> bool:
    try:
        import dlib  # noqa: F401
        return (_model_dir() / "dlib_face_recognition_resnet_model_v1.dat").is_file()
    except (ImportError, IdentityUnavailable):
        return False


def _to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] (or uint8) -> (N, H, W, 3) uint8."""
    images = images.detach().cpu()
    if images.dtype != torch.uint8:
        images = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).contiguous().numpy()


class IdentityMetric:
    """Descriptors and distances; loads dlib's models once (about 0.3 s), thread-safe."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise IdentityUnavailable("dlib is not installed (pip install dlib-bin)") from exc
        d = _model_dir()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))

    def _prepare(self, face: np.ndarray) -> tuple[np.ndarray, object]:
        from PIL import Image

        h, w = face.shape[:2]
        big = np.asarray(Image.fromarray(face).resize((w * UPSCALE, h * UPSCALE), Image.BICUBIC))
        boxes = self._detector(big, 0)
        if len(boxes):
            box = max(boxes, key=lambda r: r.area())
        else:
            sx, sy = w * UPSCALE / 256, h * UPSCALE / 256
            l, t, r, b = CELEBA_BOX_256
            box = self._dlib.rectangle(int(l * sx), int(t * sy), int(r * sx), int(b * sy))
        return big, self._landmarks(big, box)

    def descriptors(self, images: torch.Tensor) -> np.ndarray:
        """(N, 3, H, W) faces in CelebA framing, [-1, 1] or uint8 -> (N, 128) float32."""
        faces = _to_uint8_hwc(images)
        if len(faces) == 0:
            return np.zeros((0, 128), np.float32)
        with self._lock:
            out = [self._net.compute_face_descriptor(*self._prepare(f)) for f in faces]
        return np.array([np.array(d) for d in out], dtype=np.float32)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
        """Per-pair descriptor distance of two equal-length batches of faces."""
        if len(a) != len(b):
            raise ValueError(f"distance needs pairs: {len(a)} vs {len(b)} faces")
        return np.linalg.norm(self.descriptors(a) - self.descriptors(b), axis=1)


def summarise(distances: np.ndarray) -> dict:
    """Mean distance and the share read as the same person."""
    d = np.asarray(distances, dtype=np.float64)
    if d.size == 0:
        return {"mean": float("nan"), "same_person": float("nan"), "n": 0}
    return {"mean": float(d.mean()), "same_person": float((d < SAME_PERSON).mean()), "n": int(d.size)}


_shared: IdentityMetric | None = None
_shared_lock = threading.Lock()


def shared_metric() -> IdentityMetric | None:
    """The one identity metric of this process (built on first use), or None without dlib: the
    window's likeness lines and the yardsticks read the same one."""
    global _shared
    with _shared_lock:
        if _shared is None and available():
            _shared = IdentityMetric()
    return _shared
