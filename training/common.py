"""What every training script shares: arguments, seeding, on-device data, grids, logging, ranks.

Data lives on the training device as uint8 for the whole run; a batch is an index gather plus a
cast, so a step never waits on the host (no DataLoader, no per-step `.item()`).

Under `torchrun` (RANK and WORLD_SIZE in the environment) each process is one rank of a
DistributedDataParallel job: gloo on CPU, NCCL on GPUs, every rank holds the whole uint8 tensor and
draws its own disjoint part of each shared-seed permutation; rank 0 alone writes files. Without
torchrun there is no process group and every rank-aware branch is the single-process code.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from core.data import CelebATensors, load_datasets, to_model_range
from core.device import PRECISIONS, Precision, describe, resolve_device, resolve_precision
from core.export import save_png_grid
from core.messages import one_line

SMOKE_IMAGES = 48  # images a --smoke run trains on
IMAGE_SIZES = (64, 128)
RANK_SEED_STRIDE = 1_000_003  # rank r draws its noise from seed + r·stride: no two ranks share a stream
T = TypeVar("T")


def base_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, nargs="+",
                   help="data folder(s): CelebA in the official layout, or unaligned crops in img/ with the same "
                        "list files (aligned by landmarks when first decoded); several are joined")
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
    p.add_argument("--compile", action="store_true", help="torch.compile the models (CUDA; on the CPU it measured slower, resources/MODELS.md)")
    p.add_argument("--cache-dir", default=None, help="where the decoded dataset is cached")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: every core)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="compute precision: auto = bf16 where the device has native bf16 units (CUDA, AMX, "
                        "AVX512-BF16), else fp32; weights, optimiser state, losses and statistics stay fp32")
    p.add_argument("--smoke", action="store_true", help="tiny models, few steps: a quick end-to-end check")
    p.add_argument("--image-size", type=int, choices=IMAGE_SIZES, default=64,
                   help="training resolution (the dataset is decoded and cached at this size)")
    return p


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Dist:
    """This process's place in a torchrun job; a plain run is rank 0 of 1 with no process group.

    Every method is the identity (or nothing) for a plain run, so the scripts keep one code path.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this process started the group, so it ends it

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints, writes checkpoints, sample grids and metrics.jsonl."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around `module` (gradients averaged over ranks); itself when alone."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, output_device=self.device.index if ids else None)

    def reseed(self, seed: int) -> None:
        """Per-rank noise (z, flips, augmentation): rank 0 of 1 gets exactly torch.manual_seed(seed)."""
        torch.manual_seed(seed + RANK_SEED_STRIDE * self.rank)

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def mean_(self, t: torch.Tensor) -> torch.Tensor:
        """Average a tensor over ranks in place (once per log interval: the logged losses are the job's)."""
        if self.enabled:
            torch.distributed.all_reduce(t)
            t /= self.world
        return t

    def agree(self, value: float) -> float:
        """Rank 0's value on every rank, for decisions that must not differ (a wall-clock budget)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.broadcast(t, src=0)
        return float(t.item())

    def from_main(self, fn: Callable[[], T]) -> T:
        """fn() on rank 0 only, its result (or its SystemExit) on every rank.

        Why: a checkpoint to resume from is where rank 0 wrote it, which on a multi-node job is
        only rank 0's disk; the other ranks get its content through the process group.
        """
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        if self.main:
            try:
                box = [("ok", fn())]
            except SystemExit as exc:
                box = [("exit", str(exc))]
        torch.distributed.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        status, value = box[0]
        if status == "exit":
            raise SystemExit(value)
        return value

    def finish(self) -> None:
        """Wait for rank 0's last checkpoint, then end the group if this process began it."""
        self.barrier()
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun job this process is part of (RANK/WORLD_SIZE set), or stay alone.

    NCCL for GPUs, each rank on the GPU of its LOCAL_RANK; gloo on CPU. A group that already
    exists (a test that started one) is joined, not restarted.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world,
                                             device_id=device if device.type == "cuda" else None)
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device, owns_group=owns)


def param_hash(*modules: torch.nn.Module) -> str:
    """Short hash of the parameters (not buffers): what DDP keeps identical on every rank.

    BatchNorm running statistics are per-rank under DDP (rank 0's are saved), so they are left out.
    """
    h = hashlib.sha1()
    for module in modules:
        for name, p in module.named_parameters():
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


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
    dist: Dist = field(default_factory=Dist)


def init_device(args: argparse.Namespace, device: torch.device | None = None) -> torch.device:
    """Threads, seeds and the fast CUDA settings (cuDNN autotune, TF32) for a run or a benchmark."""
    if args.threads:  # torch's default is every core, which training wants (the app keeps one free)
        torch.set_num_threads(args.threads)
    device = device if device is not None else resolve_device(args.device)
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


