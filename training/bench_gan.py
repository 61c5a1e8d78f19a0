"""GAN training throughput, fp32 and bf16 side by side: images per second, per CPU-second, GFLOP/s.

    python -m training.bench_gan --device cpu          # every candidate, fp32 and bf16
    python -m training.bench_gan --g-width 64 --d-width 64 --precision bf16   # one config, one precision

Times `GanTrainer.step` (the exact step `train_gan` runs: DiffAugment, EMA, autocast, channels-last)
on synthetic uint8 data already on the device, after warm-up, with the device synchronised before
the clock stops. Without options that shape the model it runs `CANDIDATES` (the shipped G's config
and the generator candidates); without --precision it runs both precisions. Each row reports real
images per second, per second of this process's CPU time (steadier on a shared machine), and the
convolution and matmul arithmetic achieved (counted by torch's FLOP counter on one step) next to
the ceiling that a plain 3×3 convolution reaches here in the same precision.
"""
from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from core.device import autocast, describe, resolve_precision
from training.common import BatchSampler, init_device
from training.train_gan import GanTrainer, parse_args

CANDIDATES: dict[str, list[str]] = {
    "shipped G32/D32": ["--g-width", "32", "--d-width", "32"],
    "dcgan G64/D64": ["--g-width", "64", "--d-width", "64"],
    "dcgan G64/D64 CPU-shaped": ["--g-width", "64", "--d-width", "64", "--d-downsample", "pool",
                                 "--to-rgb", "subpixel"],
    "dcgan G32/D32 CPU-shaped": ["--g-width", "32", "--d-width", "32", "--d-downsample", "pool",
                                 "--to-rgb", "subpixel"],
    "style G16/D64 pool-D": ["--arch", "style", "--g-width", "16", "--d-width", "64", "--d-downsample", "pool",
                             "--r1", "0.2", "--r1-every", "16"],
    "fast G32/D32 self-supervised D": ["--arch", "fast", "--g-width", "32", "--d-width", "32", "--d-recon", "1"],
}
MODEL_OPTIONS = ("--arch", "--g-width", "--d-width", "--d-downsample", "--loss", "--conditional", "--preset",
                 "--upsample", "--to-rgb", "--d-norm", "--diffaug", "--r1", "--ema", "--d-recon")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def conv_ceiling(device: torch.device, precision, batch: int = 128, reps: int = 3) -> float:
    """GFLOP/s of a 3×3, 128→128 convolution at 16×16 (forward + backward, channels-last, autocast;
    the input in the compute dtype, as activations inside the network are)."""
    dtype = torch.bfloat16 if precision.bf16 else torch.float32
    x = torch.randn(batch, 128, 16, 16, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w = torch.randn(128, 128, 3, 3, device=device, requires_grad=True)

    def once() -> None:
        with autocast(device, precision=precision):
            y = F.conv2d(x, w, padding=1)
        y.float().sum().backward()

    once()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    _sync(device)
    flops = 3 * 2 * batch * 128 * 128 * 9 * 16 * 16  # forward, grad of input, grad of weight
    return flops / ((time.perf_counter() - t0) / reps) / 1e9


def step_flops(trainer: GanTrainer, sampler: BatchSampler) -> float:
    """Convolution and matmul FLOPs of one training step (forward and backward); NaN where the
    counter cannot follow the step (a penalty's double backward)."""
    try:
        with FlopCounterMode(display=False) as counter:
            trainer.step(1, sampler)  # step 1: no lazy R1 (it falls on multiples of --r1-every)
    except (AssertionError, RuntimeError):
        return float("nan")
    return float(counter.get_total_flops())


def bench_one(argv: list[str], name: str) -> dict:
    args = parse_args(argv)
    device = init_device(args)
    precision = resolve_precision(args.precision, device)
    steps = args.steps or (50 if device.type == "cuda" else 5)
    warmup = 10 if args.compile else 3
    images = torch.randint(0, 256, (4096, 3, args.image_size, args.image_size), dtype=torch.uint8, device=device)
    sampler = BatchSampler(images.contiguous(memory_format=torch.channels_last), args.batch_size)
    trainer = GanTrainer(args, device)
    trainer.gen.train()
    trainer.disc.train()
    flops = step_flops(trainer, sampler) if not args.compile else float("nan")
    for i in range(warmup):
        trainer.step(i, sampler)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        trainer.step(warmup + i, sampler)
    _sync(device)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    imgs = steps * sampler.batch_size * args.n_critic
    return {
        "name": name, "device": describe(device), "precision": precision.name, "precision_reason": precision.reason,
        "batch_size": sampler.batch_size, "steps": steps, "loss": args.loss, "arch": args.arch,
        "g_width": args.g_width, "d_width": args.d_width, "d_downsample": args.d_downsample,
        "compile": args.compile, "img_per_s": imgs / elapsed, "ms_per_step": 1000 * elapsed / steps,
        "img_per_cpu_s": imgs / cpu, "gflop_per_s": flops * steps / elapsed / 1e9,
        "ceiling_gflop_per_s": conv_ceiling(device, precision, sampler.batch_size),
    }


def main(argv: list[str] | None = None) -> dict:
    """Runs the rows and prints a table; returns the row of the precision `auto` picks (last config),
    with every row under "rows"."""
    argv = list(sys.argv[1:] if argv is None else argv)
    base = ["--data", "(synthetic)"] if "--data" not in argv else []
    if "--batch-size" not in argv:
        base += ["--batch-size", "128"]  # the reference point: batch 128
    shaped = any(a.split("=")[0] in MODEL_OPTIONS for a in argv)
    configs = {"given": []} if shaped else CANDIDATES
    precisions = [None] if any(a.split("=")[0] == "--precision" for a in argv) else ["fp32", "bf16"]
    rows = []
    for name, options in configs.items():
        for p in precisions:
            row = bench_one(base + options + argv + ([] if p is None else ["--precision", p]), name)
            rows.append(row)
            print(f"{row['device']} | {name} | {row['arch']} G{row['g_width']}/D{row['d_width']} {row['d_downsample']}"
                  f" | batch {row['batch_size']} | {row['precision']:4s} | {row['ms_per_step']:7.1f} ms/step"
                  f" | {row['img_per_s']:6.1f} img/s | {row['img_per_cpu_s']:6.1f} img per CPU-second"
                  f" | {row['gflop_per_s']:5.0f} GFLOP/s of a {row['ceiling_gflop_per_s']:.0f} conv ceiling", flush=True)
    for name in configs:
        pair = {r["precision"]: r for r in rows if r["name"] == name}
        if "fp32" in pair and "bf16" in pair:
            print(f"{name}: bf16 {pair['bf16']['img_per_s'] / pair['fp32']['img_per_s']:.2f}× fp32 img/s"
                  f" ({pair['bf16']['precision_reason']})")
    device = init_device(parse_args(base + argv))
    auto = resolve_precision("auto", device).name
    last = [r for r in rows if r["name"] == rows[-1]["name"]]
    pick = next((r for r in last if r["precision"] == auto), last[-1])
    return {**pick, "rows": rows}


if __name__ == "__main__":
    main()
