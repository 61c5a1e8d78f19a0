"""Export: GIFs read back by Pillow exactly as asked for, PNG stills and grids, atomic writes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.export import GifOptions, gif_durations, save_gif, save_png, save_png_grid, to_pil_images


def _frames(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """n distinct uint8 frames with structure (a moving bright square on a gradient)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(0, 200, size).to(torch.uint8).expand(3, size, size).clone()
    out = []
    for i in range(n):
        f = base.clone()
        x = (i * 5) % (size - 12)
        f[:, 6:18, x : x + 12] = torch.randint(0, 256, (3, 1, 1), generator=g).to(torch.uint8)
        out.append(f)
    return torch.stack(out)


def _read_gif(path: Path) -> tuple[list[np.ndarray], list[int], dict]:
    with Image.open(path) as im:
        info = dict(im.info)
        frames, durations = [], []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
    return frames, durations, info


def test_gif_round_trip_frames_size_durations_loop(tmp_path: Path) -> None:
    frames = _frames(7)
    path = save_gif(frames, tmp_path / "out" / "walk.gif", GifOptions(size=128, fps=10, loop=0))
    assert path == tmp_path / "out" / "walk.gif"
    read, durations, info = _read_gif(path)
    assert len(read) == 7
    assert read[0].shape == (128, 128, 3)
    assert durations == [100] * 7
    assert info["loop"] == 0  # forever
    # Nearest-neighbour 2x upscale of frame 3, colour-quantised: close to the source.
    src = frames[3].permute(1, 2, 0).numpy().repeat(2, 0).repeat(2, 1).astype(int)
    assert np.abs(read[3].astype(int) - src).mean() < 4


def test_gif_durations_are_exact_in_centiseconds(tmp_path: Path) -> None:
    # 12 fps: 1000/12 ms cannot be stored; delays alternate so 12 frames last exactly 1 s.
    d = gif_durations(24, 12)
    assert all(x % 10 == 0 and x in (80, 90) for x in d)
    assert sum(d[:12]) == 1000 and sum(d) == 2000
    assert all(abs(sum(d[:i]) - i * 1000 / 12) <= 5 for i in range(25))
    assert gif_durations(3, 25) == [40, 40, 40]
    assert gif_durations(4, 60) == [20] * 4  # browsers slow 0-1 cs delays, so 2 cs is the floor
    _, durations, _ = _read_gif(save_gif(_frames(24), tmp_path / "a.gif", GifOptions(size=64, fps=12)))
    assert durations == d


@pytest.mark.parametrize("loop, stored", [(0, 0), (3, 2)])
def test_gif_loop_count(tmp_path: Path, loop: int, stored: int) -> None:
    _, _, info = _read_gif(save_gif(_frames(3), tmp_path / "a.gif", GifOptions(size=64, loop=loop)))
    assert info["loop"] == stored  # GIF stores repeats: play count - 1


def test_gif_single_play_has_no_loop_block(tmp_path: Path) -> None:
    _, _, info = _read_gif(save_gif(_frames(3), tmp_path / "a.gif", GifOptions(size=64, loop=1)))
    assert "loop" not in info


def test_gif_pingpong_frame_count_and_order(tmp_path: Path) -> None:
    frames = _frames(5)
    read, _, _ = _read_gif(save_gif(frames, tmp_path / "p.gif", GifOptions(size=64, pingpong=True)))
    assert len(read) == 5 + 3  # 0 1 2 3 4 3 2 1: the ends are not repeated
    for i, j in zip(range(5, 8), (3, 2, 1)):
        assert np.array_equal(read[i], read[j])
    assert not np.array_equal(read[4], read[3])


def test_gif_keeps_identical_consecutive_frames(tmp_path: Path) -> None:
    a, b = _frames(2)
    frames = torch.stack([a, a, a, b, b, a])
    read, durations, _ = _read_gif(save_gif(frames, tmp_path / "same.gif", GifOptions(size=64, fps=10)))
    assert len(read) == 6
    assert durations == [100] * 6
    for i, j in [(0, 1), (1, 2), (3, 4), (0, 5)]:
        assert np.array_equal(read[i], read[j])
    assert not np.array_equal(read[2], read[3])
    # A still "animation" of one repeated picture keeps its length too.
    read, _, _ = _read_gif(save_gif(torch.stack([a] * 4), tmp_path / "still.gif", GifOptions(size=64)))
    assert len(read) == 4


