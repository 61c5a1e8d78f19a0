"""Unaligned face crops as training data: aligned by landmarks on decode, faces without landmarks
counted and skipped, padded borders counted, held out by the same rule, joined with CelebA."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from conftest import shared_data, write_celeba
from core import align
from core.data import CelebAError, load_celeba, load_datasets


def crops_folder(root, n=30, seed=1):
    """A folder in the crops layout (img/ + list files), made from a written CelebA folder."""
    write_celeba(root, n=n, size=(128, 150), seed=seed)
    (root / "img_align_celeba").rename(root / "img")
    (root / "list_eval_partition.txt").unlink()  # the crops folder has no partition file
    return root


@pytest.fixture
def fake_landmarks(monkeypatch):
    """Landmarks where the template puts them in a centred 64-px crop of the picture; none for
    pictures whose file number is a multiple of 7 (a face the detector misses)."""
    calls = []

    def detect(img, upscale=None):
        calls.append(upscale)
        if img.info.get("skip"):
            return None
        scale = min(img.size) / 64
        offset = np.array([(img.width - min(img.size)) / 2, (img.height - min(img.size)) / 2])
        return align.Landmarks(points=align.TEMPLATE_64 * scale + offset, box=(0, 0, *img.size))

    import core.data as data

    real_open = data.open_image

    def open_marked(path, *a, **k):
        img = real_open(path, *a, **k)
        if int(path.stem) % 7 == 0:
            img.info["skip"] = True
        return img

    monkeypatch.setattr(align, "detect_landmarks", detect)
    monkeypatch.setattr(data, "open_image", open_marked)
    return calls


def test_crops_are_aligned_skipped_counted_and_held_out_by_the_same_rule(tmp_path, fake_landmarks):
    root = crops_folder(tmp_path / "crops", n=30)
    ds = load_celeba(root, cache_dir=tmp_path / "cache", workers=1)
    skipped = [i for i in range(1, 31) if i % 7 == 0]
    assert ds.unaligned == len(skipped) and len(ds.images) == 30 - len(skipped)
    assert ds.images.shape[1:] == (3, 64, 64) and ds.images.dtype == torch.uint8
    assert not any(f"{i:06d}.jpg" in ds.filenames for i in skipped)
    assert len(ds.attributes) == len(ds.holdout) == len(ds.padded) == len(ds.images)
    # the last fifth by ID is held out, whether or not its faces were found: 25..30 minus 28
    assert [f for f, h in zip(ds.filenames, ds.holdout.tolist()) if h] == [f"{i:06d}.jpg" for i in (25, 26, 27, 29, 30)]
    # the picture fills the centred crop: little or nothing of it is reflected padding
    assert int(ds.padded.max()) <= 5
    calls = len(fake_landmarks)
    again = load_celeba(root, cache_dir=tmp_path / "cache", workers=1)  # from the cache: no detection
    assert len(fake_landmarks) == calls and torch.equal(again.images, ds.images) and again.unaligned == ds.unaligned


def test_several_folders_join_with_their_own_held_out_parts(tmp_path, fake_landmarks):
    celeba = write_celeba(tmp_path / "celeba", n=20)
    crops = crops_folder(tmp_path / "crops", n=14)
    joined = load_datasets([celeba, crops], cache_dir=tmp_path / "cache", workers=1)
    assert len(joined.images) == 20 + 12 and joined.unaligned == 2
    assert int(joined.holdout.sum()) == 4 + 1  # a fifth of each: 4 of 20, and of 14 IDs 13-14 less the missed 14
    other = tmp_path / "other"
    shutil.copytree(crops, other)
    text = (other / "list_attr_celeba.txt").read_text().splitlines()
    text[1] = text[1].replace("Smiling", "Grinning")
    (other / "list_attr_celeba.txt").write_text("\n".join(text) + "\n")
    with pytest.raises(CelebAError, match="attribute names differ"):
        load_datasets([celeba, other], cache_dir=tmp_path / "cache", workers=1)


def test_a_crops_folder_without_any_face_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(align, "detect_landmarks", lambda img, upscale=None: None)
    with pytest.raises(CelebAError, match="no face found"):
        load_celeba(crops_folder(tmp_path / "crops", n=5), cache_dir=tmp_path / "cache", workers=1)


def test_real_crops_land_in_celeba_framing():
    crops = shared_data("celeba_test_crops")  # skips without ../shared
    if not align.available():
        pytest.skip("dlib is not installed")
    from core.data import _align_one

    paths = sorted((crops / "img").glob("*.jpg"))[:12]
    results = [_align_one(p, 64) for p in paths]
    assert sum(r is not None for r in results) >= 10
    eyes = []
    for face, _ in filter(None, results):
        lm = align.detect_landmarks(__import__("PIL.Image", fromlist=["Image"]).fromarray(
            face.permute(1, 2, 0).numpy()), upscale=4.0)
        if lm is not None:
            eyes.append(lm.points)
    assert len(eyes) >= 8
    assert np.abs(np.median(np.stack(eyes), 0) - align.TEMPLATE_64).max() < 1.5  # px in the 64-px crop
