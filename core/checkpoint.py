"""One checkpoint format for every model: weights plus the metadata that rebuilds the model.

A file is one dict, read only with `torch.load(weights_only=True)`, so a checkpoint can never
run code. Anything wrong with a file (damaged, wrong kind, shapes that do not match its own
config, a pickle that tries to run code) becomes a `CheckpointError` that says so in one sentence.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.messages import one_line
from core.data import IMAGE_SIZE, NORMALISATION
from core.atomic import save_tensor_atomic
from core.model_hash import state_hash  # noqa: F401 (part of this module's interface)
from core.models import MODEL_KINDS, config_from_dict, model_classes

FORMAT_VERSION = 1
# Kinds without a network of their own (e.g. fitted latent directions) are still checkpoints.
DATA_KINDS = ("directions",)
# The largest allowed encoder is 1.4 GiB of float32 weights; with resume state (Adam moments) 4×.
MAX_CHECKPOINT_BYTES = 8 << 30
RESUME_COPIES = 5  # weights + EMA/raw copy + two Adam moments, with room to spare


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and the reason."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (None for data kinds) and its metadata."""

    kind: str
    model: nn.Module | None
    config: dict
    attributes: list[str] = field(default_factory=list)
    image_size: int = IMAGE_SIZE
    normalisation: str = NORMALISATION
    train: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    path: Path | None = None


def save_checkpoint(
    path: str | os.PathLike,
    kind: str,
    model: nn.Module | None = None,
    *,
    attributes: list[str] | None = None,
    train: dict | None = None,
    extra: dict | None = None,
    half: bool = False,
    config: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file + rename): a crash never leaves half a file.

    `half=True` stores floating-point weights as float16 (the shipped models); they are loaded
    back as float32. `extra` holds kind-specific tensors/values (e.g. optimiser state for resume,
    direction vectors), which must themselves be weights-only loadable.
    """
    if kind not in MODEL_KINDS and kind not in DATA_KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    if model is not None:
        model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
        config = asdict(model.config)
        state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
                 for k, v in model.state_dict().items()}
    else:
        state = {}
    blob: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config or {},
        "state_dict": state,
        "attributes": list(attributes or []),
        "image_size": int((config or {}).get("image_size", IMAGE_SIZE)),
        "normalisation": NORMALISATION,
        "train": train or {},
        "extra": extra or {},
    }
    return save_tensor_atomic(blob, path)


def _check_archive(path: Path) -> None:
    """Refuse archives that would inflate on load: torch.save stores entries uncompressed, so a
    compressed entry (a 2.7 MB file that inflated to 1.6 GB) is not one of ours."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged, truncated or not a checkpoint ({one_line(exc)})") from None
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise CheckpointError(f"{path}: refused, it holds compressed entries ({packed[0]}), which torch.save "
                              "never writes (a compressed checkpoint can inflate far beyond its size)")
    total = sum(e.file_size for e in entries)
    if total > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: refused, its entries add up to {total / 2**30:.1f} GiB, more than any "
                              f"checkpoint needs ({MAX_CHECKPOINT_BYTES / 2**30:.0f} GiB)")