def test_gif_accepts_float_and_pil_frames(tmp_path: Path) -> None:
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    read_f, _, _ = _read_gif(save_gif(x, tmp_path / "f.gif", GifOptions(size=64)))
    pil = to_pil_images(x)
    read_p, _, _ = _read_gif(save_gif(pil, tmp_path / "p.gif", GifOptions(size=64)))
    assert len(read_f) == len(read_p) == 3
    for f, p in zip(read_f, read_p):
        assert np.array_equal(f, p)
    assert np.array_equal(np.asarray(pil[0]), ((x[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())


def test_captions_change_pixels_and_add_a_strip(tmp_path: Path) -> None:
    frames = _frames(3)
    plain, _, _ = _read_gif(save_gif(frames, tmp_path / "a.gif", GifOptions(size=128)))
    captions = ["Smiling 0.12 → 0.91", "Smiling 0.50 → 0.91", "Smiling 0.91 → 0.91"]
    cap, _, _ = _read_gif(save_gif(frames, tmp_path / "b.gif", GifOptions(size=128, captions=captions)))
    assert len(cap) == 3
    assert cap[0].shape[1] == 128 and cap[0].shape[0] > 128
    assert all(c.shape == cap[0].shape for c in cap)
    # The picture itself is unchanged (up to the palette, which now also holds the text colours).
    assert np.abs(cap[0][:128].astype(int) - plain[0].astype(int)).mean() < 3
    strip = cap[0][128:]
    assert strip.std() > 10  # there is text in the strip, not a flat bar
    assert not np.array_equal(cap[0][128:], cap[1][128:])  # each frame shows its own caption
    with pytest.raises(ValueError, match="2 captions for 3 frames"):
        save_gif(frames, tmp_path / "c.gif", GifOptions(size=64, captions=captions[:2]))


def test_nearest_and_smooth_upscaling_differ(tmp_path: Path) -> None:
    frames = _frames(2)
    crisp, _, _ = _read_gif(save_gif(frames, tmp_path / "n.gif", GifOptions(size=256, smooth=False)))
    soft, _, _ = _read_gif(save_gif(frames, tmp_path / "s.gif", GifOptions(size=256, smooth=True)))
    assert not np.array_equal(crisp[0], soft[0])
    # Nearest keeps 4x4 blocks of one colour; LANCZOS does not.
    block = crisp[0][8:12, 120:124].reshape(-1, 3)
    assert (block == block[0]).all()
    assert len(np.unique(soft[0][:, :, 0])) > len(np.unique(crisp[0][:, :, 0]))


def test_png_still(tmp_path: Path) -> None:
    img = _frames(1)[0]
    path = save_png(img, tmp_path / "deep" / "er" / "face.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (64, 64)
        assert np.array_equal(np.asarray(im), img.permute(1, 2, 0).numpy())  # lossless
    with Image.open(save_png(img, tmp_path / "big.png", size=200, smooth=True)) as im:
        assert im.size == (200, 200)
    with Image.open(save_png(Image.new("RGB", (40, 20)), tmp_path / "wide.png", size=80)) as im:
        assert im.size == (80, 40)
    with pytest.raises(ValueError, match="one image"):
        save_png(_frames(2), tmp_path / "two.png")


@pytest.mark.parametrize("n, nrow, padding, size, expected", [
    (10, 4, 2, None, (4 * 66 + 2, 3 * 66 + 2)),
    (3, 8, 2, None, (3 * 66 + 2, 66 + 2)),
    (6, 3, 0, 32, (3 * 32, 2 * 32)),
    (5, 1, 5, 16, (16 + 10, 5 * 21 + 5)),
])
def test_png_grid_size(tmp_path: Path, n: int, nrow: int, padding: int, size: int | None,
                       expected: tuple[int, int]) -> None:
    frames = _frames(n)
    path = save_png_grid(frames, tmp_path / "grid.png", nrow=nrow, size=size, padding=padding)
    with Image.open(path) as im:
        assert im.size == expected
        if size is None:  # tile i sits at its row/column, pixel for pixel
            i = n - 1
            r, c = divmod(i, nrow)
            x, y = padding + c * (64 + padding), padding + r * (64 + padding)
            tile = np.asarray(im)[y : y + 64, x : x + 64]
            assert np.array_equal(tile, frames[i].permute(1, 2, 0).numpy())


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    save_gif(_frames(3), tmp_path / "a.gif", GifOptions(size=64))
    save_png(_frames(1)[0], tmp_path / "a.png")
    save_png_grid(_frames(3), tmp_path / "g.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.png", "g.png"]


@pytest.mark.parametrize("writer", ["gif", "png", "grid"])
def test_failed_save_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous export")

    def broken_save(self: Image.Image, *args: object, **kwargs: object) -> None:
        fp = args[0]
        fp.write(b"half a file")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        if writer == "gif":
            save_gif(_frames(3), target, GifOptions(size=64))
        elif writer == "png":
            save_png(_frames(1)[0], target)
        else:
            save_png_grid(_frames(3), target)
    assert target.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 63}, "size"),
    ({"size": 1025}, "size"),
    ({"size": 128.0}, "size"),
    ({"fps": 0}, "fps"),
    ({"fps": 61}, "fps"),
    ({"loop": -1}, "loop"),
    ({"smooth": "yes"}, "smooth"),
    ({"pingpong": 1}, "pingpong"),
    ({"captions": "hello"}, "captions"),
    ({"captions": ["a", 3]}, "captions"),
])
def test_invalid_gif_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GifOptions(**kwargs)


def test_invalid_inputs(tmp_path: Path) -> None:
    opts = GifOptions(size=64)
    opts.fps = 100  # mutated after creation: save_gif checks again
    with pytest.raises(ValueError, match="fps"):
        save_gif(_frames(2), tmp_path / "a.gif", opts)
    with pytest.raises(ValueError, match="no frames"):
        save_gif([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="shape"):
        save_gif(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), tmp_path / "a.gif")
    with pytest.raises(ValueError, match="uint8 or float"):
        save_png(torch.zeros(3, 8, 8, dtype=torch.int64), tmp_path / "a.png")
    with pytest.raises(ValueError, match="nrow"):
        save_png_grid(_frames(2), tmp_path / "g.png", nrow=0)
    with pytest.raises(ValueError, match="padding"):
        save_png_grid(_frames(2), tmp_path / "g.png", padding=-1)
    with pytest.raises(ValueError, match="different sizes"):
        save_png_grid([Image.new("RGB", (8, 8)), Image.new("RGB", (9, 9))], tmp_path / "g.png")
    assert not any(tmp_path.iterdir())
