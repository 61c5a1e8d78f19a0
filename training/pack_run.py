"""A GAN run folder as one compact file, so a long CPU run can outlast the machine it runs on.

    python -m training.pack_run pack runs/v3 resources/training/v3.run.pt     # after a stop
    python -m training.pack_run unpack resources/training/v3.run.pt runs/v3   # then train_gan --resume

The pack holds the run's generator.pt and discriminator.pt (weights, EMA, resume state) and its
metrics.jsonl: weights in float16, Adam's moments in bfloat16 (their range matters more than
their last digits), everything else as it was; unpacking restores float32. One file, replaced by
each pack (never one per step), read back with `weights_only=True`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from core.atomic import atomic_write, save_tensor_atomic

FILES = ("generator.pt", "discriminator.pt")
MOMENTS = ("exp_avg", "exp_avg_sq")


def _squeeze(value: Any, key: str = "") -> Any:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.float32 and value.numel() > 1:
            return value.to(torch.bfloat16 if key in MOMENTS else torch.float16)
        return value
    if isinstance(value, dict):
        return {k: _squeeze(v, k if isinstance(k, str) else "") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_squeeze(v, key) for v in value)
    return value


def _expand(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_expand(v) for v in value)
    return value


def pack(run: Path, out: Path) -> Path:
    missing = [f for f in FILES if not (run / f).exists()]
    if missing:
        raise SystemExit(f"{run}: no {missing[0]} (not a train_gan run folder)")
    blob = {name: _squeeze(torch.load(run / name, map_location="cpu", weights_only=True)) for name in FILES}
    metrics = run / "metrics.jsonl"
    blob["metrics.jsonl"] = metrics.read_text() if metrics.exists() else ""
    return save_tensor_atomic(blob, out)


def unpack(packed: Path, run: Path) -> Path:
    blob = torch.load(packed, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or not all(name in blob for name in FILES):
        raise SystemExit(f"{packed}: not a packed train_gan run")
    run.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        save_tensor_atomic(_expand(blob[name]), run / name)
    text = str(blob.get("metrics.jsonl", ""))
    atomic_write(run / "metrics.jsonl", lambda fh: fh.write(text.encode()))
    return run


def main(argv: list[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 3 or argv[0] not in ("pack", "unpack"):
        raise SystemExit("usage: python -m training.pack_run pack RUN_FOLDER FILE | unpack FILE RUN_FOLDER")
    what, a, b = argv
    done = pack(Path(a), Path(b)) if what == "pack" else unpack(Path(a), Path(b))
    print(f"{what}ed {a} -> {done}")
    return done


if __name__ == "__main__":
    main()
