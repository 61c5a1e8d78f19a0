"""Writing what the app shows to disk: PNG stills, PNG grids and animated GIFs.

Frames arrive as the generator produces them (a float tensor in [-1, 1]), as uint8 tensors
(N, 3, H, W) or (3, H, W), or as PIL images. Every file is written atomically (a temporary file
in the same folder, then `os.replace`), so a failed or interrupted export never leaves a
half-written file and never destroys the previous one. Nothing here imports Qt.
"""
from __future__ import annotations

import math
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from core.atomic import atomic_write
from core.data import to_uint8

Frames = torch.Tensor | Sequence[Image.Image]

MIN_GIF_SIZE, MAX_GIF_SIZE = 64, 1024
MIN_FPS, MAX_FPS = 1, 60
MAX_LOOP = 65535  # the GIF loop count is a 16-bit field
MAX_OUTPUT_PIXELS = 2**27  # pixels one GIF (all frames) or one PNG grid may hold: ~400 MB while it is built
MAX_PNG_SIZE = 8192
# Browsers play GIF delays of 0 or 1 centisecond as 10 cs, so frames are never shorter than 2 cs.
MIN_DELAY_CS = 2
_PALETTE_SAMPLES = 32  # frames sampled to build the shared GIF palette
_PALETTE_SAMPLE_SIDE = 128
_CAPTION_BG = (24, 24, 24)
_CAPTION_FG = (240, 240, 240)
# Pillow's built-in font covers ASCII only; common symbols get readable stand-ins instead of boxes.
_ASCII_STAND_INS = str.maketrans({
    "→": "->", "←": "<-", "↔": "<->", "⇒": "=>", "–": "-", "—": "-", "−": "-", "…": "...",
    "×": "x", "±": "+/-", "≈": "~", "≤": "<=", "≥": ">=", "°": "deg", "·": "*",
    "‘": "'", "’": "'", "“": '"', "”": '"', "α": "a", "β": "b", "Δ": "d", "λ": "l",
})


# ---------------------------------------------------------------------------------------------
# Options


@dataclass
class GifOptions:
    """How a GIF is rendered; checked on creation and again by `save_gif`.

    size: side in pixels of the square image part of each frame (64..1024); None: the frames
        keep their own size (all alike), as frames pasted into a photo do.
    smooth: False = nearest-neighbour upscaling (crisp pixels, true to the 64-px output);
        True = LANCZOS (soft, nicer for large sizes).
    fps: frames per second (1..60); see `gif_durations` for how it becomes GIF delays.
    loop: 0 = play forever, otherwise the number of times the animation plays.
    pingpong: after the frames, play them backwards (the two end frames are not repeated).
    captions: None, or one string per input frame, drawn in a strip below the image.
    """

    size: int | None = 256
    smooth: bool = False
    fps: int = 12
    loop: int = 0
    pingpong: bool = False
    captions: list[str] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, n_frames: int | None = None) -> None:
        """Raise ValueError naming the first bad option; with `n_frames`, check captions count."""
        if self.size is not None and (not _is_int(self.size) or not MIN_GIF_SIZE <= self.size <= MAX_GIF_SIZE):
            raise ValueError(f"GIF size must be an integer from {MIN_GIF_SIZE} to {MAX_GIF_SIZE} px, got {self.size!r}")
        if not isinstance(self.smooth, bool):
            raise ValueError(f"smooth must be True or False, got {self.smooth!r}")
        if not _is_int(self.fps) or not MIN_FPS <= self.fps <= MAX_FPS:
            raise ValueError(f"fps must be an integer from {MIN_FPS} to {MAX_FPS}, got {self.fps!r}")
        if not _is_int(self.loop) or not 0 <= self.loop <= MAX_LOOP:
            raise ValueError(f"loop must be 0 (forever) or a play count up to {MAX_LOOP}, got {self.loop!r}")
        if not isinstance(self.pingpong, bool):
            raise ValueError(f"pingpong must be True or False, got {self.pingpong!r}")
        if self.captions is not None:
            if isinstance(self.captions, str) or not all(isinstance(c, str) for c in self.captions):
                raise ValueError("captions must be a list of strings, one per frame")
            if n_frames is not None and len(self.captions) != n_frames:
                raise ValueError(f"got {len(self.captions)} captions for {n_frames} frames; give one per frame")
        if n_frames is not None and self.size is not None:
            check_output_pixels(self.written_frames(n_frames), self.size, "GIF")

    def written_frames(self, n_frames: int) -> int:
        """Frames the file holds: pingpong plays the inner frames again, backwards."""
        return n_frames + max(0, n_frames - 2) if self.pingpong else n_frames


