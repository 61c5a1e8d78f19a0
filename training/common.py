"""What every training script shares: arguments, seeding, on-device data, grids, logging.

Data lives on the training device as uint8 for the whole run; a batch is an index gather plus a
cast, so a step never waits on the host (no DataLoader, no per-step `.item()`).
"""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.data import CelebATensors, load_celeba, to_model_range
from core.device import describe, resolve_device
from core.export import save_png_grid

SMOKE_IMAGES = 48  # images a --smoke run trains on


def base_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="CelebA folder in the official layout")
    p.add_argument("--out", default=default_out, help="run folder: checkpoints, sample grids, metrics.jsonl")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=float, default=None, help="length in passes over the training images")
    p.add_argument("--steps", type=int, default=None, help="length in optimiser steps (overrides --epochs)")
    p.add_argument("--log-every", type=int, default=100, help="steps between metric lines")
    p.add_argument("--sample-every", type=int, default=1000, help="steps between sample grids / evaluations")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a run folder that already holds a run (its metrics and checkpoints are replaced)")
    p.add_argument("--compile", action="store_true", help="torch.compile the models (CUDA)")
    p.add_argument("--cache-dir", default=None, help="where the decoded dataset is cached")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--smoke", action="store_true", help="tiny models, few steps: a quick end-to-end check")
    return p


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class RunData:
    """Training and held-out images (uint8, on the device) and labels."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    heldout_images: torch.Tensor
    heldout_labels: torch.Tensor
    attribute_names: list[str]
    source: str
    missing: int


def init_device(args: argparse.Namespace) -> torch.device:
    """Threads, seeds and the fast CUDA settings (cuDNN autotune, TF32) for a run or a benchmark."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


RUN_FILES = ("metrics.jsonl", "*.pt")  # what makes a folder hold a run


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse (SystemExit, one line) to start a fresh run over an earlier one, unless asked to.

    A fresh run empties metrics.jsonl and replaces the checkpoints, so re-running a script into
    the same folder without --resume would silently lose the earlier run.
    """
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: is a file, not a run folder")
    if resume or overwrite or not out.is_dir():
        return
    found = sorted({p.name for pattern in RUN_FILES for p in out.glob(pattern)})
    if found:
        raise SystemExit(f"--out {out} already holds a run ({', '.join(found[:3])}); pass --resume to continue it, "
                         "--overwrite to replace it, or another --out")


def resume_state(checkpoint, what: str = "resume") -> dict:
    """The resume state a training checkpoint carries, or SystemExit naming the file (one line)."""
    state = checkpoint.extra.get(what) if isinstance(checkpoint.extra, dict) else None
    if not isinstance(state, dict):
        raise SystemExit(f"--resume: {checkpoint.path} holds no resume state (a shipped or converted "
                         "checkpoint?); pass --overwrite to start afresh")
    return state


def resume_failed(path: Path, exc: BaseException) -> SystemExit:
    """One line for a run folder whose checkpoint does not fit this run's options."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return SystemExit(f"--resume: {path} does not fit this run's options (another preset or size?): {first}; "
                      "use the run's original options, or --overwrite to start afresh")


def setup(args: argparse.Namespace) -> tuple[torch.device, RunData, Path]:
    """Device, seeds, data on the device, run folder; prints one line on what it got."""
    check_run_folder(Path(args.out), args.resume, getattr(args, "overwrite", False))
    device = init_device(args)
    ds: CelebATensors = load_celeba(args.data, cache_dir=args.cache_dir, progress=not args.smoke)
    train_x, train_y = ds.split(held_out=False)
    held_x, held_y = ds.split(held_out=True)
    if args.smoke:
        train_x, train_y = train_x[:SMOKE_IMAGES], train_y[:SMOKE_IMAGES]
        held_x, held_y = held_x[:SMOKE_IMAGES], held_y[:SMOKE_IMAGES]
    if len(train_x) == 0:
        raise SystemExit(f"{args.data}: no training images left after holding out the evaluation split")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"device {describe(device)} | {len(train_x)} training, {len(held_x)} held-out images"
          f" ({ds.missing} listed but missing) | run folder {out}")
    data = RunData(
        train_images=train_x.to(device).contiguous(memory_format=torch.channels_last),
        train_labels=train_y.to(device).float(),
        heldout_images=held_x.to(device),
        heldout_labels=held_y.float(),
        attribute_names=ds.attribute_names,
        source=str(Path(args.data).resolve()),
        missing=ds.missing,
    )
    return device, data, out


