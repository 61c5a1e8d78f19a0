"""Landmark alignment: the similarity fit, the warp onto the template frame, reflection padding,
mapping a result back into the photo, and (with ../shared) dlib on real CelebA faces."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from core import align
from core.align import (CROP, TEMPLATE_64, Landmarks, apply_affine, invert_affine, paste_back, paste_mask, similarity,
                        warp)
from core.align import crop_face


def _similarity_matrix(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    r = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.hstack([r, [[tx], [ty]]])


def _template_face(size: int = 256, seed: int = 0) -> np.ndarray:
    """A test-made 'face' in the template frame: smooth texture plus dark blobs on the 5 landmarks."""
    rng = np.random.default_rng(seed)
    k = size / CROP
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    img = np.stack([120 + 60 * np.sin(xx / 9 + c) * np.cos(yy / 13 - c) for c in range(3)], -1)
    img += rng.normal(0, 3, img.shape)
    for x, y in TEMPLATE_64 * k:
        img[(xx - x) ** 2 + (yy - y) ** 2 < (1.5 * k) ** 2] = 20
    return img.clip(0, 255).astype(np.uint8)


def _psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) / 255).__pow__(2).mean()
    return 10 * math.log10(1 / max(mse, 1e-12))


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    m = _similarity_matrix(17, 0.4, 12.0, -3.0)
    fit = similarity(src, apply_affine(m, src))
    assert np.allclose(fit, m, atol=1e-9)
    # and the inverse maps back
    assert np.allclose(apply_affine(invert_affine(fit), apply_affine(fit, src)), src, atol=1e-9)


def test_alignment_undoes_a_known_similarity_transform():
    """Place the test-made face into a 'photo' rotated, scaled and shifted; aligning with the moved
    landmarks must give back the template-frame face."""
    face = _template_face()  # 256 px in the template frame
    k = face.shape[0] / CROP
    photo_from_frame = _similarity_matrix(-23, 1.7, 140.0, 60.0)  # 256-px frame -> photo
    import cv2

    m_idx = photo_from_frame.copy()
    m_idx[:, 2] += m_idx[:, :2] @ [0.5, 0.5] - 0.5
    photo = cv2.warpAffine(face, m_idx, (600, 560), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    landmarks = apply_affine(photo_from_frame, TEMPLATE_64 * k)
    out, transform, _ = align.align(Image.fromarray(photo), Landmarks(points=landmarks, box=(0, 0, 1, 1)))
    expected = np.asarray(Image.fromarray(face).resize((CROP, CROP), Image.Resampling.BILINEAR))
    assert out.shape == (CROP, CROP, 3)
    assert _psnr_uint8(out[4:-4, 4:-4], expected[4:-4, 4:-4]) > 28
    # the transform maps the photo's landmarks onto the template
    assert np.allclose(apply_affine(transform, landmarks), TEMPLATE_64, atol=1e-6)


def test_padding_reflects_never_stretches_edges():
    """A crop reaching past the photo's border: the outside mirrors the inside (no edge smear),
    and the softened version fades the far padding towards the photo's median colour."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
    photo = np.asarray(Image.fromarray(photo).resize((160, 160), Image.Resampling.BILINEAR))  # some texture
    m = np.array([[CROP / 320, 0, 80 * CROP / 320], [0, CROP / 320, 80 * CROP / 320]])  # photo is the middle half
    raw = warp(Image.fromarray(photo), m, soften=False)
    soft = warp(Image.fromarray(photo), m)
    inside = slice(17, 47)
    # stretched edges would make every padded row equal along the border normal: reflection keeps texture
    left_pad = raw[inside, :14].astype(np.float64)
    assert left_pad.std(axis=1).mean() > 5
    # mirror: the column k pixels left of the border equals the one k pixels right of it
    mirrored = np.asarray(Image.fromarray(np.pad(photo, ((80, 80), (80, 80), (0, 0)), mode="reflect"))
                          .resize((CROP, CROP), Image.Resampling.BILINEAR))
    assert _psnr_uint8(raw, mirrored) > 30
    # softening leaves the photo itself alone and pulls the far corners to the median colour
    assert _psnr_uint8(soft[inside, inside], raw[inside, inside]) > 40
    median = np.median(photo.reshape(-1, 3), 0)
    assert np.abs(soft[:3, :3] - median).mean() < np.abs(raw[:3, :3].astype(np.float64) - median).mean()


