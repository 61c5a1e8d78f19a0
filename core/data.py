"""CelebA reading, the one 64-px preprocessing, and safe image loading.

Every place that turns a picture into model input (training, inversion, evaluation) goes through
`preprocess`, so the app and the training scripts can never disagree on framing or scaling.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from core.atomic import save_tensor_atomic

IMAGE_SIZE = 64
NORMALISATION = "x/127.5-1"  # uint8 [0, 255] -> float [-1, 1]; stored in every checkpoint
PREPROCESS_VERSION = 1  # bump when `preprocess` changes: invalidates the decoded-image cache
HOLDOUT_COUNT = 1000  # IDs 8001-9000 of the shared 9,000-image subset
MAX_PIXELS = 80_000_000  # decoded at full size (PNG, TIFF, …): beyond this, refuse (bomb)
MAX_DRAFT_PIXELS = 400_000_000  # JPEGs decode at 1/2…1/8 scale (draft), so phone photos up to this open
MAX_DECODED_BYTES = 400 << 20  # memory one decoded picture may take before conversion
MAX_FILE_BYTES = 512 << 20  # a file larger than this is not read at all
MIN_SIDE = 8  # px; a thinner picture cannot hold a face (and cannot be cropped square)
MAX_SIDE = 2048  # images larger than this are downscaled on load (a face crop needs far less)

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
CROPS_DIR = "img"  # a folder of unaligned face crops (with the same list files): aligned by landmarks on decode
ALIGN_VERSION = 1  # bump when the landmark alignment of unaligned crops changes (invalidates their cache)

# Pillow's own bomb check (a warning past MAX_IMAGE_PIXELS, an error past twice that) runs as a file
# is opened, before we know a JPEG can be drafted; `open_image` applies the limits above instead.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_DRAFT_PIXELS)


class CelebAError(ValueError):
    """The CelebA folder or one of its list files is unusable; the message names file and line."""


class ImageLoadError(ValueError):
    """A file could not be turned into an RGB picture; the message says why in one sentence."""


@dataclass
class CelebAIndex:
    """What the list files say about the images that are actually present, in file order."""

    root: Path
    filenames: list[str]
    attributes: np.ndarray  # (N, A) uint8, 1 = attribute present
    attribute_names: list[str]
    partition: np.ndarray  # (N,) int8: 0 train, 1 val, 2 test (all 0 when no partition file)
    missing: int = 0  # rows whose image file is absent
    missing_examples: list[str] = field(default_factory=list)
    aligned: bool = True  # False: `CROPS_DIR` crops, aligned by landmarks onto CelebA's framing when decoded

    @property
    def image_dir(self) -> Path:
        return self.root / (IMAGE_DIR if self.aligned else CROPS_DIR)

    def __len__(self) -> int:
        return len(self.filenames)

    def holdout_mask(self, holdout_count: int = HOLDOUT_COUNT) -> np.ndarray:
        """True for images no training script may see.

        The official partition's val/test images when the partition file marks any; otherwise
        (the shared subset, whose partition is all 0) the last `holdout_count` images by ID,
        but never more than a fifth of a small folder, so that something is left to train on.
        """
        if (self.partition != 0).any():
            return self.partition != 0
        mask = np.zeros(len(self), dtype=bool)
        count = min(holdout_count, len(self) // 5)
        if count > 0:
            mask[-count:] = True
        return mask


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise CelebAError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise CelebAError(f"{path}: not a text file ({exc.reason})") from None
    return text.splitlines()  # handles LF, CRLF and stray CR alike


def read_attributes(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Parse `list_attr_celeba.txt`: a count line, a names line, then `file v1 … vA` with ±1."""
    lines = _read_lines(path)
    if len(lines) < 2:
        raise CelebAError(f"{path}: too short, expected a count line and a names line")
    try:
        declared = int(lines[0].strip())
    except ValueError:
        raise CelebAError(f"{path}:1: expected the number of images, got {lines[0][:40]!r}") from None
    names = lines[1].split()
    if not names:
        raise CelebAError(f"{path}:2: no attribute names")
    rows: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise CelebAError(
                f"{path}:{lineno}: expected a file name and {len(names)} values, got {len(parts)} fields"
            )
        try:
            values = [int(v) for v in parts[1:]]
        except ValueError:
            raise CelebAError(f"{path}:{lineno}: attribute values must be 1 or -1") from None
        if any(v not in (1, -1, 0) for v in values):
            raise CelebAError(f"{path}:{lineno}: attribute values must be 1 or -1")
        rows[parts[0]] = (np.asarray(values) > 0).astype(np.uint8)
    if declared != len(rows):
        warnings.warn(f"{path}: header says {declared} images, file lists {len(rows)}", stacklevel=2)
    return names, rows


