"""GAN training throughput: generator + discriminator steps per second, in images per second.

    python -m training.bench_gan [--device cuda] [--batch-size 128] [--compile] [--steps 50]

Times `GanTrainer.step` (the exact step `train_gan` runs: DiffAugment, EMA, bf16 autocast on
CUDA, channels-last) on synthetic uint8 data already on the device, after warm-up, with the
device synchronised before the clock stops. Reports real images consumed per second, and per second
of this process's CPU time (steadier on a shared machine, where wall time includes waiting for a core).
"""
from __future__ import annotations

import sys
import time

import torch

from core.device import describe
from training.common import BatchSampler, init_device
from training.train_gan import GanTrainer, parse_args


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = ["--data", "(synthetic)"] if "--data" not in argv else []
    if "--batch-size" not in argv:
        extra += ["--batch-size", "128"]  # the reference point: batch 128
    parser_args = parse_args(extra + argv)
    device = init_device(parser_args)
    steps = parser_args.steps or (50 if device.type == "cuda" else 5)
    warmup = 10 if parser_args.compile else 3
    images = torch.randint(0, 256, (4096, 3, 64, 64), dtype=torch.uint8, device=device)
    sampler = BatchSampler(images.contiguous(memory_format=torch.channels_last), parser_args.batch_size)
    trainer = GanTrainer(parser_args, device)
    trainer.gen.train()
    trainer.disc.train()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for i in range(warmup):
        trainer.step(i, sampler)
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        trainer.step(warmup + i, sampler)
    sync()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    imgs = steps * sampler.batch_size * parser_args.n_critic
    result = {
        "device": describe(device), "batch_size": sampler.batch_size, "steps": steps,
        "loss": parser_args.loss, "arch": parser_args.arch, "g_width": parser_args.g_width,
        "d_width": parser_args.d_width,
        "compile": parser_args.compile, "img_per_s": imgs / elapsed, "ms_per_step": 1000 * elapsed / steps,
        "img_per_cpu_s": imgs / cpu,
    }
    print(f"{result['device']} | batch {result['batch_size']} | {parser_args.loss} | {parser_args.arch} "
          f"G{parser_args.g_width}/D{parser_args.d_width} | diffaug {parser_args.diffaug} | ema {parser_args.ema:g}"
          f" | r1 {parser_args.r1:g}/{parser_args.r1_every}"
          f" | compile={parser_args.compile} | {result['ms_per_step']:.1f} ms/step | {result['img_per_s']:.0f} img/s"
          f" | {result['img_per_cpu_s']:.0f} img per CPU-second")
    return result


if __name__ == "__main__":
    main()