def test_paste_back_puts_the_crop_back_where_it_came_from():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    photo = Image.fromarray(base).resize((500, 400), Image.Resampling.BICUBIC)
    m = invert_affine(_similarity_matrix(10, 4.0, 150, 60))  # the face: 256 px, tilted, at (150, 60)
    crop = warp(photo, m)
    pasted = np.asarray(paste_back(photo, crop, m))
    assert pasted.shape == np.asarray(photo).shape
    # inside the face ellipse the round trip is close (only resampling), far outside it is untouched
    mask = np.asarray(Image.fromarray((paste_mask(CROP) * 255).astype(np.uint8)))
    centre = apply_affine(invert_affine(m), np.array([align.PASTE_CENTRE]))[0].round().astype(int)
    patch = (slice(centre[1] - 20, centre[1] + 20), slice(centre[0] - 20, centre[0] + 20))
    assert mask.max() == 255
    assert _psnr_uint8(pasted[patch], np.asarray(photo)[patch]) > 24
    assert np.array_equal(pasted[:20, -20:], np.asarray(photo)[:20, -20:])
    # a different face pasted in changes the photo only around the face
    changed = np.asarray(paste_back(photo, np.zeros_like(crop), m))
    assert changed[patch].mean() < 5 and np.array_equal(changed[:20, -20:], np.asarray(photo)[:20, -20:])


def test_fallback_crops_carry_their_transform(monkeypatch):
    monkeypatch.setattr(align, "detect_landmarks", lambda img: None)
    monkeypatch.setattr(align, "detect_face", lambda img: (100, 80, 60, 60))
    crop = crop_face(Image.new("RGB", (300, 400), (90, 100, 110)))
    assert crop.method == "haar" and crop.image.shape == (3, 64, 64) and crop.image.dtype == torch.uint8
    corners = apply_affine(invert_affine(crop.transform), np.array([[0, 0], [CROP, CROP]]))
    assert np.allclose(corners.ravel(), crop.box, atol=1)
    monkeypatch.setattr(align, "detect_face", lambda img: None)
    crop = crop_face(Image.new("RGB", (300, 200), (90, 100, 110)))
    assert crop.method == "centre" and crop.box == (50, 0, 250, 200) and crop.notice


def test_template_sits_where_celeba_puts_faces():
    """Sanity of the measured constants: eyes level and mirror-symmetric about the centre, nose below."""
    (r_out, r_in, l_out, l_in, nose) = TEMPLATE_64
    assert abs(r_out[1] - l_out[1]) < 1 and abs((r_out[0] + l_out[0]) / 2 - CROP / 2) < 1.5
    assert nose[1] - r_out[1] > 7 and abs(nose[0] - CROP / 2) < 1.5


@pytest.mark.skipif(not align.available(), reason="dlib or face-recognition-models is not installed")
def test_dlib_alignment_on_real_celeba_faces_recovers_rotation():
    """A held-out CelebA face, rotated by a known angle and upscaled: the fitted transform undoes it
    and the aligned crop matches CelebA's own 64-px crop."""
    from conftest import shared_data
    from core.data import preprocess

    root = shared_data("celeba") / "img_align_celeba"
    angles, matches = [], []
    for i, angle in zip((8011, 8123, 8457), (12.0, -20.0, 7.0)):
        img = Image.open(root / f"{i:06d}.jpg").convert("RGB")
        big = img.resize((img.width * 4, img.height * 4), Image.Resampling.BICUBIC)
        rotated = big.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
        crop = crop_face(rotated)
        assert crop.method == "landmarks"
        a = crop.transform[:, :2]
        angles.append(math.degrees(math.atan2(a[1, 0], a[0, 0])) - angle)  # PIL rotates counter-clockwise
        plain = crop_face(big)
        matches.append(_psnr_uint8(plain.image.permute(1, 2, 0).numpy(), preprocess(img).permute(1, 2, 0).numpy()))
    assert np.abs(angles).max() < 4, angles
    assert np.mean(matches) > 18, matches


@pytest.mark.skipif(not align.available(), reason="dlib or face-recognition-models is not installed")
def test_template_remeasured_on_training_images_agrees():
    """`measure_template` on 40 training images lands within a pixel of the stored constants."""
    from conftest import shared_data

    root = shared_data("celeba") / "img_align_celeba"
    median, sd, found = align.measure_template(root, ids=range(100, 8001, 200))
    assert found >= 35
    assert np.abs(median - TEMPLATE_64).max() < 1.0, median