def _read_blob(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: is a folder or a special file, not a checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: damaged, truncated or not a checkpoint (not a PyTorch archive)")
    _check_archive(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported" in str(exc):
            raise CheckpointError(
                f"{path}: refused, the file contains code or objects that are not plain weights"
            ) from None
        raise CheckpointError(f"{path}: damaged or not a checkpoint ({one_line(exc)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged, truncated or not a checkpoint ({one_line(exc)})") from None
    if not isinstance(blob, dict) or "kind" not in blob or "state_dict" not in blob:
        raise CheckpointError(f"{path}: not a Latent Steer checkpoint (no kind / state_dict)")
    version = blob.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version!r} is not supported (this build reads ≤ {FORMAT_VERSION})")
    return blob




def load_checkpoint(
    path: str | os.PathLike,
    kind: str | None = None,
    device: str | torch.device = "cpu",
) -> Checkpoint:
    """Load a checkpoint and rebuild its model from its own config, in eval mode on `device`."""
    path = Path(path)
    blob = _read_blob(path)
    found = blob["kind"]
    if kind is not None and found != kind:
        raise CheckpointError(f"{path}: is a {found} checkpoint, expected a {kind}")
    model = None
    config = blob.get("config") or {}
    attributes = blob.get("attributes") or []
    if not isinstance(attributes, (list, tuple)) or not all(isinstance(a, str) for a in attributes):
        raise CheckpointError(f"{path}: its attribute names are not a list of strings")
    image_size = blob.get("image_size", IMAGE_SIZE)
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 1 <= image_size <= 4096:
        raise CheckpointError(f"{path}: image_size {image_size!r} is not a size in pixels")
    if found in DATA_KINDS:
        bad = _first_non_finite(blob.get("extra"))
        if bad is not None:
            raise CheckpointError(f"{path}: {bad} holds NaN or infinite values (a damaged file)")
    if found in MODEL_KINDS:
        try:
            cls, cfg_cls = model_classes(found, config)
            cfg = config_from_dict(cfg_cls, config)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: invalid {found} config ({exc})") from None
        state = blob["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path}: state_dict is not a mapping of tensors")
        with torch.device("meta"):  # names and shapes first, without allocating what the config asks for
            expected = cls(cfg).state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: weights do not match a {found} with this config "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        for name, tensor in state.items():
            if tensor.shape != expected[name].shape:
                raise CheckpointError(
                    f"{path}: weight {name} has shape {tuple(tensor.shape)}, "
                    f"the config needs {tuple(expected[name].shape)}"
                )
        for name, tensor in state.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"{path}: weight {name} holds NaN or infinite values (a diverged or damaged model)")
        _check_total_bytes(path, found, blob, expected)
        model = cls(cfg)
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
        model.eval().requires_grad_(False).to(device)
    elif found not in DATA_KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {found!r}")
    if found in ("classifier", "evaluator") and model is not None and len(attributes) != model.config.num_attributes:
        raise CheckpointError(
            f"{path}: lists {len(attributes)} attribute names for {model.config.num_attributes} outputs"
        )
    return Checkpoint(
        kind=found,
        model=model,
        config=_mapping(config),
        attributes=list(attributes),
        image_size=image_size,
        normalisation=str(blob.get("normalisation", NORMALISATION)),
        train=_mapping(blob.get("train")),
        extra=_mapping(blob.get("extra")),
        path=path,
    )


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _first_non_finite(value: object, name: str = "extra", depth: int = 0) -> str | None:
    """Name of the first floating tensor with a NaN or an infinity inside nested dicts/lists."""
    if isinstance(value, torch.Tensor):
        return name if value.is_floating_point() and not bool(torch.isfinite(value).all()) else None
    if depth > 16:
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _first_non_finite(item, f"{name}[{key!r}]", depth + 1)
        if found is not None:
            return found
    return None


def _tensor_bytes(value: object, depth: int = 0) -> int:
    """Bytes of every tensor inside nested dicts/lists/tuples (e.g. resume state)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if depth > 16:
        return 0
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v, depth + 1) for v in value)
    return 0


def _check_total_bytes(path: Path, kind: str, blob: dict, expected: dict) -> None:
    """A model checkpoint holds its weights plus at most a few copies (raw G, Adam moments)."""
    weights = sum(t.numel() * 4 for t in expected.values())  # as float32
    limit = RESUME_COPIES * weights + 2**20
    total = _tensor_bytes(blob["state_dict"]) + _tensor_bytes(blob.get("extra"))
    if total > limit:
        raise CheckpointError(f"{path}: holds {total / 2**20:.0f} MiB of tensors, more than a {kind} of this "
                              f"config needs ({limit / 2**20:.0f} MiB)")


def read_metadata(path: str | os.PathLike) -> dict:
    """Everything but the weights, e.g. for `main.py info` or the model card."""
    blob = _read_blob(Path(path))
    return {k: v for k, v in blob.items() if k not in ("state_dict", "extra")}
