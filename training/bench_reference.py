"""The reference point for `bench_gan`: the pytorch/examples DCGAN recipe, timed on the same card.

    python -m training.bench_reference --data ../shared/data/celeba [--workers 8] [--steps 200]

The issue's yardstick for our training speed is pytorch/examples' `dcgan/main.py` on this data:
JPEGs decoded by a DataLoader (ImageFolder, Resize + CenterCrop 64, 8 workers, batch 128), fp32,
ngf = ndf = 64, Adam(2e-4, 0.5), BCE with a sigmoid D, one D step (real, then fake) and one G
step per batch. This is that recipe written out (our code, its layer sizes), so both numbers come
from the same machine in the same session. Prints images per second after warm-up, wall clock,
the device synchronised before the clock stops.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from core.device import describe, resolve_device


def reference_generator(nz: int = 100, ngf: int = 64) -> nn.Sequential:
    def up(i: int, o: int, first: bool = False) -> list[nn.Module]:
        return [nn.ConvTranspose2d(i, o, 4, 1 if first else 2, 0 if first else 1, bias=False), nn.BatchNorm2d(o),
                nn.ReLU(True)]
    return nn.Sequential(*up(nz, ngf * 8, True), *up(ngf * 8, ngf * 4), *up(ngf * 4, ngf * 2), *up(ngf * 2, ngf),
                         nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh())


def reference_discriminator(ndf: int = 64) -> nn.Sequential:
    def down(i: int, o: int, bn: bool = True) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 4, 2, 1, bias=False), *([nn.BatchNorm2d(o)] if bn else []), nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*down(3, ndf, bn=False), *down(ndf, ndf * 2), *down(ndf * 2, ndf * 4),
                         *down(ndf * 4, ndf * 8), nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a folder with images in sub-folders (the CelebA folder works: "
                   "its img_align_celeba/ is the one 'class')")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--steps", type=int, default=200, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=20)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    tf = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
                             transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    data = datasets.ImageFolder(root=args.data, transform=tf)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True,
                        persistent_workers=args.workers > 0)
    gen, disc = reference_generator().to(device), reference_discriminator().to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def batches():
        while True:
            yield from loader

    it, done, t0 = batches(), 0, 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            t0 = time.perf_counter()
        real = next(it)[0].to(device)
        n = real.shape[0]
        ones, zeros = torch.ones(n, device=device), torch.zeros(n, device=device)
        disc.zero_grad()
        bce(disc(real).view(-1), ones).backward()
        fake = gen(torch.randn(n, 100, 1, 1, device=device))
        bce(disc(fake.detach()).view(-1), zeros).backward()
        opt_d.step()
        gen.zero_grad()
        bce(disc(fake).view(-1), ones).backward()
        opt_g.step()
        done += n if step >= args.warmup else 0
    sync()
    elapsed = time.perf_counter() - t0
    result = {"device": describe(device), "batch_size": args.batch_size, "workers": args.workers,
              "steps": args.steps, "img_per_s": done / elapsed}
    print(f"{result['device']} | pytorch/examples DCGAN recipe | batch {args.batch_size} | {args.workers} loader "
          f"workers | {args.steps} steps | {result['img_per_s']:.0f} img/s")
    return result


if __name__ == "__main__":
    main()
