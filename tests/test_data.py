"""CelebA reading, the 64-px preprocessing, the decoded cache and safe image opening."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ATTRS, shared_data, write_celeba
from core.data import (
    CelebAError,
    ImageLoadError,
    load_celeba,
    open_image,
    preprocess,
    read_celeba,
    to_model_range,
    to_uint8,
)


def _odd_folder(root: Path) -> Path:
    """Fixture with CRLF lines, odd image sizes/modes, a missing image."""
    write_celeba(root, n=12, crlf=True)
    img_dir = root / "img_align_celeba"
    Image.new("L", (50, 70), 128).save(img_dir / "000002.jpg")  # grey
    Image.new("CMYK", (178, 218), (0, 255, 0, 0)).save(img_dir / "000003.jpg")  # CMYK, full res
    Image.new("RGBA", (120, 80), (255, 0, 0, 0)).save(img_dir / "000004.jpg", format="PNG")  # alpha, landscape
    Image.new("P", (64, 64)).save(img_dir / "000005.jpg", format="GIF")  # palette
    os.remove(img_dir / "000006.jpg")  # listed, missing
    return root


def test_reads_crlf_odd_modes_and_counts_missing(tmp_path):
    root = _odd_folder(tmp_path / "celeba")
    index = read_celeba(root)
    assert index.attribute_names == ATTRS
    assert len(index) == 11 and index.missing == 1 and index.missing_examples == ["000006.jpg"]
    assert "000006.jpg" not in index.filenames
    assert index.attributes.shape == (11, len(ATTRS)) and set(np.unique(index.attributes)) <= {0, 1}
    ds = load_celeba(root, cache_dir=tmp_path / "cache")
    assert ds.images.shape == (11, 3, 64, 64) and ds.images.dtype == torch.uint8
    grey = ds.images[ds.filenames.index("000002.jpg")]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # grey -> equal channels
    alpha = ds.images[ds.filenames.index("000004.jpg")]
    assert alpha.float().mean() > 250  # transparent -> composited on white, not black


def test_attribute_values_match_file(tmp_path):
    root = write_celeba(tmp_path / "celeba", n=10)
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    index = read_celeba(root)
    for row, line in zip(index.attributes, lines[2:]):
        assert [1 if v == "1" else 0 for v in line.split()[1:]] == row.tolist()


@pytest.mark.parametrize("bad, line_no", [
    ("000003.jpg 1 -1 1\n", 5),  # too few fields
    ("000003.jpg 1 -1 1 x\n", 5),  # not a number
    ("000003.jpg 1 -1 1 7\n", 5),  # out of range
])
def test_malformed_attribute_line_names_file_and_line(tmp_path, bad, line_no):
    root = write_celeba(tmp_path / "celeba", n=5)
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[line_no - 1] = bad
    path.write_text("".join(lines))
    with pytest.raises(CelebAError, match=rf"list_attr_celeba\.txt:{line_no}:"):
        read_celeba(root)


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(CelebAError, match="img_align_celeba"):
        read_celeba(tmp_path)
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(CelebAError, match="list_attr_celeba.txt: file not found"):
        read_celeba(tmp_path)


def test_holdout_is_last_images_or_official_partition(tmp_path):
    root = write_celeba(tmp_path / "celeba", n=30)
    index = read_celeba(root)
    mask = index.holdout_mask(holdout_count=5)
    assert mask.sum() == 5 and mask[-5:].all()
    # the official partition file marks val/test: those are held out instead
    part = "".join(f"{i:06d}.jpg {2 if i in (3, 7) else 0}\n" for i in range(1, 31))
    (root / "list_eval_partition.txt").write_text(part)
    mask = read_celeba(root).holdout_mask()
    assert np.flatnonzero(mask).tolist() == [2, 6]


def test_preprocess_short_side_centre_crop_and_range():
    # a 89x109 image whose top and bottom 8 rows are red: centre crop must cut them away
    arr = np.zeros((109, 89, 3), np.uint8)
    arr[:, :] = (0, 0, 255)
    arr[:8] = arr[-8:] = (255, 0, 0)
    x = preprocess(Image.fromarray(arr))
    assert x.shape == (3, 64, 64) and x.dtype == torch.uint8
    assert x[0].max() < 30 and x[2].min() > 220  # no red left after short-side resize + centre crop
    y = to_model_range(x)
    assert y.min() >= -1 and y.max() <= 1 and torch.equal(to_uint8(y), x)
    # the half-resolution and full-resolution aligned crops frame the same face
    big = Image.fromarray(arr).resize((178, 218), Image.Resampling.NEAREST)
    assert (preprocess(big).float() - x.float()).abs().mean() < 3


def test_to_uint8_handles_nan():
    out = to_uint8(torch.tensor([float("nan"), -5.0, 5.0, 0.0]))
    assert out.tolist() == [128, 0, 255, 128]


def test_decoded_cache_is_reused_and_invalidated(tmp_path):
    root = write_celeba(tmp_path / "celeba", n=10)
    cache = tmp_path / "cache"
    first = load_celeba(root, cache_dir=cache)
    assert first.cache_path.exists()
    mtime = first.cache_path.stat().st_mtime_ns
    second = load_celeba(root, cache_dir=cache)
    assert second.cache_path == first.cache_path and second.cache_path.stat().st_mtime_ns == mtime
    assert torch.equal(first.images, second.images)
    # an edited image gives a new cache key and new pixels
    img = root / "img_align_celeba" / "000001.jpg"
    Image.new("RGB", (89, 109), (0, 255, 0)).save(img)
    third = load_celeba(root, cache_dir=cache)
    assert third.cache_path != first.cache_path
    assert third.images[0, 1].float().mean() > 200
    assert not first.cache_path.exists() and len(list(cache.iterdir())) == 1  # the stale one went
    # a damaged cache file is rebuilt, not trusted
    third.cache_path.write_bytes(b"garbage")
    fourth = load_celeba(root, cache_dir=cache)
    assert torch.equal(fourth.images, third.images)


def test_decoded_cache_is_keyed_by_content_not_file_times(tmp_path):
    """A folder copied again (new mtimes, same bytes) keeps its cache; another folder and another
    size get their own, and writing one never removes the other folder's."""
    root = write_celeba(tmp_path / "celeba", n=8)
    cache = tmp_path / "cache"
    first = load_celeba(root, cache_dir=cache)
    written = first.cache_path.stat().st_mtime_ns
    for f in (root / "img_align_celeba").iterdir():
        os.utime(f, ns=(10**18, 10**18))
    again = load_celeba(root, cache_dir=cache)
    assert again.cache_path == first.cache_path and first.cache_path.stat().st_mtime_ns == written
    copy = shutil.copytree(root, tmp_path / "copy")
    other = load_celeba(copy, cache_dir=cache)
    small = load_celeba(root, size=32, cache_dir=cache)
    assert len({first.cache_path, other.cache_path, small.cache_path}) == 3
    assert all(p.exists() for p in (first.cache_path, other.cache_path, small.cache_path))
    assert torch.equal(other.images, first.images)