def read_gan_run(run: Path, generator_class: type, grown: str) -> tuple[Checkpoint, dict]:
    """A train_gan run folder's generator checkpoint and its resume state, for tools that grow a G of
    `generator_class` (SystemExit naming what is missing or, with `grown`, the G the tool takes)."""
    g_path = run / "generator.pt"
    if not g_path.exists() or not (run / "discriminator.pt").exists():
        raise SystemExit(f"{run}: no generator.pt and discriminator.pt (not a train_gan run folder)")
    ck = load_checkpoint(g_path, "generator")
    if not isinstance(ck.model, generator_class):
        raise SystemExit(f"{g_path}: only {grown}")
    resume = ck.extra.get("resume") if isinstance(ck.extra, dict) else None
    if not isinstance(resume, dict):
        raise SystemExit(f"{g_path}: holds no resume state")
    return ck, resume


def write_grown_run(run: Path, out: Path, ck: Checkpoint, ema: torch.nn.Module, resume: dict,
                    new_args: dict, grown: dict) -> Path:
    """Run folder `out`, ready for --resume: the grown G (`ema`, with `resume` holding the raw G and
    its Adam state) and `run`'s D, optimiser state and metrics copied unchanged. `new_args` are the
    train_gan options the grown G needs; `grown` ({"widened_from": ...}) records what it grew from."""
    train = {**ck.train, "args": {**ck.train.get("args", {}), **new_args}, **grown}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "generator.pt", "generator", ema, attributes=ck.attributes, train=train,
                    extra={"resume": resume})
    shutil.copyfile(run / "discriminator.pt", out / "discriminator.pt")
    if (run / "metrics.jsonl").exists():
        shutil.copyfile(run / "metrics.jsonl", out / "metrics.jsonl")
    return out


def resume_failed(path: Path, exc: BaseException) -> SystemExit:
    """One line for a run folder whose checkpoint does not fit this run's options."""
    first = one_line(exc, 200)
    return SystemExit(f"--resume: {path} does not fit this run's options (another preset or size?): {first}; "
                      "use the run's original options, or --overwrite to start afresh")