def check_output_pixels(count: int, size: int, what: str) -> None:
    """ValueError before any work when `count` images of `size`² pixels would not fit in memory."""
    if count * size * size > MAX_OUTPUT_PIXELS:
        fits = max(1, MAX_OUTPUT_PIXELS // (size * size))
        raise ValueError(f"{count:,} frames of {size}×{size} px are too much for one {what} (at most {fits:,} at "
                         f"that size); use fewer frames or a smaller size")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def gif_durations(n_frames: int, fps: int) -> list[int]:
    """Per-frame delays in milliseconds, each a whole number of centiseconds.

    GIF stores delays in centiseconds (Pillow truncates milliseconds to them), so 1000/fps ms
    is usually not representable: 12 fps would silently become 8 cs = 12.5 fps. Instead frame
    i lasts round(100·(i+1)/fps) - round(100·i/fps) cs, so the delays differ by at most 1 cs
    and the time from the start to any frame is within half a centisecond of i/fps (12 fps:
    80, 90, 80, 80, 90, 80, ... summing to exactly 1000 ms per 12 frames). Delays below 2 cs
    are raised to 2 cs, because browsers slow 0-1 cs frames to 10 cs: above 50 fps the GIF
    plays at 50 fps.
    """
    if not _is_int(n_frames) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    if not _is_int(fps) or not MIN_FPS <= fps <= MAX_FPS:
        raise ValueError(f"fps must be an integer from {MIN_FPS} to {MAX_FPS}, got {fps!r}")
    # round-half-up of 100·i/fps in exact integer arithmetic
    edges = [(200 * i + fps) // (2 * fps) for i in range(n_frames + 1)]
    return [10 * max(MIN_DELAY_CS, b - a) for a, b in zip(edges, edges[1:])]


# ---------------------------------------------------------------------------------------------
# Converting inputs


def to_pil_images(frames: Frames) -> list[Image.Image]:
    """RGB PIL images from a uint8 or [-1, 1] float tensor (N, 3, H, W) / (3, H, W), a PIL image,
    or a list of PIL images and/or per-frame tensors."""
    if isinstance(frames, Image.Image):
        return [frames.convert("RGB")]
    if isinstance(frames, torch.Tensor):
        x = frames.detach()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"image tensors must have shape (N, 3, H, W) or (3, H, W), got {tuple(frames.shape)}")
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"no pixels to save: tensor shape {tuple(frames.shape)}")
        if x.is_floating_point():
            x = to_uint8(x)
        elif x.dtype != torch.uint8:
            raise ValueError(f"image tensors must be uint8 or float in [-1, 1], got {x.dtype}")
        arr = x.cpu().permute(0, 2, 3, 1).contiguous().numpy()
        return [Image.fromarray(a, "RGB") for a in arr]
    try:
        images = list(frames)
    except TypeError:
        raise ValueError(f"expected an image tensor or a list of PIL images, got {type(frames).__name__}") from None
    if not images:
        raise ValueError("no frames to save")
    out: list[Image.Image] = []
    for i, img in enumerate(images):
        if isinstance(img, torch.Tensor):
            out += to_pil_images(img)  # a list of per-frame tensors, as the engine's frames hold them
        elif isinstance(img, Image.Image):
            out.append(img.convert("RGB"))
        else:
            raise ValueError(f"frame {i} is a {type(img).__name__}, not a PIL image or an image tensor")
    return out


def _resample(smooth: bool) -> Image.Resampling:
    return Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST


def _fit_square(img: Image.Image, size: int, smooth: bool) -> Image.Image:
    """Scale to size×size; a non-square picture is fitted inside and centred on black."""
    if img.size == (size, size):
        return img.copy()
    return ImageOps.pad(img, (size, size), method=_resample(smooth), color=(0, 0, 0))


