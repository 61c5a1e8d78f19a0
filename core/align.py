"""The face crop of a photo: landmark alignment onto CelebA's framing (Haar box, then a centre crop,
as fallbacks), and pasting a result back into the photo.

dlib's HOG face detector finds the face and its 5-point shape predictor (both shipped inside
`face-recognition-models`, offline) places the eye corners and the base of the nose; a similarity
transform (rotation, uniform scale, shift) maps those five points onto `TEMPLATE_64`, where the
same landmarks sit on CelebA's own aligned 64-px crops. Outside the photo the warp reflects
the picture (never edge-stretching, which makes the model invent tall smeared heads). The
transform is kept so a 64-px result can be mapped back into the photo (`paste_back`).

Coordinates are continuous: pixel i covers [i, i+1), its centre is i + 0.5.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.identity import _model_dir

# Where dlib's 5 landmarks (0-1: one eye's outer/inner corner, 2-3: the other eye's outer/inner
# corner, 4: base of the nose) lie in the app's 64-px CelebA crop (`core.data.preprocess`:
# short side -> 64, centre crop), continuous pixel coordinates. Measured with `measure_template`
# (`python -m core.align ../shared/data/celeba`) on 400 training images (every 20th of IDs
# 1-8000, upscaled ×4 for the HOG detector; 385 faces found): per-point median.
TEMPLATE_64 = np.array([
    [41.618, 33.521],  # sd 0.82, 0.56
    [36.045, 33.700],  # sd 0.53, 0.50
    [22.382, 33.342],  # sd 0.82, 0.73
    [27.775, 33.700],  # sd 0.55, 0.58
    [31.910, 44.255],  # sd 1.58, 1.06
], dtype=np.float64)

CROP = 64
SUPERSAMPLE = 4  # warp to 256 px, then one antialiased downscale to 64 (as CelebA's own resize)
DETECT_SIDE = 480  # photos are brought to about this size for the HOG detector
CROPS_UPSCALE = 2.0  # tight face crops (short side ~128 px): HOG's 80-px minimum is met at 2×, 4× faster than 480 px


@dataclass
class Landmarks:
    points: np.ndarray  # (5, 2) continuous photo coordinates
    box: tuple[int, int, int, int]  # detected face (x, y, w, h) in photo pixels


_lock = threading.Lock()
_models: tuple | None = None


def _dlib_models():
    """HOG detector + 5-point predictor, loaded once (raises ImportError/IdentityUnavailable)."""
    global _models
    with _lock:
        if _models is None:
            import dlib

            predictor = dlib.shape_predictor(str(Path(_model_dir()) / "shape_predictor_5_face_landmarks.dat"))
            _models = (dlib, dlib.get_frontal_face_detector(), predictor)
    return _models


def available() -> bool:
    try:
        _dlib_models()
        return True
    except Exception:  # noqa: BLE001 - dlib missing or its model files absent: Haar fallback
        return False


def detect_landmarks(img: Image.Image, upscale: float | None = None) -> Landmarks | None:
    """The largest face's 5 landmarks in `img` (RGB), or None.

    The photo is resized so its longer side is about `DETECT_SIDE` (HOG finds faces from ~80 px,
    and a 4000-px phone photo would take seconds); `upscale` overrides that factor.
    """
    dlib, detector, predictor = _dlib_models()
    scale = upscale if upscale is not None else DETECT_SIDE / max(img.size)
    work = img if scale == 1 else img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                            Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.BOX)
    arr = np.asarray(work.convert("RGB"))
    with _lock:
        boxes = detector(arr, 0)
        if len(boxes) == 0:
            boxes = detector(arr, 1)  # one pyramid level up: small faces
        if len(boxes) == 0:
            return None
        box = max(boxes, key=lambda r: r.area())
        shape = predictor(arr, box)
    sx, sy = work.width / img.width, work.height / img.height
    pts = np.array([[(p.x + 0.5) / sx, (p.y + 0.5) / sy] for p in shape.parts()], dtype=np.float64)
    face = (round(box.left() / sx), round(box.top() / sy), round(box.width() / sx), round(box.height() / sy))
    return Landmarks(points=pts, box=face)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (no reflection) mapping points `src` onto `dst`; 2×3 matrix."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    # complex form: dst ≈ a·src + t with a = scale·e^{iθ}
    sc, dc = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    a = (np.conj(sc) * dc).sum() / max((np.abs(sc) ** 2).sum(), 1e-12)
    m = np.array([[a.real, -a.imag], [a.imag, a.real]])
    return np.hstack([m, (mu_d - m @ mu_s)[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, (-a @ m[:, 2])[:, None]])


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    return pts @ m[:, :2].T + m[:, 2]


def _index_matrix(m: np.ndarray) -> np.ndarray:
    """Continuous-coordinate affine -> the pixel-index form OpenCV's warpAffine uses."""
    out = m.copy()
    out[:, 2] = m[:, 2] + m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return out