def read_partition(path: Path) -> dict[str, int]:
    """Parse `list_eval_partition.txt` (`file 0|1|2`)."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise CelebAError(f"{path}:{lineno}: expected 'file 0|1|2', got {line[:60]!r}")
        out[parts[0]] = int(parts[1])
    return out


def read_celeba(root: str | os.PathLike) -> CelebAIndex:
    """Index a CelebA folder in the official layout (full dataset or any subset, any resolution),
    or a folder of unaligned face crops in `CROPS_DIR/` with the same list files."""
    root = Path(root)
    aligned = (root / IMAGE_DIR).is_dir() or not (root / CROPS_DIR).is_dir()
    image_dir = root / (IMAGE_DIR if aligned else CROPS_DIR)
    if not image_dir.is_dir():
        raise CelebAError(f"{root}: no '{IMAGE_DIR}/' folder (nor '{CROPS_DIR}/' of unaligned crops); "
                          "expected the official CelebA layout")
    names, rows = read_attributes(root / ATTR_FILE)
    partition_path = root / PARTITION_FILE
    partition = read_partition(partition_path) if partition_path.exists() else {}
    present = set(os.listdir(image_dir))
    filenames, attrs, parts, missing = [], [], [], []
    for fname in sorted(rows):
        if fname not in present:
            missing.append(fname)
            continue
        filenames.append(fname)
        attrs.append(rows[fname])
        parts.append(partition.get(fname, 0))
    if not filenames:
        raise CelebAError(f"{image_dir}: none of the {len(rows)} listed images is present")
    return CelebAIndex(
        root=root,
        filenames=filenames,
        attributes=np.stack(attrs),
        attribute_names=names,
        partition=np.asarray(parts, dtype=np.int8),
        missing=len(missing),
        missing_examples=missing[:5],
        aligned=aligned,
    )


# ---------------------------------------------------------------------------------------------
# Images


def _open_regular_file(path: str | os.PathLike, name: str) -> io.BufferedReader:
    """Open `path` for reading only if it is a regular file of a photo's size, else `ImageLoadError`.

    Opened non-blocking, so a FIFO, socket or device can never hang the caller: it is refused
    after `fstat` without a byte read. The size bound keeps a huge file from being read at all.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageLoadError(f"{name} does not exist") from None
    except PermissionError:
        raise ImageLoadError(f"{name} cannot be read (permission denied)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageLoadError(f"{name} is a symbolic link loop, not an image") from None
        raise ImageLoadError(f"{name} cannot be opened ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageLoadError(f"{name} is a folder, not an image")
        if not stat.S_ISREG(st.st_mode):
            raise ImageLoadError(f"{name} is not a regular file (a pipe, socket or device), not an image")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageLoadError(
                f"{name} is {st.st_size / 2**20:.0f} MB, more than the {MAX_FILE_BYTES / 2**20:.0f} MB "
                "any photo needs (refused)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _decoded_bytes(img: Image.Image) -> int:
    """Bytes Pillow needs to hold `img` decoded (each band at least one byte per pixel)."""
    per_pixel = {"I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "I": 4, "F": 4}.get(img.mode)
    if per_pixel is None:
        per_pixel = 4 if len(img.getbands()) > 1 else 1  # Pillow stores multi-band pixels in 4 bytes
    return img.width * img.height * per_pixel


def open_image(source: str | os.PathLike | bytes, max_side: int = MAX_SIDE) -> Image.Image:
    """Open anything Pillow reads as an upright RGB picture, or raise `ImageLoadError`.

    Grey, palette, alpha (composited on white), CMYK and 16-bit images become RGB; EXIF rotation
    is applied; images larger than `max_side` are downscaled (JPEGs while decoding, so photos up
    to `MAX_DRAFT_PIXELS` open in bounded memory; deep images in their own depth, before any
    conversion); decompression bombs, truncated files, images too thin to hold a face, pipes and
    other non-files and non-images are refused with a one-sentence reason.
    """
    name = "image data" if isinstance(source, bytes) else str(source)
    fp = io.BytesIO(source) if isinstance(source, bytes) else _open_regular_file(source, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with fp, Image.open(fp) as img:
                width, height = img.size
                if min(width, height) < MIN_SIDE:
                    raise ImageLoadError(_too_thin(name, width, height))
                pixels = width * height
                draft = img.format == "JPEG" and max(img.size) > 2 * max_side
                if pixels > (MAX_DRAFT_PIXELS if draft else MAX_PIXELS):
                    raise ImageLoadError(
                        f"{name} is {img.width}×{img.height} pixels, too large to be a photo "
                        "(refused as a possible decompression bomb)"
                    )
                if draft:
                    img.draft("RGB", (max_side, max_side))  # decode huge JPEGs at reduced scale
                if _decoded_bytes(img) > MAX_DECODED_BYTES:
                    raise ImageLoadError(
                        f"{name} is {img.width}×{img.height} pixels in mode {img.mode}, more memory than a "
                        "photo needs (refused as a possible decompression bomb)"
                    )
                img.load()
                if img.mode in _DEEP_MODES and max(img.size) > max_side:
                    img = _downscaled(img, max_side, Image.Resampling.BOX)  # still 16/32-bit: cheap
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(f"{name} does not exist") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name} is not an image this app can open (JPEG, PNG, BMP, GIF, WebP or TIFF)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"{name} is too large to open safely (over the pixel limit)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{name} is damaged or truncated ({exc})") from None
    if max(rgb.size) > max_side:
        rgb = _downscaled(rgb, max_side, Image.Resampling.LANCZOS)
    if min(rgb.size) < MIN_SIDE:  # so thin that downscaling the long side took the short one below
        raise ImageLoadError(_too_thin(name, width, height))
    return rgb


def _too_thin(name: str, width: int, height: int) -> str:
    return (f"{name} is {width}×{height} pixels, too thin to hold a face "
            f"(each side needs at least {MIN_SIDE} px)")


_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _downscaled(img: Image.Image, max_side: int, method: Image.Resampling) -> Image.Image:
    """`img` with its longer side brought to `max_side`, aspect kept, no side below 1 px."""
    scale = max_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, method)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float32)
        hi = max(float(arr.max()), 1.0)
        img = Image.fromarray((arr * (255.0 / hi)).clip(0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float32))
        lo, hi = float(arr.min()), float(arr.max())
        img = Image.fromarray(((arr - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def preprocess(img: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """RGB picture -> uint8 tensor (3, size, size): short side to `size`, centre crop.

    This is the CelebA-64 convention (torchvision Resize(64) + CenterCrop(64)); the aligned
    178×218 and the half-resolution 89×109 crops frame the same face.
    """
    if img.mode != "RGB":
        img = _to_rgb(img)
    w, h = img.size
    if min(w, h) < 1:
        raise ValueError(f"cannot preprocess a {w}×{h} picture: it has no pixels")
    if max(w, h) > 4 * min(w, h):  # far from square: crop first, so the resized strip stays small
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
        w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = round((new_w - size) / 2), round((new_h - size) / 2)
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the `NORMALISATION` every model is trained with)."""
    return x.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model output in [-1, 1] -> uint8 [0, 255]; NaNs become mid-grey instead of garbage."""
    x = torch.nan_to_num(x.detach().float(), nan=0.0)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# Decoded-dataset cache


@dataclass
class CelebATensors:
    """The decoded dataset: everything a training script needs, in memory."""

    images: torch.Tensor  # (N, 3, S, S) uint8
    attributes: torch.Tensor  # (N, A) uint8
    attribute_names: list[str]
    filenames: list[str]
    holdout: torch.Tensor  # (N,) bool
    missing: int
    cache_path: Path | None = None
    unaligned: int = 0  # unaligned crops skipped because no face or landmarks were found
    padded: torch.Tensor | None = None  # (N,) uint8: % of each aligned crop that lies outside its photo

    def split(self, held_out: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, attributes) of the training part (False) or of the held-out part (True)."""
        mask = self.holdout if held_out else ~self.holdout
        return self.images[mask], self.attributes[mask]


def default_cache_dir() -> Path:
    env = os.environ.get("LATENT_STEER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "latent-steer"


def _cache_prefix(index: CelebAIndex, size: int) -> str:
    """The part of a cache file's name shared by every version of one folder's cache at one size."""
    folder = hashlib.sha1(str(index.root.resolve()).encode()).hexdigest()[:8]
    return f"celeba-{size}px-{folder}-"


def _cache_key(index: CelebAIndex, size: int) -> str:
    """Changes whenever the listed images' bytes, the attribute table or the preprocessing change.

    Keyed by content, not by file times, so a folder copied again (fresh mtimes, same faces) keeps
    its cache; reading the bytes costs seconds where decoding them again costs minutes."""
    h = hashlib.sha1()
    h.update(f"v{PREPROCESS_VERSION}|{size}|".encode())
    if not index.aligned:
        h.update(f"align{ALIGN_VERSION}|".encode())
    image_dir = index.image_dir
    for fname in index.filenames:
        h.update(f"{fname}:".encode())
        h.update(_file_digest(image_dir / fname))
    h.update(index.attributes.tobytes())
    return h.hexdigest()[:16]


def _file_digest(path: Path) -> bytes:
    """A file's content hash; a folder, pipe or unreadable file hashes as a marker (never read:
    a pipe would block), and decoding it then names the file."""
    try:
        if stat.S_ISREG(path.stat().st_mode):
            return hashlib.sha1(path.read_bytes()).digest()
    except OSError:
        pass
    return b"not a readable file"


def _prune_caches(cache_path: Path, prefix: str) -> None:
    """Remove the folder's caches at this size other than `cache_path`: they no longer match its
    content (only a folder reverted to old bytes would use one again), and each is up to hundreds of MB."""
    for old in cache_path.parent.glob(f"{prefix}*.pt"):
        if old != cache_path:
            try:
                old.unlink()
            except OSError:  # another process's file, or read-only: only costs disk space
                pass


def _decode_one(path: Path, size: int) -> torch.Tensor:
    try:
        return preprocess(open_image(path), size)
    except ImageLoadError as exc:
        raise CelebAError(str(exc)) from None


def _align_one(path: Path, size: int) -> tuple[torch.Tensor, int] | None:
    """An unaligned crop warped onto CelebA's framing by its landmarks: (3×size×size uint8, % padded);
    None when no face or landmarks are found."""
    from core import align  # dlib and OpenCV: only needed for unaligned folders

    try:
        img = open_image(path)
    except ImageLoadError as exc:
        raise CelebAError(str(exc)) from None
    found = align.detect_landmarks(img, upscale=align.CROPS_UPSCALE)
    if found is None:
        found = align.detect_landmarks(img)
    if found is None:
        return None
    transform = align.similarity(found.points, align.TEMPLATE_64)
    face, inside = align.warp(img, transform, size=size, with_inside=True)
    padded = round(100 * (1 - inside.mean()))
    return torch.from_numpy(np.array(face)).permute(2, 0, 1).contiguous(), padded


def _write_cache(blob: dict[str, torch.Tensor], cache_path: Path) -> None:
    """Cache the decoded images (and, for aligned crops, which were kept) through the atomic
    writer; a failed write (full disk, quota) leaves no partial file behind and only costs the next
    run a fresh decode, so it is a warning that names the folder and the space needed, not an error."""
    try:
        save_tensor_atomic(blob, cache_path)
    except OSError as exc:
        need = sum(t.numel() * t.element_size() for t in blob.values())
        warnings.warn(f"could not cache the decoded dataset in {cache_path.parent} ({exc}); it needs "
                      f"{need / 2**20:,.0f} MB free there (or set --cache-dir / $LATENT_STEER_CACHE); "
                      "continuing without the cache", RuntimeWarning, stacklevel=3)


def load_celeba(
    root: str | os.PathLike,
    size: int = IMAGE_SIZE,
    cache_dir: str | os.PathLike | None = None,
    holdout_count: int = HOLDOUT_COUNT,
    workers: int | None = None,
    progress: bool = False,
) -> CelebATensors:
    """Index, decode and preprocess a CelebA folder once; later calls read the cached tensor.

    The cache file is keyed by the images' bytes, the attribute table and the preprocessing
    version, so an edited dataset is never served stale; writing a new one removes the folder's
    older caches.
    """
    index = read_celeba(root)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    prefix = _cache_prefix(index, size)
    cache_path = cache_dir / f"{prefix}{_cache_key(index, size)}.pt"
    holdout = torch.from_numpy(index.holdout_mask(holdout_count))  # by ID over the listed images, found or not
    attributes, filenames = torch.from_numpy(index.attributes), list(index.filenames)
    blob = None
    if cache_path.exists():
        try:
            blob = torch.load(cache_path, weights_only=True)
            keep = blob.get("keep")
            n = len(index) if keep is None else int(keep.sum())
            if blob["images"].shape != (n, 3, size, size) or (keep is not None and keep.shape != (len(index),)):
                blob = None
        except Exception:  # a damaged cache is rebuilt, never trusted
            blob = None
    if blob is None:
        paths = [index.image_dir / f for f in index.filenames]
        decode = (lambda p: _decode_one(p, size)) if index.aligned else (lambda p: _align_one(p, size))
        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
            iterator = pool.map(decode, paths)
            if progress:
                from tqdm import tqdm

                iterator = tqdm(iterator, total=len(paths), desc=f"decoding {index.root.name}", unit="img")
            decoded = list(iterator)
        if index.aligned:
            blob = {"images": torch.stack(decoded)}
        else:
            keep = torch.tensor([d is not None for d in decoded])
            found = [d for d in decoded if d is not None]
            if not found:
                raise CelebAError(f"{index.image_dir}: no face found in any of the {len(paths)} crops")
            blob = {"images": torch.stack([d[0] for d in found]), "keep": keep,
                    "padded": torch.tensor([d[1] for d in found], dtype=torch.uint8)}
        _prune_caches(cache_path, prefix)  # first, so a full disk has their space for the new one
        _write_cache(blob, cache_path)
    keep = blob.get("keep")
    if keep is not None:
        attributes, holdout = attributes[keep], holdout[keep]
        filenames = [f for f, k in zip(filenames, keep.tolist()) if k]
    return CelebATensors(
        images=blob["images"],
        attributes=attributes,
        attribute_names=index.attribute_names,
        filenames=filenames,
        holdout=holdout,
        missing=index.missing,
        cache_path=cache_path,
        unaligned=0 if keep is None else int((~keep).sum()),
        padded=blob.get("padded"),
    )


def load_datasets(roots: list[str | os.PathLike] | str | os.PathLike, **kwargs) -> CelebATensors:
    """`load_celeba` over one or several folders (aligned CelebA and unaligned crops alike), joined in
    the order given; each keeps its own held-out rule. The attribute names must agree."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    parts = [load_celeba(r, **kwargs) for r in roots]
    if len(parts) == 1:
        return parts[0]
    names = parts[0].attribute_names
    for r, part in zip(roots[1:], parts[1:]):
        if part.attribute_names != names:
            raise CelebAError(f"{r}: its attribute names differ from {roots[0]}'s")
    padded = [p.padded if p.padded is not None else torch.zeros(len(p.images), dtype=torch.uint8) for p in parts]
    return CelebATensors(
        images=torch.cat([p.images for p in parts]),
        attributes=torch.cat([p.attributes for p in parts]),
        attribute_names=names,
        filenames=[f for p in parts for f in p.filenames],
        holdout=torch.cat([p.holdout for p in parts]),
        missing=sum(p.missing for p in parts),
        unaligned=sum(p.unaligned for p in parts),
        padded=torch.cat(padded),
    )
