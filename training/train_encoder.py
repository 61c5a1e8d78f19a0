"""Train the encoder E (image -> z) for GAN inversion against a frozen generator.

    python -m training.train_encoder --data ../shared/data/celeba --generator runs/gan/generator.pt \
        --classifier runs/classifier/classifier.pt --out runs/encoder
    torchrun --nproc_per_node 8 -m training.train_encoder ...   # DDP: --batch-size is per rank

The encoder works at the generator's resolution (64 or 128 px, read from its checkpoint); the
classifier of the feature loss must have that resolution too.

Each step sees (a) generated faces x = G(z): loss ‖E(x) − z‖² plus the image loss of G(E(x))
vs x; and (b) real training photos: the image loss of G(E(x)) vs x, plus a prior term that keeps
E(x) at the typical norm of z. Image loss = pixel MSE + our classifier's feature distance.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from tqdm import tqdm

from core.checkpoint import load_checkpoint, save_checkpoint, state_hash
from core.data import to_model_range
from core.device import autocast
from core.latent import on_sphere, sample_codes
from core.losses import image_distance
from core.metrics import psnr
from core.models import Encoder, EncoderConfig, edit_space
from training.common import (BatchSampler, MetricLog, base_parser, batch_line, param_hash, resume_run, run_precision,
                             save_grid, setup, total_steps, train_summary)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = base_parser(__doc__.split("\n")[0], "runs/encoder")
    p.add_argument("--generator", required=True, help="frozen generator checkpoint")
    p.add_argument("--classifier", required=True, help="classifier checkpoint for the feature loss")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--w-latent", type=float, default=1.0, help="weight of ‖E(G(z)) − z‖²")
    p.add_argument("--w-pixel", type=float, default=1.0)
    p.add_argument("--w-feature", type=float, default=0.2)
    p.add_argument("--w-prior", type=float, default=0.1, help="keeps ‖E(x)‖²/d near 1 on real photos")
    p.add_argument("--init", default=None, help="start from this encoder's weights (fresh optimiser and schedule): "
                   "for a generator that was fine-tuned, not retrained")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="time budget: the cosine schedule follows whichever of steps or time runs out first")
    args = p.parse_args(argv)
    if args.smoke:
        args.width = 8
        args.batch_size = min(args.batch_size, 16)
        args.steps = args.steps or 20
        args.log_every = 2
    return args


@torch.no_grad()
def heldout_psnr(encoder: Encoder, gen: torch.nn.Module, images: torch.Tensor, batch: int = 250) -> float:
    """Mean PSNR of G(E(x)) vs x on held-out faces, in the [0, 1] range."""
    encoder.eval()
    values = []
    for i in range(0, len(images), batch):
        x = to_model_range(images[i:i + batch])
        values.append(psnr(gen(encoder(x)), x))
    encoder.train()
    return float(torch.cat(values).mean())


def train(args: argparse.Namespace) -> dict:
    args.image_size = int(load_checkpoint(args.generator, "generator").config.get("image_size", 64))
    device, data, out = setup(args)
    dist = data.dist
    precision = run_precision(args, device)
    steps = total_steps(args, len(data.train_images), default_epochs=40, world=dist.world)
    # the space the engine edits in: a style G's w (core.models.edit_space), so the encoder predicts w
    gen = edit_space(load_checkpoint(args.generator, "generator", device).model)
    sphere = on_sphere(gen)
    classifier = load_checkpoint(args.classifier, "classifier", device).model
    if classifier.config.image_size != args.image_size:
        raise SystemExit(f"--classifier {args.classifier}: {classifier.config.image_size} px, but the generator "
                         f"makes {args.image_size} px faces; train a classifier with --image-size {args.image_size}")
    z_dim = gen.z_dim
    if args.init:
        encoder = load_checkpoint(args.init, "encoder").model.float().train()
        if encoder.config.z_dim != z_dim:
            raise SystemExit(f"--init {args.init}: encoder outputs z of size {encoder.config.z_dim}, the generator takes {z_dim}")
        encoder.requires_grad_(True)
    else:
        encoder = Encoder(EncoderConfig(z_dim=z_dim, width=args.width, image_size=args.image_size))
    encoder = encoder.to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(encoder.parameters(), lr=args.lr, betas=(0.9, 0.99))
    path = out / "encoder.pt"
    start, elapsed_before, history = resume_run(args, dist, path, "encoder", encoder, opt, steps)
    ddp = dist.wrap(encoder)
    enc_fn = torch.compile(ddp) if args.compile else ddp
    half = max(1, args.batch_size // 2)
    sampler = BatchSampler(data.train_images, half, rank=dist.rank, world=dist.world, seed=args.seed + start)
    log = MetricLog(out, resume=start > 0, enabled=dist.main)
    if dist.enabled and dist.main:
        print(batch_line(dist, 2 * sampler.batch_size))
    sums, n_sum, t0, result = torch.zeros(3, device=device), 0, time.time(), {}
    g_hash = state_hash(gen)
    show = to_model_range(data.heldout_images[:32])
    encoder.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="encoder", unit="step",
               disable=args.smoke or not dist.main)
    budget_s = 60 * args.max_minutes if args.max_minutes else None
    for step in bar:
        progress = step / steps
        if budget_s is not None:  # rank 0's clock on every rank: one learning rate, one last step
            progress = max(progress, dist.agree(time.time() - t0) / budget_s)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        for group in opt.param_groups:
            group["lr"] = lr
        z = sample_codes(gen, half).to(device)
        with torch.no_grad():
            x_gen = gen(z).contiguous(memory_format=torch.channels_last)
        x_real, _ = sampler.next()
        with autocast(device, precision=precision):
            z_hat = enc_fn(torch.cat([x_gen, x_real])).float()
            recon = gen(z_hat)
            # in the autocast region too: recon is bf16 there, and the classifier's weights are fp32
            img = image_distance(classifier, recon, torch.cat([x_gen, x_real]), args.w_pixel, args.w_feature).float()
        z_gen, z_real = z_hat[:half], z_hat[half:]
        latent = (z_gen - z).square().mean()
        prior = (z_real.square().mean(1) - 1).square().mean() if sphere else z_real.new_zeros(())
        loss = args.w_latent * latent + img.mean() + args.w_prior * prior
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sums += torch.stack([loss.detach(), latent.detach(), img[half:].detach().mean()])
        n_sum += 1
        done = step + 1
        out_of_time = budget_s is not None and dist.agree(time.time() - t0) >= budget_s
        if done % args.log_every == 0 or done == steps or out_of_time:
            l_all, l_lat, l_real = (dist.mean_(sums) / n_sum).tolist()
            if not math.isfinite(l_all):
                raise SystemExit(f"training diverged at step {done} (loss is NaN/inf); lower --lr")
            record = {"loss": round(l_all, 5), "latent": round(l_lat, 5), "real_image": round(l_real, 5)}
            history.append({"step": done, **record})
            log.write(done, **record)
            bar.set_postfix(loss=f"{l_all:.4f}", latent=f"{l_lat:.3f}")
            sums.zero_()
            n_sum = 0
        if (done % args.sample_every == 0 or done == steps or out_of_time) and dist.main:
            value = heldout_psnr(encoder, gen, data.heldout_images)
            result = {"heldout_psnr_db": round(value, 2)}
            log.write(done, **result)
            tqdm.write(f"step {done}: held-out PSNR {value:.2f} dB")
            with torch.no_grad():
                encoder.eval()
                save_grid(torch.cat([show, gen(encoder(show))]), out / "samples" / f"step{done:07d}.png", nrow=8)
                encoder.train()
            summary = train_summary(args, data, device, steps=done, batch_size=2 * half, images_seen=done * half,
                                    time_s=elapsed_before + time.time() - t0, history=history,
                                    generator_hash=g_hash, heldout=result)
            save_checkpoint(path, "encoder", encoder, attributes=data.attribute_names, train=summary,
                            extra={"resume": {"step": done, "opt": opt.state_dict()}})
        if out_of_time:
            if dist.main:
                tqdm.write(f"time budget of {args.max_minutes:g} min used up at step {done}")
            break
    dist.finish()
    if dist.main:
        print(f"done: held-out PSNR {result.get('heldout_psnr_db', float('nan')):.2f} dB "
              f"in {elapsed_before + time.time() - t0:.0f} s; checkpoint {path}")
    return {"steps": steps, "history": history, "checkpoint": str(path), "rank": dist.rank,
            "weights": {"encoder": param_hash(encoder)}, **result}


def main(argv: list[str] | None = None) -> dict:
    return train(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
