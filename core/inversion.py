"""Real photo -> z: find the face, align it like CelebA, encode, then refine z by optimisation.

Framing: dlib's 5 landmarks and a similarity transform onto CelebA's measured template
(`core.align`); as a fallback OpenCV's Haar cascade (shipped inside opencv-python-headless,
fully offline) finds the face box and CelebA's 64-px crop is placed relative to that box with
constants measured on the CelebA images themselves (see FRAMING_*). Without a face, a centre
crop is used and the result says so. Refinement: Adam on z against pixel + classifier-feature
loss, a prior term that keeps ‖z‖ typical, and an encoder-consistency term ‖z − E(G(z))‖².
After it, `core.tuning` fits the face's own generator (pivotal tuning).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from core import align
from core.align import CROP, apply_affine, invert_affine
from core.data import to_model_range
from core.latent import on_sphere
from core.losses import maps_distance, normalised_maps
from core.metrics import psnr
from core.tuning import TuneConfig

# Measured by running the detector below on 400 aligned CelebA images (every 20th of IDs 1-8000;
# 17 had no detection): the 64-px crop's side is 1.67 face-box widths (median; sd 0.48), its centre
# is level with the box centre horizontally (sd 0.10) and 0.137 box widths above it (sd 0.14).
FRAMING_SIDE = 1.67
FRAMING_DY = -0.137


@dataclass
class FaceCrop:
    """The model-ready face and where it came from, for the UI to show."""

    image: torch.Tensor  # (3, 64, 64) uint8
    box: tuple[int, int, int, int]  # crop square in the photo (left, top, right, bottom)
    face: tuple[int, int, int, int] | None  # detected face box (x, y, w, h), None = not found
    notice: str | None = None  # e.g. "no face found; used a centre crop"
    transform: np.ndarray | None = None  # 2×3, photo coordinates -> the 64-px crop (see core.align)
    landmarks: np.ndarray | None = None  # (5, 2) dlib landmarks in the photo, when found
    method: str = "centre"  # "landmarks" | "haar" | "centre"
    photo: Image.Image | None = field(default=None, repr=False)  # the photo itself (not a copy), for paste-back


_CASCADE = None


class FaceDetectorUnavailable(RuntimeError):
    """No face detector can run here; a photo then gets a centre crop and a notice that says why."""


def _cascade():
    global _CASCADE
    if _CASCADE is None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):  # seen: a cv2 built without its objdetect module
            raise FaceDetectorUnavailable("this OpenCV build has no face detector (objdetect)")
        _CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if _CASCADE.empty():
            raise RuntimeError("OpenCV's frontal-face Haar cascade could not be loaded")
    return _CASCADE


def detect_face(img: Image.Image) -> tuple[int, int, int, int] | None:
    """Largest frontal face as (x, y, w, h) in `img` pixels, or None.

    Haar cascades miss faces that fill the frame, so the grey image is brought to ~400 px and
    padded by half its size (edge-replicated) before detection, then boxes are mapped back.
    """
    import cv2

    grey = np.asarray(img.convert("L"))
    h, w = grey.shape
    scale = 400.0 / max(h, w)
    work = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    pad = max(work.shape) // 2
    work = cv2.copyMakeBorder(work, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    faces = _cascade().detectMultiScale(work, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
    if len(faces) == 0:
        return None
    x, y, fw, fh = max(faces, key=lambda r: r[2] * r[3])
    return (round((x - pad) / scale), round((y - pad) / scale), round(fw / scale), round(fh / scale))


def _square_transform(cx: float, cy: float, side: float) -> np.ndarray:
    """Photo -> 64-px frame for an axis-aligned square of `side` centred at (cx, cy)."""
    k = CROP / side
    return np.array([[k, 0.0, -(cx - side / 2) * k], [0.0, k, -(cy - side / 2) * k]])


def _box_of(transform: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box in the photo of the 64-px frame (the whole crop, rotated or not)."""
    corners = apply_affine(invert_affine(transform), np.array([[0, 0], [CROP, 0], [0, CROP], [CROP, CROP]]))
    lo, hi = corners.min(0), corners.max(0)
    return (round(lo[0]), round(lo[1]), round(hi[0]), round(hi[1]))