def total_steps(args: argparse.Namespace, n_images: int, default_epochs: float) -> int:
    if args.steps is not None:
        return max(1, args.steps)
    epochs = args.epochs if args.epochs is not None else default_epochs
    return max(1, round(epochs * n_images / args.batch_size))


class BatchSampler:
    """Shuffled passes over an on-device uint8 tensor; yields float batches in [-1, 1].

    With `weights`, each pass is drawn with replacement in proportion to them instead of a
    permutation (see `balance_weights`).
    """

    def __init__(self, images: torch.Tensor, batch_size: int, labels: torch.Tensor | None = None,
                 flip: bool = True, weights: torch.Tensor | None = None):
        self.images, self.labels, self.flip = images, labels, flip
        self.batch_size = min(batch_size, len(images))
        self.device = images.device
        if weights is not None:
            if weights.shape != (len(images),) or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
                raise ValueError("sampling weights must be one finite, non-negative number per image")
            weights = weights.to(self.device, torch.float)
        self.weights = weights
        self._perm = torch.empty(0, dtype=torch.long, device=self.device)
        self._pos = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._pos + self.batch_size > len(self._perm):
            if self.weights is None:
                self._perm = torch.randperm(len(self.images), device=self.device)
            else:
                self._perm = torch.multinomial(self.weights, len(self.images), replacement=True)
            self._pos = 0
        idx = self._perm[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        x = to_model_range(self.images[idx])
        if self.flip:
            mirror = torch.rand(len(idx), 1, 1, 1, device=self.device) < 0.5
            x = torch.where(mirror, x.flip(3), x)
        x = x.contiguous(memory_format=torch.channels_last)
        return x, (self.labels[idx] if self.labels is not None else None)


def balance_weights(labels: torch.Tensor, names: list[str], attributes: dict[str, float]) -> torch.Tensor:
    """Per-image sampling weights that raise each attribute a to about `attributes[a]` of the draws.

    Why: a GAN under-draws rare modes (ours drew bald heads ~20× less often than the classifier
    finds them in real faces), so the discriminator is shown them more often. An image with
    attribute a gets weight max(1, rate_a / share_a), the largest over its listed attributes; the
    rest keep weight 1, so common faces still make up most of the stream.
    """
    unknown = [a for a in attributes if a not in names]
    if unknown:
        raise ValueError(f"unknown attribute(s) {', '.join(unknown)}; expected CelebA names like Bald, Mustache")
    for a, rate in attributes.items():
        if not 0 < rate < 1:
            raise ValueError(f"{a}: balance rate must be between 0 and 1, got {rate}")
    weights = torch.ones(len(labels), device=labels.device)
    for a, rate in attributes.items():
        has = labels[:, names.index(a)] > 0.5
        share = has.float().mean().item()
        if share > 0:
            weights = torch.where(has, weights.clamp(min=max(1.0, rate / share)), weights)
    return weights


def parse_balance(spec: str, default_rate: float) -> dict[str, float]:
    """'Bald:0.3,Mustache' -> {'Bald': 0.3, 'Mustache': default_rate}."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, rate = item.partition(":")
        try:
            out[name.strip()] = float(rate) if rate else default_rate
        except ValueError:
            raise ValueError(f"{item!r}: expected ATTRIBUTE or ATTRIBUTE:RATE, e.g. Bald:0.2") from None
    return out


def random_shift(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Translate each image by up to `pad` px (reflection padding), one integer shift per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device).view(1, h))  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device).view(1, w))  # (n, w)
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """Images in [-1, 1] -> one PNG grid (2-px black padding), written atomically."""
    save_png_grid(images.detach().float().cpu(), path, nrow=nrow, padding=2)


def train_summary(args: argparse.Namespace, data: RunData, device: torch.device, *, steps: int,
                  batch_size: int, images_seen: int, time_s: float, history: list[dict], **metrics) -> dict:
    """The `train` block of a checkpoint: data, length, time, hardware, arguments, metrics."""
    return {
        "data": data.source, "images": len(data.train_images), "heldout_images": len(data.heldout_images),
        "steps": steps, "batch_size": batch_size, "epochs": round(images_seen / len(data.train_images), 2),
        "time_s": round(time_s, 1), "hardware": describe(device),
        "args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))},
        "history": history, **metrics,
    }


class MetricLog:
    """Appends one JSON line per record to run/metrics.jsonl and prints a compact line."""

    def __init__(self, out: Path, resume: bool):
        self.path = out / "metrics.jsonl"
        if not resume:
            self.path.write_text("")
        self.start = time.time()

    def write(self, step: int, **values: float) -> None:
        record = {"step": step, "time_s": round(time.time() - self.start, 1), **values}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