def _check_size(size: int | None, name: str = "size") -> None:
    if size is not None and (not _is_int(size) or not 1 <= size <= MAX_PNG_SIZE):
        raise ValueError(f"{name} must be None or an integer from 1 to {MAX_PNG_SIZE} px, got {size!r}")


# ---------------------------------------------------------------------------------------------
# Captions


def _ascii(text: str) -> str:
    """What the built-in font can draw: stand-ins for arrows and dashes, accents dropped, else '?'."""
    text = unicodedata.normalize("NFKD", text.translate(_ASCII_STAND_INS))
    return "".join(
        c if 32 <= ord(c) < 127 else ("" if unicodedata.combining(c) else " " if c.isspace() else "?")
        for c in text
    )


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=px)
    except (ImportError, OSError, TypeError, ValueError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _text_width(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(math.ceil(right - left))


def _caption_frames(images: list[Image.Image], captions: list[str]) -> list[Image.Image]:
    """Each image with a strip below it holding its caption; one font size for all frames.

    The size starts at about 6% of the width and shrinks until the widest caption fits (but
    not below 8 px, where a caption that still does not fit is cut with '...'), so captions
    do not change size from frame to frame and the strip height is the same for every frame.
    """
    width = images[0].width
    margin = max(2, width // 64)
    texts = [_ascii(c) for c in captions]
    px = max(8, round(width * 0.06))
    font = _font(px)
    while px > 8 and max(_text_width(font, t) for t in texts) > width - 2 * margin:
        px -= 1
        font = _font(px)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (px, px // 4)
    strip = ascent + descent + 2 * margin
    out = []
    for img, text in zip(images, texts):
        while text and _text_width(font, text) > width - 2 * margin:
            text = text[:-4] + "..." if len(text) > 3 else ""
        frame = Image.new("RGB", (width, img.height + strip), _CAPTION_BG)
        frame.paste(img, (0, 0))
        x = (width - _text_width(font, text)) // 2
        ImageDraw.Draw(frame).text((x, img.height + margin), text, font=font, fill=_CAPTION_FG)
        out.append(frame)
    return out


# ---------------------------------------------------------------------------------------------
# GIF palette


def _shared_palette(frames: list[Image.Image]) -> list[int]:
    """Up to 255 colours (flat RGB list) chosen from a sample of all frames.

    One palette for the whole animation keeps a colour from flickering between frames, which
    per-frame palettes do; the 256th entry is reserved (see `_quantise`).
    """
    step = max(1, math.ceil(len(frames) / _PALETTE_SAMPLES))
    sample = frames[::step]
    thumbs = []
    for f in sample:
        scale = min(1.0, _PALETTE_SAMPLE_SIDE / max(f.size))
        # NEAREST only picks existing pixels, so no colour is invented by the thumbnail.
        thumbs.append(f.resize((max(1, round(f.width * scale)), max(1, round(f.height * scale))),
                               Image.Resampling.NEAREST))
    mosaic = Image.new("RGB", (max(t.width for t in thumbs), sum(t.height for t in thumbs)))
    y = 0
    for t in thumbs:
        mosaic.paste(t, (0, y))
        y += t.height
    quantised = mosaic.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = quantised.getpalette() or [0, 0, 0]
    return palette[: 3 * 255]


def _quantise(frames: list[Image.Image]) -> list[Image.Image]:
    """Palette images for the GIF writer, with every frame kept as its own GIF frame.

    Pillow's GIF writer merges a frame identical to the previous one into it (summing the
    delays) whatever `disposal` or `optimize` say, which would change the frame count. So each
    frame's palette gets, in its last slot, a copy of the colour of its top-left pixel; in a
    run of identical frames every other one draws that pixel with the copy. The pictures stay
    pixel-identical but their palette indices differ, so the writer keeps every frame.
    """
    base = _shared_palette(frames)
    n_base = len(base) // 3
    palette_image = Image.new("P", (1, 1))
    palette_image.putpalette(base)
    padding = [0, 0, 0] * (255 - n_base)
    out: list[Image.Image] = []
    previous: bytes | None = None
    toggled = False
    for frame in frames:
        q = frame.quantize(palette=palette_image, dither=Image.Dither.NONE)
        data = q.tobytes()
        toggled = (not toggled) if data == previous else False
        previous = data
        first = q.getpixel((0, 0))
        assert isinstance(first, int) and first < n_base
        q.putpalette(base + padding + base[3 * first : 3 * first + 3])
        if toggled:
            q.putpixel((0, 0), 255)
        q.info.clear()
        out.append(q)
    return out


# ---------------------------------------------------------------------------------------------
# Public writers


def save_gif(frames: Frames, path: str | os.PathLike, options: GifOptions | None = None) -> Path:
    """Write an animated GIF of `frames` (see the module docstring for accepted inputs).

    Every input frame becomes exactly one GIF frame (plus the reversed ones for pingpong);
    delays follow `gif_durations`; `loop` is stored as GIF repeats (play count - 1; a single
    play writes no loop block, which is how GIF says "play once").
    """
    options = options or GifOptions()
    images = to_pil_images(frames)
    options.validate(n_frames=len(images))
    if options.size is not None:
        images = [_fit_square(img, options.size, options.smooth) for img in images]
    elif len({img.size for img in images}) > 1:
        raise ValueError(f"frames have different sizes {sorted({img.size for img in images})}; give a GIF size")
    if options.captions is not None:
        images = _caption_frames(images, options.captions)
    if options.pingpong:
        images = images + images[-2:0:-1]
    paletted = _quantise(images)
    params: dict[str, object] = {
        "save_all": True,
        "append_images": paletted[1:],
        "duration": gif_durations(len(paletted), options.fps),
        "disposal": 1,  # leave each frame in place; the next one only redraws what changed
        "optimize": False,  # keep our palette as is: its last slot is meaningful
    }
    if options.loop != 1:
        params["loop"] = 0 if options.loop == 0 else options.loop - 1
    return atomic_write(path, lambda fh: paletted[0].save(fh, format="GIF", **params))


def save_png(
    image: torch.Tensor | Image.Image,
    path: str | os.PathLike,
    size: int | None = None,
    smooth: bool = False,
) -> Path:
    """Write one picture as PNG; `size` scales its longer side to that many pixels (aspect kept)."""
    _check_size(size)
    images = to_pil_images(image)
    if len(images) != 1:
        raise ValueError(f"save_png writes one image, got {len(images)}; use save_png_grid")
    img = images[0]
    if size is not None and max(img.size) != size:
        scale = size / max(img.size)
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(new, _resample(smooth))
    return atomic_write(path, lambda fh: img.save(fh, format="PNG"))


def save_png_grid(
    images: Frames,
    path: str | os.PathLike,
    nrow: int = 8,
    size: int | None = None,
    padding: int = 2,
    smooth: bool = False,
) -> Path:
    """Write images as a PNG grid, `nrow` per row, like torchvision's `make_grid`.

    Tiles are `size`×`size` (None: the images' own size, which must then agree) and separated
    and framed by `padding` black pixels: width = cols·(tile + padding) + padding with
    cols = min(nrow, N), height = rows·(tile + padding) + padding with rows = ceil(N / nrow).
    """
    if not _is_int(nrow) or nrow < 1:
        raise ValueError(f"nrow must be a positive integer, got {nrow!r}")
    if not _is_int(padding) or not 0 <= padding <= 256:
        raise ValueError(f"padding must be an integer from 0 to 256 px, got {padding!r}")
    _check_size(size)
    if size is not None:
        check_output_pixels(len(images), size + padding, "PNG grid")
    tiles = to_pil_images(images)
    if size is not None:
        tiles = [_fit_square(t, size, smooth) for t in tiles]
    elif len({t.size for t in tiles}) > 1:
        raise ValueError(f"images have different sizes {sorted({t.size for t in tiles})}; pass size= to resize them")
    tw, th = tiles[0].size
    cols, rows = min(nrow, len(tiles)), math.ceil(len(tiles) / nrow)
    grid = Image.new("RGB", (cols * (tw + padding) + padding, rows * (th + padding) + padding))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, nrow)
        grid.paste(tile, (padding + c * (tw + padding), padding + r * (th + padding)))
    return atomic_write(path, lambda fh: grid.save(fh, format="PNG"))