def test_unreadable_dataset_image_names_the_file(tmp_path):
    root = write_celeba(tmp_path / "celeba", n=6)
    (root / "img_align_celeba" / "000004.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CelebAError, match="000004.jpg"):
        load_celeba(root, cache_dir=tmp_path / "cache")
    # a folder (or pipe) in a file's place is named too: the cache key never reads it
    (root / "img_align_celeba" / "000004.jpg").unlink()
    (root / "img_align_celeba" / "000004.jpg").mkdir()
    with pytest.raises(CelebAError, match="000004.jpg"):
        load_celeba(root, cache_dir=tmp_path / "cache")


# --- open_image: every odd input becomes RGB or a one-sentence error ----------------------------


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_open_image_modes_become_rgb():
    for img, fmt in [(Image.new("L", (30, 40), 7), "PNG"), (Image.new("CMYK", (30, 40)), "JPEG"),
                     (Image.new("LA", (30, 40)), "PNG"), (Image.new("I;16", (30, 40), 300), "PNG"),
                     (Image.new("P", (30, 40)), "GIF"), (Image.new("1", (30, 40)), "PNG")]:
        out = open_image(_bytes(img, fmt))
        assert out.mode == "RGB" and out.size == (30, 40), img.mode


def test_open_image_applies_exif_rotation():
    img = Image.new("RGB", (60, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = open_image(_bytes(img, "JPEG", exif=exif))
    assert out.size == (20, 60)


def test_open_image_downscales_huge(tmp_path):
    out = open_image(_bytes(Image.new("RGB", (5000, 3000)), "PNG"), max_side=1024)
    assert max(out.size) == 1024 and out.size[0] > out.size[1]


def test_open_image_refuses_bad_inputs(tmp_path):
    good = _bytes(Image.new("RGB", (200, 200), (9, 9, 9)), "JPEG")
    with pytest.raises(ImageLoadError, match="damaged or truncated"):
        open_image(good[: len(good) // 2])
    with pytest.raises(ImageLoadError, match="not an image"):
        open_image(b"hello, not a picture")
    with pytest.raises(ImageLoadError, match="folder"):
        open_image(tmp_path)
    with pytest.raises(ImageLoadError, match="does not exist"):
        open_image(tmp_path / "nope.png")
    # a tiny file that claims to be enormous: refused before decoding
    bomb = _bytes(Image.new("1", (12000, 12000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(ImageLoadError, match="too large"):
        open_image(bomb)


def test_real_celeba_subset_when_present(tmp_path):
    root = shared_data("celeba")
    index = read_celeba(root)
    assert len(index.attribute_names) == 40 and "Smiling" in index.attribute_names
    mask = index.holdout_mask()
    held = [f for f, m in zip(index.filenames, mask) if m]
    if len(index) == 9000:
        assert held[0] == "008001.jpg" and held[-1] == "009000.jpg" and len(held) == 1000
    x = preprocess(open_image(root / "img_align_celeba" / index.filenames[0]))
    assert x.shape == (3, 64, 64) and 20 < x.float().mean() < 235
