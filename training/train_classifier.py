"""Train the 40-attribute CelebA classifier (multi-label BCE) and report held-out accuracy.

    python -m training.train_classifier --data ../shared/data/celeba --out runs/classifier
    torchrun --nproc_per_node 8 -m training.train_classifier --data ...   # DDP: --batch-size is per rank

The classifier is the app's readout, the steering objective, the feature space of FD_cls and
the perceptual loss of inversion, so its held-out accuracy is reported per attribute.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.device import autocast
from core.messages import one_line
from core.metrics import attribute_accuracy
from core.models import MODEL_KINDS
from training.common import (BatchSampler, MetricLog, base_parser, batch_line, param_hash, random_shift, resume_run,
                             run_precision, setup, total_steps, train_summary)


def parse_args(argv: list[str] | None, description: str = __doc__.split("\n")[0], out: str = "runs/classifier",
               width: int = 32, dropout: float = 0.2, seed: int = 0, epochs: float = 30) -> argparse.Namespace:
    p = base_parser(description, out)
    p.set_defaults(seed=seed, default_epochs=epochs)
    p.add_argument("--width", type=int, default=width)
    p.add_argument("--dropout", type=float, default=dropout)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps before the cosine decay")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (same kind and width; fresh "
                   "optimiser and schedule): a fine-tune")
    p.add_argument("--adversarial", type=float, default=0.0, metavar="EPS",
                   help="train on adversarial images: a random start and one signed-gradient step within ±EPS per "
                        "pixel of the [-1, 1] range (fast adversarial training); 0: off")
    args = p.parse_args(argv)
    if not (math.isfinite(args.adversarial) and 0 <= args.adversarial <= 0.5):
        p.error(f"--adversarial must be in [0, 0.5], got {args.adversarial}")
    if args.smoke:
        args.width = 8
        args.batch_size = min(args.batch_size, 16)
        args.steps = args.steps or 30
        args.log_every = 5
        args.warmup = 0
        args.lr = 5e-3
    return args


def learning_rate(args: argparse.Namespace, step: int, steps: int) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, steps - args.warmup)
    return args.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def adversarial_images(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, eps: float,
                       run: Callable[[], object]) -> torch.Tensor:
    """`x` moved within ±eps per pixel to raise the BCE loss: a uniform random start, then one signed
    gradient step of 1.25·eps, clipped back (Wong et al. 2020). A classifier trained on these has
    gradients that change what a face looks like rather than invisible pixel patterns: the evaluator
    agrees with the edits it steers more often, and they are larger (log: "a robust steering classifier")."""
    delta = torch.empty_like(x).uniform_(-eps, eps).requires_grad_(True)
    with run():
        logits = model(x + delta)
    (grad,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(logits.float(), y), delta)
    delta = (delta.detach() + 1.25 * eps * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(-1, 1)


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, names: list[str]) -> dict:
    model.eval()
    acc = attribute_accuracy(model, images, labels)
    model.train()
    return {"mean_accuracy": round(float(acc.mean()), 4),
            "per_attribute": {n: round(float(a), 4) for n, a in zip(names, acc)}}


def train(args: argparse.Namespace, kind: str = "classifier",
          augment: Callable[[torch.Tensor], torch.Tensor] = lambda x: random_shift(x, pad=4)) -> dict:
    """Train a 40-attribute model of `kind` ("classifier", or "evaluator" via train_evaluator)."""
    device, data, out = setup(args)
    dist = data.dist
    precision = run_precision(args, device)
    steps = total_steps(args, len(data.train_images), default_epochs=args.default_epochs, world=dist.world)
    steps_per_epoch = max(1, len(data.train_images) // (args.batch_size * dist.world))
    eval_every = args.sample_every if args.sample_every else steps_per_epoch
    cls, cfg_cls = MODEL_KINDS[kind]
    model = cls(cfg_cls(num_attributes=len(data.attribute_names), width=args.width, dropout=args.dropout,
                        image_size=args.image_size)).to(device, memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    if args.init:
        try:
            model.load_state_dict(load_checkpoint(args.init, kind).model.state_dict())
        except (CheckpointError, OSError) as exc:
            raise SystemExit(f"--init {args.init}: {one_line(exc)}") from None
        except RuntimeError as exc:
            raise SystemExit(f"--init {args.init}: does not fit a width-{args.width} {kind} ({one_line(exc)})") from None
    path = out / f"{kind}.pt"
    start, elapsed_before, history = resume_run(args, dist, path, kind, model, opt, steps)
    ddp = dist.wrap(model)
    step_fn = torch.compile(ddp) if args.compile else ddp
    sampler = BatchSampler(data.train_images, args.batch_size, labels=data.train_labels, rank=dist.rank,
                           world=dist.world, seed=args.seed + start)
    log = MetricLog(out, resume=start > 0, enabled=dist.main)
    if dist.enabled and dist.main:
        print(batch_line(dist, sampler.batch_size))
    loss_sum, n_sum, t0, result = torch.zeros((), device=device), 0, time.time(), {}
    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=kind, unit="step",
               disable=args.smoke or not dist.main)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = learning_rate(args, step, steps)
        x, y = sampler.next()
        x = augment(x)
        if args.adversarial > 0:  # the bare model: the attack needs only the input's gradient, no DDP or compiled graph
            x = adversarial_images(model, x, y, args.adversarial, lambda: autocast(device, precision=precision))
        with autocast(device, precision=precision):
            logits = step_fn(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        n_sum += 1
        done = step + 1
        if done % args.log_every == 0 or done == steps:
            value = float(dist.mean_(loss_sum) / n_sum)
            if not math.isfinite(value):
                raise SystemExit(f"training diverged at step {done} (loss is NaN/inf); lower --lr")
            history.append({"step": done, "loss": round(value, 5)})
            log.write(done, loss=value, lr=opt.param_groups[0]["lr"])
            bar.set_postfix(loss=f"{value:.4f}")
            loss_sum.zero_()
            n_sum = 0
        if (done % eval_every == 0 or done == steps) and dist.main:
            result = evaluate(model, data.heldout_images, data.heldout_labels, data.attribute_names)
            log.write(done, heldout_mean_accuracy=result["mean_accuracy"])
            tqdm.write(f"step {done} (epoch {done / steps_per_epoch:.1f}): held-out mean accuracy "
                       f"{100 * result['mean_accuracy']:.2f} %")
            summary = train_summary(args, data, device, steps=done, batch_size=sampler.batch_size,
                                    images_seen=done * sampler.batch_size, time_s=elapsed_before + time.time() - t0,
                                    history=history, heldout=result)
            save_checkpoint(path, kind, model, attributes=data.attribute_names, train=summary,
                            extra={"resume": {"step": done, "opt": opt.state_dict()}})
    dist.finish()
    if dist.main:
        print(f"done: held-out mean accuracy {100 * result.get('mean_accuracy', float('nan')):.2f} % "
              f"in {elapsed_before + time.time() - t0:.0f} s; checkpoint {path}")
    return {"steps": steps, "history": history, "checkpoint": str(path), "rank": dist.rank,
            "weights": {kind: param_hash(model)}, **result}


def main(argv: list[str] | None = None) -> dict:
    return train(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