def warp(img: Image.Image, transform: np.ndarray, size: int = CROP, soften: bool = True, with_inside: bool = False
         ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Photo -> (size, size, 3) uint8 in the template frame; outside the photo: reflection.

    `transform` maps photo coordinates to the 64-px frame; `soften` blurs and fades the
    reflected part (`_soften_padding`). Warping at `SUPERSAMPLE`× then one
    antialiased downscale avoids the aliasing a direct bilinear warp of a large photo would give.
    `with_inside` also returns the (size, size) float share of each pixel that lies inside the photo.
    """
    import cv2

    big = size * SUPERSAMPLE
    m = np.diag([big / CROP, big / CROP]) @ transform
    arr = np.asarray(img.convert("RGB"))
    shrink = min(1.0, abs(np.linalg.det(m[:, :2])) ** 0.5)
    if shrink < 0.9:  # the photo is finer than the warp: shrink it (antialiased) first
        small = img.convert("RGB").resize((max(1, round(img.width * shrink)), max(1, round(img.height * shrink))),
                                          Image.Resampling.BOX)
        sx, sy = small.width / img.width, small.height / img.height
        m = m @ np.array([[1 / sx, 0, 0], [0, 1 / sy, 0], [0, 0, 1]])
        arr = np.asarray(small)
    m = _index_matrix(m)
    out = cv2.warpAffine(arr, m, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    inside = cv2.warpAffine(np.full(arr.shape[:2], 255, np.uint8), m, (big, big), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if soften and not inside.all():
        out = _soften_padding(out, inside)
    face = np.asarray(Image.fromarray(out).resize((size, size), Image.Resampling.BILINEAR))
    if not with_inside:
        return face
    return face, inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean((1, 3)) / 255.0


def _soften_padding(out: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Blur the reflected border and fade it to the picture's median colour with the distance.

    A mirrored copy of a tight crop would otherwise show ghost faces around the face (the FFHQ
    alignment script does the same). Pixels inside the photo are kept as they are.
    """
    import cv2

    big = out.shape[0]
    dist = cv2.distanceTransform((inside == 0).astype(np.uint8), cv2.DIST_L2, 3)
    blur_w = np.clip(dist / (0.03 * big), 0, 1)[..., None]
    fade_w = np.clip(dist / (0.15 * big), 0, 1)[..., None]  # flat beyond ~10 px of the 64-px crop
    img = out.astype(np.float32)
    blurred = cv2.GaussianBlur(img, (0, 0), 0.05 * big)
    img += (blurred - img) * blur_w
    median = np.median(out[inside > 0].reshape(-1, 3), axis=0) if (inside > 0).any() else img.reshape(-1, 3).mean(0)
    img += (median - img) * fade_w
    return img.round().clip(0, 255).astype(np.uint8)


# The pasted region in the 64-px frame: an ellipse over the face (brows to chin, cheek to
# cheek: eyes at y ≈ 33.5, nose base at 44 in TEMPLATE_64), feathered, so the photo's own
# hair and background keep their full resolution (the result is only 64 px).
PASTE_CENTRE = (32.0, 42.0)
PASTE_RADII = (16.0, 19.0)


PASTE_EDGE = 3.0  # px of the 64-px frame over which the mask also fades out at the frame's border


def paste_mask(size: int, feather: float = 0.25) -> np.ndarray:
    """(size, size) float mask in [0, 1]: 1 inside the face ellipse, fading over `feather` of it.

    The feathered ellipse reaches past the frame's bottom edge (below the chin), so the mask also
    fades to 0 within `PASTE_EDGE` px of the border: no straight seam where the frame ends.
    """
    k = size / CROP
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / k
    r = np.sqrt(((xx - PASTE_CENTRE[0]) / PASTE_RADII[0]) ** 2 + ((yy - PASTE_CENTRE[1]) / PASTE_RADII[1]) ** 2)
    border = np.minimum(np.minimum(xx, CROP - xx), np.minimum(yy, CROP - yy))
    return np.clip((1 + feather - r) / feather, 0, 1) * np.clip(border / PASTE_EDGE, 0, 1)


class Paster:
    """Composites 64-px faces (template frame) into one photo: the warp and the mask are worked out
    once, so each further face costs an upscale, a warp of the face region and a blend (a GIF of
    ~36 frames pastes in milliseconds per frame).

    The face is upscaled ×SUPERSAMPLE, mapped with the inverse transform and blended through the
    feathered `paste_mask`, so no seam shows; only the photo's pixels under the mask change.
    """

    def __init__(self, photo: Image.Image | np.ndarray, transform: np.ndarray) -> None:
        import cv2

        self.photo = np.asarray(photo.convert("RGB") if isinstance(photo, Image.Image) else photo, np.uint8)
        h, w = self.photo.shape[:2]
        big = CROP * SUPERSAMPLE
        m = _index_matrix(invert_affine(np.diag([big / CROP, big / CROP]) @ np.asarray(transform, np.float64)))
        # the photo pixels the mask can reach (the feathered ellipse reaches 1.25 radii): its box, mapped
        reach = 1.3 * np.array(PASTE_RADII) * np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) + PASTE_CENTRE
        corners = apply_affine(m, reach * (big / CROP) - 0.5)
        x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 2, 0, [w, h])
        x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 3, 0, [w, h])
        self.box = (int(x0), int(y0), int(x1), int(y1))
        self._m = m - np.array([[0, 0, x0], [0, 0, y0]])  # 256-px frame -> the box
        self._size = (int(x1 - x0), int(y1 - y0))
        if self._size[0] > 0 and self._size[1] > 0:
            mask = (paste_mask(big) * 255).astype(np.uint8)
            alpha = cv2.warpAffine(mask, self._m, self._size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            self._alpha = (alpha.astype(np.float32) / 255)[..., None]
            self._base = self.photo[y0:y1, x0:x1].astype(np.float32) * (1 - self._alpha)

    def __call__(self, face: np.ndarray) -> Image.Image:
        """The photo with `face` ((64, 64, 3) uint8, or a (3, 64, 64) uint8 tensor) pasted in."""
        import cv2

        face = np.asarray(face.permute(1, 2, 0) if hasattr(face, "permute") else face, np.uint8)
        out = self.photo.copy()
        if self._size[0] > 0 and self._size[1] > 0:
            big = CROP * SUPERSAMPLE
            up = np.asarray(Image.fromarray(face).resize((big, big), Image.Resampling.BICUBIC))
            warped = cv2.warpAffine(up, self._m, self._size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            x0, y0, x1, y1 = self.box
            out[y0:y1, x0:x1] = (self._base + warped.astype(np.float32) * self._alpha).round().clip(0, 255)
        return Image.fromarray(out)


def paste_back(photo: Image.Image, face: np.ndarray, transform: np.ndarray) -> Image.Image:
    """Composite one 64-px face (H, W, 3 uint8, template frame) into `photo` where it came from."""
    return Paster(photo, transform)(face)


PLACEMENT_SIDE = 512  # a face's photo is kept (and its pasted GIFs are written) at most this long


@dataclass
class PhotoPlacement:
    """Where a photo's face sits in it, kept with the face so edits and GIFs can be pasted back.

    `photo` is the picture brought to a longest side of at most `PLACEMENT_SIDE` (0.8 MB at most),
    `transform` maps its coordinates onto the 64-px template frame.
    """

    photo: np.ndarray  # (H, W, 3) uint8
    transform: np.ndarray  # 2×3

    @classmethod
    def of(cls, photo: Image.Image, transform: np.ndarray, side: int = PLACEMENT_SIDE) -> "PhotoPlacement":
        """From the full photo and its transform: shrunk (never enlarged) to `side`, transform to match."""
        scale = min(1.0, side / max(photo.size))
        img = photo.convert("RGB")
        if scale < 1:
            img = img.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                             Image.Resampling.LANCZOS)
        sx, sy = img.width / photo.width, img.height / photo.height
        m = np.asarray(transform, np.float64) @ np.array([[1 / sx, 0, 0], [0, 1 / sy, 0], [0, 0, 1]])
        return cls(photo=np.array(img, np.uint8), transform=m)

    @property
    def size(self) -> tuple[int, int]:
        return self.photo.shape[1], self.photo.shape[0]

    @property
    def nbytes(self) -> int:
        return self.photo.nbytes + self.transform.nbytes

    def paste(self, faces: list) -> list[Image.Image]:
        """Every 64-px face (HWC uint8 arrays or CHW uint8 tensors) pasted into the photo, one warp for all."""
        paster = Paster(self.photo, self.transform)
        return [paster(face) for face in faces]


def align(img: Image.Image, landmarks: Landmarks | None = None) -> tuple[np.ndarray, np.ndarray, Landmarks] | None:
    """Photo -> (64-px aligned face uint8 HWC, transform photo->crop, landmarks), None without a face."""
    found = landmarks or detect_landmarks(img)
    if found is None:
        return None
    m = similarity(found.points, TEMPLATE_64)
    return warp(img, m), m, found


# ---------------------------------------------------------------------------------------------
# The face crop of a photo: landmarks first, then OpenCV's Haar cascade, then the centre

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
    inside: np.ndarray | None = field(default=None, repr=False)  # (64, 64) share of each pixel inside the photo

    @property
    def padded_share(self) -> float:
        """How much of the crop lies outside the photo (filled in by reflection): 0 to 1."""
        return 0.0 if self.inside is None else float(1.0 - self.inside.mean())

    def inside_weight(self) -> torch.Tensor | None:
        """(64, 64) share of each pixel inside the photo, as a loss weight; None when nothing was
        filled in (every pixel counts alike)."""
        if self.inside is None or self.padded_share == 0:
            return None
        return torch.from_numpy(self.inside)

    def padding_shown(self) -> torch.Tensor:
        """The crop as the window shows it: the filled-in part shaded with stripes, so the user sees
        what the photo did not have (3, 64, 64) uint8."""
        if self.inside is None or self.padded_share == 0:
            return self.image
        outside = torch.from_numpy(self.inside < 0.5)
        stripes = (torch.arange(CROP).view(-1, 1) + torch.arange(CROP).view(1, -1)) % 6 < 3
        shaded = (self.image.float() * 0.45 + 40 * stripes.float()).clamp(0, 255).to(torch.uint8)
        return torch.where(outside, shaded, self.image)

    def likeness_pair(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(this crop, `image`), both with the filled-in part left out: what a likeness compares."""
        return self.face_only(self.image), self.face_only(image)

    def face_only(self, image: torch.Tensor) -> torch.Tensor:
        """`image` (3, 64, 64) uint8 with this crop's filled-in part set to mid-grey, so a likeness
        reading compares faces, not a smeared border that the result copied."""
        if self.inside is None or self.padded_share == 0:
            return image
        return torch.where(torch.from_numpy(self.inside < 0.5), torch.full_like(image, 128), image)


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
    if detect and available():
        found = detect_landmarks(img)
        if found is not None:
            m = similarity(found.points, TEMPLATE_64)
            face, inside = warp(img, m, with_inside=True)
            return FaceCrop(image=_chw(face), box=_box_of(m), face=found.box, transform=m,
                            landmarks=found.points, method="landmarks", photo=img, inside=inside.astype(np.float32))
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
    image, inside = warp(img, m, with_inside=True)
    return FaceCrop(image=_chw(image), box=_box_of(m), face=face, notice=notice, transform=m,
                    method=method, photo=img, inside=inside.astype(np.float32))


def _chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).contiguous()


# ---------------------------------------------------------------------------------------------


def celeba_to_crop(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Continuous coordinates in an aligned CelebA image -> the 64-px `preprocess` crop."""
    scale = CROP / min(width, height)
    new_w, new_h = max(CROP, round(width * scale)), max(CROP, round(height * scale))
    left, top = round((new_w - CROP) / 2), round((new_h - CROP) / 2)
    return points * np.array([new_w / width, new_h / height]) - np.array([left, top])


def measure_template(image_dir: str | Path, ids: range = range(20, 8001, 20), upscale: float = 4.0
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Median and spread of the 5 landmarks over CelebA training images, in 64-px crop coordinates.

    Returns (median (5, 2), standard deviation (5, 2), faces found). Only training IDs belong here.
    """
    found = []
    for i in ids:
        path = Path(image_dir) / f"{i:06d}.jpg"
        if not path.exists():
            continue
        with Image.open(path) as im:
            img = im.convert("RGB")
        lm = detect_landmarks(img, upscale=upscale)
        if lm is not None:
            found.append(celeba_to_crop(lm.points, img.width, img.height))
    if not found:
        raise RuntimeError(f"no faces found in {image_dir}")
    pts = np.stack(found)
    return np.median(pts, 0), pts.std(0), len(found)


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/celeba") / "img_align_celeba"
    median, sd, n = measure_template(root)
    print(f"{n} faces; median landmarks in the 64-px crop (sd):")
    for (x, y), (sx, sy) in zip(median, sd):
        print(f"    [{x:.3f}, {y:.3f}],  # sd {sx:.2f}, {sy:.2f}")