def crop_face(img: Image.Image, detect: bool = True) -> FaceCrop:
    """Photo (RGB) -> CelebA-aligned 64-px face, with the transform that maps the photo onto it.

    dlib's 5 landmarks + a similarity transform onto CelebA's measured template first
    (`core.align`); without them the Haar box and the framing constants; without a face a centre
    crop with a notice. Parts of the crop outside the photo are filled by reflection.
    """
    if detect and align.available():
        found = align.detect_landmarks(img)
        if found is not None:
            m = align.similarity(found.points, align.TEMPLATE_64)
            return FaceCrop(image=_chw(align.warp(img, m)), box=_box_of(m), face=found.box, transform=m,
                            landmarks=found.points, method="landmarks", photo=img)
    face, why = None, "no face found"
    if detect:
        try:
            face = detect_face(img)
        except FaceDetectorUnavailable as e:
            why = str(e)
    if face is None:
        m = _square_transform(img.width / 2, img.height / 2, min(img.size))
        notice, method = (f"{why}; used a centre crop" if detect else None), "centre"
    else:
        x, y, fw, fh = face
        m = _square_transform(x + fw / 2, y + fh / 2 + FRAMING_DY * fw, FRAMING_SIDE * fw)
        notice, method = None, "haar"
    return FaceCrop(image=_chw(align.warp(img, m)), box=_box_of(m), face=face, notice=notice, transform=m,
                    method=method, photo=img)


def _chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).contiguous()


# ---------------------------------------------------------------------------------------------


@dataclass
class InvertConfig:
    steps: int = 40  # with generator tuning after it, 40 steps reach what 100 did (measured)
    lr: float = 0.05
    w_pixel: float = 1.0
    w_feature: float = 0.5
    w_prior: float = 0.05
    w_encoder: float = 0.05
    tune: TuneConfig = field(default_factory=TuneConfig)  # the engine's pivotal-tuning stage (steps=0: off)

    def validate(self) -> None:
        self.tune.validate()
        if not (isinstance(self.steps, int) and 0 <= self.steps <= 10_000):
            raise ValueError(f"steps must be an integer in [0, 10000], got {self.steps!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr!r}")


@dataclass
class InvertStep:
    step: int
    total: int
    z: torch.Tensor  # (1, d) CPU
    image: torch.Tensor  # (1, 3, 64, 64) in [-1, 1], CPU
    loss: float
    psnr_db: float


@dataclass
class InvertResult:
    z: torch.Tensor  # (1, d) CPU: the best z found
    z_encoder: torch.Tensor  # (1, d) CPU: E(x), before refinement
    image: torch.Tensor  # (1, 3, 64, 64) CPU: G(z)
    psnr_db: float
    psnr_encoder_db: float


def invert(generator: nn.Module, encoder: nn.Module, classifier: nn.Module | None, target: torch.Tensor,
           config: InvertConfig | None = None) -> Iterator[InvertStep]:
    """Generator job: z₀ = E(x), then `steps` of Adam on z; returns `InvertResult`.

    Yields the encoder's guess first (step 0, a preview before any optimisation; its `loss` is
    not computed), then each step.

    `target` is a (3, 64, 64) uint8 face (from `crop_face`) or a (1, 3, 64, 64) float in [-1, 1].
    """
    config = config or InvertConfig()
    config.validate()
    device = next(generator.parameters()).device
    x = target.to(device)
    x = to_model_range(x) if x.dtype == torch.uint8 else x.float()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    with torch.no_grad():
        z0 = encoder(x).float()
        target_maps = normalised_maps(classifier, x) if classifier is not None and config.w_feature > 0 else None
        image0 = generator(z0)
    psnr0 = float(psnr(image0, x)[0])
    yield InvertStep(step=0, total=config.steps, z=z0.cpu(), image=image0.cpu(), loss=math.nan, psnr_db=psnr0)
    d = z0.shape[1]
    sphere = on_sphere(generator)

    def loss_of(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = generator(z)
        loss = config.w_pixel * (image - x).square().mean()
        if target_maps is not None:
            loss = loss + config.w_feature * maps_distance(normalised_maps(classifier, image), target_maps).mean()
        if sphere:  # keep z near the prior's shell (a style G's w has none)
            loss = loss + config.w_prior * (z.square().sum() / d - 1).square()
        if config.w_encoder > 0:
            loss = loss + config.w_encoder * (z - encoder(image)).square().mean()
        return loss, image

    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=config.lr)
    best = (float("inf"), z0.clone(), image0, psnr0)
    for step in range(config.steps):
        loss, image = loss_of(z)
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        if value < best[0]:
            best = (value, z.detach().clone(), image.detach(), float(psnr(image.detach(), x)[0]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield InvertStep(step=step + 1, total=config.steps, z=z.detach().cpu(), image=image.detach().cpu(),
                         loss=value, psnr_db=best[3])
    if config.steps:
        with torch.no_grad():
            loss, image = loss_of(z)
            if float(loss) < best[0]:
                best = (float(loss), z.detach().clone(), image, float(psnr(image, x)[0]))
    _, z_best, image_best, psnr_best = best
    return InvertResult(z=z_best.cpu(), z_encoder=z0.cpu(), image=image_best.cpu(), psnr_db=psnr_best,
                        psnr_encoder_db=psnr0)