def resume_run(args: argparse.Namespace, dist: Dist, path: Path, kind: str, model: torch.nn.Module,
               opt: torch.optim.Optimizer, steps: int) -> tuple[int, float, list[dict]]:
    """The resume block of a one-model script: (start step, seconds so far, history).

    Rank 0 alone reads `path` (`Dist.from_main`), every rank loads the same weights and optimiser
    state; then each rank draws its own noise (`Dist.reseed`). Nothing to resume: (0, 0.0, []).
    """
    def read() -> dict | None:
        if not path.exists():
            return None
        ck = load_checkpoint(path, kind)
        return {"model": ck.model.state_dict(), "resume": resume_state(ck),
                "time_s": float(ck.train.get("time_s", 0)), "history": list(ck.train.get("history", []))}

    state = dist.from_main(read) if args.resume else None
    if state is None:
        if dist.enabled:
            dist.reseed(args.seed)  # the same init on every rank (seeded alike), its own noise from here on
        return 0, 0.0, []
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["resume"]["opt"])
        start = int(state["resume"]["step"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise resume_failed(path, exc) from None
    dist.reseed(args.seed + start)
    if dist.main:
        print(f"resumed at step {start}/{steps}")
    return start, state["time_s"], state["history"]


def setup(args: argparse.Namespace) -> tuple[torch.device, RunData, Path]:
    """Device, seeds, data on the device, run folder; prints one line on what it got.

    Under torchrun, `data.dist` says which rank this is; each node's local rank 0 decodes the
    dataset first so that the node's other ranks read its cache instead of decoding it again.
    """
    dist = init_distributed(resolve_device(args.device))
    if dist.main:
        check_run_folder(Path(args.out), args.resume, getattr(args, "overwrite", False))
    device = init_device(args, dist.device)
    if dist.local_rank != 0:
        dist.barrier()
    ds: CelebATensors = load_datasets(args.data, size=args.image_size, cache_dir=args.cache_dir,
                                      progress=not args.smoke and dist.main)
    if dist.local_rank == 0:
        dist.barrier()
    train_x, train_y = ds.split(held_out=False)
    held_x, held_y = ds.split(held_out=True)
    if args.smoke:
        train_x, train_y = train_x[:SMOKE_IMAGES], train_y[:SMOKE_IMAGES]
        held_x, held_y = held_x[:SMOKE_IMAGES], held_y[:SMOKE_IMAGES]
    if len(train_x) == 0:
        raise SystemExit(f"{' + '.join(args.data)}: no training images left after holding out the evaluation split")
    if len(train_x) < dist.world:
        raise SystemExit(f"{' + '.join(args.data)}: {len(train_x)} training images cannot be shared by {dist.world} ranks")
    out = Path(args.out)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        ranks = f" | {dist.world} ranks ({'NCCL' if device.type == 'cuda' else 'gloo'})" if dist.enabled else ""
        skipped = f", {ds.unaligned} crops without a face skipped" if ds.unaligned else ""
        print(f"device {describe(device)} | {run_precision(args, device).describe()} | {len(train_x)} training, "
              f"{len(held_x)} held-out images ({ds.missing} listed but missing{skipped}) | run folder {out}{ranks}")
    data = RunData(
        train_images=train_x.to(device).contiguous(memory_format=torch.channels_last),
        train_labels=train_y.to(device).float(),
        heldout_images=held_x.to(device),
        heldout_labels=held_y.float(),
        attribute_names=ds.attribute_names,
        source=" + ".join(str(Path(d).resolve()) for d in args.data),
        missing=ds.missing,
        dist=dist,
    )
    return device, data, out


def run_precision(args: argparse.Namespace, device: torch.device) -> Precision:
    """The run's `Precision` from --precision (a namespace without one, as in older callers: auto)."""
    return resolve_precision(getattr(args, "precision", "auto"), device)


def batch_line(dist: Dist, batch: int) -> str:
    """The printout's statement of the effective batch: per-rank batch × ranks."""
    return f"batch {batch} per rank × {dist.world} ranks = {batch * dist.world} effective"


def total_steps(args: argparse.Namespace, n_images: int, default_epochs: float, world: int = 1) -> int:
    """Optimiser steps for --steps, or for --epochs passes at the effective batch (per-rank × ranks)."""
    if args.steps is not None:
        return max(1, args.steps)
    epochs = args.epochs if args.epochs is not None else default_epochs
    return max(1, round(epochs * n_images / (args.batch_size * world)))


class BatchSampler:
    """Shuffled passes over an on-device uint8 tensor; yields float batches in [-1, 1].

    With `weights`, each pass is drawn with replacement in proportion to them instead of a
    permutation (see `balance_weights`). With `rank`/`world` > 1, every rank draws the same pass
    from its own generator seeded with `seed` and keeps its disjoint slice (pass[rank::world]),
    so together the ranks see each image once per pass; flips stay on the rank's own stream.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, labels: torch.Tensor | None = None,
                 flip: bool = True, weights: torch.Tensor | None = None, rank: int = 0, world: int = 1,
                 seed: int = 0):
        self.images, self.labels, self.flip = images, labels, flip
        self.rank, self.world = rank, world
        self.share = len(images) // world  # images per rank and pass (the remainder sits this pass out)
        self.batch_size = min(batch_size, self.share)
        self.device = images.device
        self._gen = torch.Generator(device=self.device).manual_seed(seed) if world > 1 else None
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
                self._perm = torch.randperm(len(self.images), device=self.device, generator=self._gen)
            else:
                self._perm = torch.multinomial(self.weights, len(self.images), replacement=True, generator=self._gen)
            if self.world > 1:
                self._perm = self._perm[self.rank::self.world][:self.share]
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


def stream_shifts(labels: torch.Tensor, names: list[str], weights: torch.Tensor, top: int = 6) -> str:
    """One line naming the attributes whose share in the weighted stream moved most from the data's.

    Why: raising one rare attribute raises everything it comes with (bald, grey, moustache and
    glasses all raise Male), and G learns the stream it is shown, so FD against real faces pays
    for a skewed stream. The line lets a run's command be checked before hours are spent on it.
    """
    has = (labels > 0.5).float()
    real = has.mean(0)
    stream = (weights / weights.sum()) @ has
    order = (stream - real).abs().argsort(descending=True)[:top]
    parts = [f"{names[i]} {100 * stream[i]:.1f} % (data {100 * real[i]:.1f} %)" for i in order.tolist()]
    return "balanced stream: " + ", ".join(parts)


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
    """The `train` block of a checkpoint: data, length, time, hardware, arguments, metrics.

    `batch_size` and `images_seen` are per rank; `effective_batch_size` is per rank × `world_size`.
    """
    world = data.dist.world
    return {
        "data": data.source, "images": len(data.train_images), "heldout_images": len(data.heldout_images),
        "steps": steps, "batch_size": batch_size, "world_size": world, "effective_batch_size": batch_size * world,
        "epochs": round(images_seen * world / len(data.train_images), 2),
        "time_s": round(time_s, 1), "hardware": describe(device) + (f" × {world} ranks" if world > 1 else ""),
        "precision": run_precision(args, device).describe(),
        "args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))},
        "history": history, **metrics,
    }


class MetricLog:
    """Appends one JSON line per record to run/metrics.jsonl and prints a compact line.

    Off (writes nothing) on ranks other than 0.
    """

    def __init__(self, out: Path, resume: bool, enabled: bool = True):
        self.path, self.enabled = out / "metrics.jsonl", enabled
        if not resume and enabled:
            self.path.write_text("")
        self.start = time.time()

    def write(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time_s": round(time.time() - self.start, 1), **values}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

