"""Train the DCGAN-style generator on CelebA 64×64 (or 128×128 with --image-size 128).

    python -m training.train_gan --data ../shared/data/celeba --out runs/gan
    python -m training.train_gan --data ... --preset plain          # the classic seed recipe
    python -m training.train_gan --data ... --loss wgan-gp          # Wasserstein + gradient penalty
    torchrun --nproc_per_node 8 -m training.train_gan --data ...    # DDP: --batch-size is per rank
    python -m training.train_gan --data ... --arch style --g-width 16 --r1 0.2 --r1-every 16  # style-based G
    python -m training.train_gan --data ... --arch fast --d-recon 1     # FastGAN-style G, self-supervised D

Losses: `bce` (non-saturating, the DCGAN recipe), `hinge`, `wgan-gp` (critic, λ=10, n_critic=5).
The defaults are the shipped recipe, chosen by FD_cls on the held-out faces (resources/MODELS.md):
DCGAN D with batch norm and DCGAN init, a resize-conv G (no checkerboard), DiffAugment (colour +
translation) on everything D sees, an EMA of G's weights (BatchNorm statistics recomputed
before use), batch 64. Also available: spectral/layer norm, R1 on real images, layers shaped for
CPUs, a style-based G, a FastGAN-style G and a self-supervised D. Writes run/generator.pt (EMA weights when used) and
run/discriminator.pt, both resumable.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from core.data import to_model_range
from core.device import autocast
from core.metrics import fd_cls
from core.models import (Discriminator, DiscriminatorConfig, FastGenerator, FastGeneratorConfig, Generator,
                         GeneratorConfig, ResidualGluBlock, StyleGenerator, StyleGeneratorConfig)
from training.common import (BatchSampler, Dist, MetricLog, balance_weights, base_parser, batch_line, param_hash,
                             parse_balance, resume_failed, resume_state, run_precision, save_grid, setup, stream_shifts,
                             total_steps, train_summary)
from training.diffaug import diff_augment, parse_policy

PRESETS = {
    # The seed recipe (Radford et al.): transposed convs, BN in both nets, BCE, Adam(2e-4, 0.5).
    "plain": dict(loss="bce", upsample="transposed", d_norm="batch", ema=0.0, diffaug="none", r1=0.0,
                  init="dcgan", epochs=25, batch_size=128, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = base_parser(__doc__.split("\n")[0], "runs/gan")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="a named recipe (overrides the options below)")
    p.add_argument("--loss", choices=("bce", "hinge", "wgan-gp"), default="bce")
    p.add_argument("--arch", choices=("dcgan", "style", "fast"), default="dcgan",
                   help="generator: dcgan (the shipped kind), style (mapping network + modulated convs) or fast "
                        "(FastGAN: one GLU conv per resolution, skip-layer excitation)")
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--g-width", type=int, default=64, help="dcgan, fast: channels at the last hidden resolution; "
                   "style: channels at the output resolution (doubling per halving up to --max-channels)")
    p.add_argument("--w-dim", type=int, default=128, help="style: size of w")
    p.add_argument("--mapping-layers", type=int, default=4, help="style: layers of the mapping network")
    p.add_argument("--max-channels", type=int, default=256, help="style: channel cap at low resolutions")
    p.add_argument("--convs-per-block", type=int, default=2, choices=(1, 2), help="style: modulated convs per resolution")
    p.add_argument("--noise", action=argparse.BooleanOptionalAction, default=True, help="style: per-pixel noise inputs")
    p.add_argument("--mixing", type=float, default=0.9, help="style: style-mixing regularisation probability (0 = off)")
    p.add_argument("--conditional", action="store_true",
                   help="style: attribute-conditional G (the 40 attributes enter the mapping) and a projection D; "
                        "fakes are drawn with the attribute vectors of random training faces")
    p.add_argument("--cond-cls", type=float, default=0.0,
                   help="conditional: weight of an auxiliary loss that asks the frozen --classifier to read the "
                        "condition's attributes on G's faces (AC-GAN style; 0 = off). Grade such a G with the "
                        "evaluator, not FD_cls: G was trained against this classifier")
    p.add_argument("--d-width", type=int, default=64)
    p.add_argument("--upsample", choices=("nearest", "transposed", "bilinear"), default="nearest",
                   help="G's 2× upsampling: dcgan nearest or transposed; fast nearest or bilinear (smoother, no "
                        "one-pixel checkerboard). Choose it when a run starts: a trained G switched on resume loses "
                        "its detail and D runs away (log)")
    p.add_argument("--g-blocks", type=int, default=0,
                   help="fast: residual blocks (two 3×3 convs each, starting as the identity) after G's 4×4, 8×8 "
                        "and 16×16 stages; a trained run gains them with training.deepen_gan")
    p.add_argument("--to-rgb", choices=("resize", "subpixel"), default="resize",
                   help="dcgan: G's last doubling as the others (resize-conv), or sub-pixel (faster on CPUs)")
    p.add_argument("--d-recon", type=float, default=0.0,
                   help="self-supervised D (FastGAN): weight of its decoders' L1 reconstruction of real faces (0 = off)")
    p.add_argument("--d-attr", type=float, default=0.0,
                   help="weight of an auxiliary task: D also reads the 40 attributes of the real faces it is shown "
                        "(BCE on their labels), so its features tell glasses, hats, age... apart; G stays "
                        "unconditional (0 = off; can start mid-run on --resume)")
    p.add_argument("--d-downsample", choices=("strided", "pool"), default="strided",
                   help="D's downsampling: 4×4 stride-2 convs, or 3×3 convs with 2× average pooling (faster in bf16 on CPUs)")
    p.add_argument("--d-norm", choices=("batch", "spectral", "layer", "none"), default=None,
                   help="default: batch (bce/hinge), layer (wgan-gp)")
    p.add_argument("--lr-g", type=float, default=None, help="default 2e-4 (dcgan), 2e-3 (style: its weights are "
                   "N(0, 1) scaled at run time, so Adam moves them 1/√fan-in as far per step)")
    p.add_argument("--lr-d", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--n-critic", type=int, default=None, help="D steps per G step (default 5 for wgan-gp, else 1)")
    p.add_argument("--gp", type=float, default=10.0, help="gradient-penalty weight λ (wgan-gp)")
    p.add_argument("--r1", type=float, default=0.0, help="R1 penalty γ on real images (0 = off)")
    p.add_argument("--r1-every", type=int, default=4, help="lazy R1: penalise every N-th D step (scaled by N)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of G's weights (0 = off)")
    p.add_argument("--diffaug", default="color,translation", help="DiffAugment ops (color, translation, cutout) or 'none'")
    p.add_argument("--init", choices=("default", "dcgan"), default="dcgan",
                   help="dcgan: conv weights N(0, 0.02), BN scales N(1, 0.02), as in the DCGAN paper")
    p.add_argument("--classifier", default=None, help="classifier checkpoint: report FD_cls at each sample step")
    p.add_argument("--fd-samples", type=int, default=1000)
    p.add_argument("--balance", default="", help="attributes the discriminator is shown more often, so G draws "
                   "them more: comma-separated ATTR or ATTR:RATE (e.g. Bald:0.25,Mustache); empty = uniform")
    p.add_argument("--balance-rate", type=float, default=0.15, help="share of real draws an ATTR without :RATE is raised to")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (sampling, measuring and saving first) after this many minutes of this invocation")
    p.add_argument("--snapshot-minutes", type=float, default=None,
                   help="every this many minutes of training time, keep the generator as snapshots/minuteNNNN.pt, "
                        "for quality-per-CPU-hour curves (training.eval_curves)")
    p.set_defaults(batch_size=64, sample_every=1000)
    args = p.parse_args(argv)
    if args.preset:
        preset = PRESETS[args.preset]
        for key, value in preset.items():
            if key == "epochs" and args.epochs is not None:
                continue
            setattr(args, key, value)
    if args.lr_g is None:
        args.lr_g = 2e-3 if args.arch == "style" else 2e-4
    if args.d_recon < 0:
        p.error("--d-recon must be 0 (off) or a positive weight")
    if args.d_attr < 0:
        p.error("--d-attr must be 0 (off) or a positive weight")
    if args.r1_every < 1:
        p.error("--r1-every must be at least 1")
    if args.conditional and args.arch != "style":
        p.error("--conditional needs --arch style")
    allowed = {"dcgan": GeneratorConfig.UPSAMPLING, "fast": FastGeneratorConfig.UPSAMPLING}.get(args.arch, ("nearest",))
    if args.upsample not in allowed:
        p.error(f"--upsample {args.upsample} is not an option of --arch {args.arch} (choose from {', '.join(allowed)})")
    if args.g_blocks and args.arch != "fast":
        p.error("--g-blocks is an option of --arch fast")
    if args.cond_cls and not (args.conditional and args.classifier):
        p.error("--cond-cls needs --conditional and --classifier")
    if args.d_norm is None:
        args.d_norm = "layer" if args.loss == "wgan-gp" else "batch"
    if args.loss == "wgan-gp" and args.d_norm == "batch":
        p.error("batch norm in the critic breaks the gradient penalty; use --d-norm layer, spectral or none")
    if args.n_critic is None:
        args.n_critic = 5 if args.loss == "wgan-gp" else 1
    if args.smoke:
        args.g_width = args.d_width = 8
        args.batch_size = min(args.batch_size, 16)
        args.steps = args.steps or 6
        args.log_every = 1
        args.fd_samples = min(args.fd_samples, 32)
    return args


# ---------------------------------------------------------------------------------------------
# Losses


def d_adversarial(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    if loss == "bce":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if loss == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    return d_fake.mean() - d_real.mean()  # Wasserstein critic


def g_adversarial(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    if loss == "bce":
        return F.softplus(-d_fake).mean()  # non-saturating
    return -d_fake.mean()


def gradient_penalty(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, **cond: torch.Tensor
                     ) -> torch.Tensor:
    """WGAN-GP: (‖∇D(x̂)‖ − 1)² on random interpolates x̂ of real and fake (`cond`: the real faces' c)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (eps * real.float() + (1 - eps) * fake.float()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, **cond).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def r1_penalty(disc: torch.nn.Module, real: torch.Tensor, policy: tuple[str, ...], **cond: torch.Tensor
               ) -> torch.Tensor:
    real = real.detach().float().requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(diff_augment(real, policy), **cond).sum(), real, create_graph=True)
    return grad.flatten(1).square().sum(1).mean()


def dcgan_init(module: torch.nn.Module) -> None:
    """The DCGAN paper's initialisation (part of the plain seed recipe)."""
    if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
        parametrized = torch.nn.utils.parametrize.is_parametrized(module, "weight")
        weight = module.parametrizations.weight.original if parametrized else module.weight
        torch.nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    elif isinstance(module, torch.nn.BatchNorm2d):
        torch.nn.init.normal_(module.weight, 1.0, 0.02)
        torch.nn.init.zeros_(module.bias)
    elif isinstance(module, ResidualGluBlock):  # apply() visits it after its convs
        module.start_as_identity()


# ---------------------------------------------------------------------------------------------
# EMA with recomputed BatchNorm statistics


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    ema_p = [p for p in ema.parameters()]
    src_p = [p for p in model.parameters()]
    torch._foreach_lerp_(ema_p, src_p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):  # w_avg follows the raw G (BN stats are recomputed)
        b_ema.copy_(b)


@torch.no_grad()
def recalibrate_batchnorm(gen: Generator, device: torch.device, batches: int = 16, batch_size: int = 256) -> None:
    """Standing statistics: BN running stats recomputed for these exact weights.

    EMA weights never ran in training mode, so the running stats copied from the raw G do not
    describe them; without this the averaged generator produces washed-out faces at batch 1.
    """
    bns = [m for m in gen.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    gen.train()
    for _ in range(batches):
        gen(torch.randn(batch_size, gen.z_dim, device=device))
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    gen.eval()


# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def generate(gen: Generator, n: int, z_dim: int, device: torch.device, seed: int, batch: int = 250) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(n, z_dim, generator=g).to(device)
    return torch.cat([gen(z[i:i + batch]).float() for i in range(0, n, batch)])


def build_generator(args: argparse.Namespace, num_attributes: int = 0) -> Generator | StyleGenerator:
    if args.arch == "style":
        return StyleGenerator(StyleGeneratorConfig(
            z_dim=args.z_dim, w_dim=args.w_dim, mapping_layers=args.mapping_layers, width=args.g_width,
            max_channels=max(args.max_channels, args.g_width), convs_per_block=args.convs_per_block,
            noise=args.noise, image_size=args.image_size, num_attributes=num_attributes))
    if args.arch == "fast":
        return FastGenerator(FastGeneratorConfig(z_dim=args.z_dim, width=args.g_width, image_size=args.image_size,
                                                 upsample=args.upsample, coarse_blocks=args.g_blocks))
    return Generator(GeneratorConfig(z_dim=args.z_dim, width=args.g_width, upsample=args.upsample,
                                     image_size=args.image_size, to_rgb=args.to_rgb))


class GanTrainer:
    """G, D, optional EMA copy and optimisers, with one `step` shared by training and the benchmark.

    Under torchrun G and D run as DistributedDataParallel (`g_fn`, `d_fn`); `gen`, `disc` are the
    plain modules every rank keeps identical, which the penalties, the EMA and checkpoints use.
    """

    def __init__(self, args: argparse.Namespace, device: torch.device, dist: Dist | None = None,
                 labels: torch.Tensor | None = None, cond_classifier: torch.nn.Module | None = None):
        """`labels` (N, A) 0/1 on `device`: the training faces' attributes (needed with --conditional).
        `cond_classifier`: frozen, reads those A attributes in the same order (needed with --cond-cls)."""
        self.args, self.device, self.dist = args, device, dist or Dist(device=device)
        self.precision = run_precision(args, device)
        self.policy = parse_policy(args.diffaug)
        conditional = bool(getattr(args, "conditional", False))
        if conditional and labels is None:
            raise ValueError("a conditional GAN needs the training faces' attribute labels")
        self.labels = labels.float() if conditional else None
        self.cond_cls = float(getattr(args, "cond_cls", 0.0) or 0.0)
        self.d_recon = float(getattr(args, "d_recon", 0.0) or 0.0)
        self.d_attr = float(getattr(args, "d_attr", 0.0) or 0.0)
        if self.d_attr and labels is None:
            raise ValueError("--d-attr needs the training faces' attribute labels")
        if self.cond_cls and cond_classifier is None:
            raise ValueError("--cond-cls needs the classifier that reads the condition's attributes")
        self.cond_classifier = cond_classifier.to(device).eval().requires_grad_(False) if self.cond_cls else None
        num_attributes = self.labels.shape[1] if conditional else 0
        self.gen = build_generator(args, num_attributes)
        if conditional:  # the bank conditions are drawn from when none is given (the app, samples)
            order = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(args.seed))
            pick = order[torch.arange(len(self.gen.labels)) % len(order)]  # distinct faces; repeats if too few
            self.gen.labels.copy_(self.labels[pick.to(self.labels.device)].cpu())
        self.disc = Discriminator(DiscriminatorConfig(width=args.d_width, norm=args.d_norm, image_size=args.image_size,
                                                      num_attributes=num_attributes, downsample=args.d_downsample,
                                                      reconstruct=self.d_recon > 0,
                                                      read_attributes=labels.shape[1] if self.d_attr else 0))
        self.g_kwargs = {"mixing": args.mixing} if args.arch == "style" else {}
        if args.init == "dcgan":
            if args.arch != "style":  # the style G keeps its N(0, 1) weights (scaled at run time)
                self.gen.apply(dcgan_init)
            self.disc.apply(dcgan_init)
        self.gen.to(device, memory_format=torch.channels_last)
        self.disc.to(device, memory_format=torch.channels_last)
        self.gen_ema = copy.deepcopy(self.gen).eval().requires_grad_(False) if args.ema > 0 else None
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=args.lr_g, betas=(args.beta1, args.beta2))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=args.lr_d, betas=(args.beta1, args.beta2))
        self.g_ddp, self.d_ddp = self.dist.wrap(self.gen), self.dist.wrap(self.disc)
        self.g_fn, self.d_fn = ((torch.compile(self.g_ddp), torch.compile(self.d_ddp)) if args.compile
                                else (self.g_ddp, self.d_ddp))
        self.r1_every = args.r1_every

    @property
    def shipped(self) -> Generator:
        """The generator to sample from and ship: the EMA copy when there is one."""
        return self.gen_ema if self.gen_ema is not None else self.gen

    def _conditions(self, c_real: torch.Tensor | None, n: int) -> tuple[dict, dict]:
        """Keyword arguments for the real and the fake forward passes: none for an unconditional GAN;
        else the real faces' own attributes, and for fakes the attributes of `n` random training faces
        (their joint distribution, so G learns the attributes' real shares and correlations)."""
        if self.labels is None:
            return {}, {}
        pick = torch.randint(len(self.labels), (n,), device=self.labels.device)
        real = {} if c_real is None else {"c": c_real.float()}
        return real, {"c": self.labels[pick]}

    def step(self, step: int, sampler: BatchSampler) -> torch.Tensor:
        """One G step after `n_critic` D steps; returns (d_loss, g_loss, d_real, d_fake) on device."""
        args, device, policy, disc = self.args, self.device, self.policy, self.disc
        batch = sampler.batch_size
        disc.requires_grad_(True)
        for _ in range(args.n_critic):
            real, c_real = sampler.next()
            z = torch.randn(batch, args.z_dim, device=device)
            real_kw, fake_kw = self._conditions(c_real, batch)
            with autocast(device, precision=self.precision):
                with torch.no_grad():
                    fake = self.g_fn(z, **self.g_kwargs, **fake_kw)
                real_in, fake_in = diff_augment(real, policy), diff_augment(fake, policy)
                # D may also rebuild the (augmented) real faces from its own features, and read their attributes
                d_real, *extras = _as_tuple(self.d_fn(real_in, reconstruct=bool(self.d_recon), read=bool(self.d_attr),
                                                      **real_kw))
                d_real = d_real.float()
                d_fake = self.d_fn(fake_in, **fake_kw).float()
                d_loss = d_adversarial(args.loss, d_real, d_fake)
                if self.d_recon:
                    d_loss = d_loss + self.d_recon * extras.pop(0)
                if self.d_attr:
                    d_loss = d_loss + self.d_attr * F.binary_cross_entropy_with_logits(extras.pop(0).float(),
                                                                                      c_real.float())
            if args.loss == "wgan-gp":
                d_loss = d_loss + args.gp * gradient_penalty(disc, real_in, fake_in, **real_kw)
                d_loss = d_loss + 1e-3 * d_real.square().mean()  # drift term keeps critic values bounded
            if args.r1 > 0 and step % self.r1_every == 0:
                d_loss = d_loss + (args.r1 / 2) * self.r1_every * r1_penalty(disc, real, policy, **real_kw)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        disc.requires_grad_(False)
        z = torch.randn(batch, args.z_dim, device=device)
        _, fake_kw = self._conditions(None, batch)
        # D is frozen here: under DDP its forward must not wait for gradients that never come
        frozen_d = self.d_ddp.no_sync() if self.dist.enabled else contextlib.nullcontext()
        with autocast(device, precision=self.precision), frozen_d:
            fake = self.g_fn(z, **self.g_kwargs, **fake_kw)
            g_loss = g_adversarial(args.loss, self.d_fn(diff_augment(fake, policy), **fake_kw).float())
            if self.cond_classifier is not None:  # the faces should show the attributes they were asked for
                read = self.cond_classifier(fd_input(self.cond_classifier, fake)).float()
                g_loss = g_loss + self.cond_cls * F.binary_cross_entropy_with_logits(read, fake_kw["c"])
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        if self.gen_ema is not None:
            ema_update(self.gen_ema, self.gen, min(args.ema, (1 + step) / (10 + step)))
        return torch.stack([d_loss.detach(), g_loss.detach(), d_real.mean().detach(), d_fake.mean().detach()])


def read_resume(g_path: Path, d_path: Path) -> dict | None:
    """What a run folder holds to continue from (read by rank 0 alone; None = nothing to resume)."""
    if not g_path.exists():
        return None
    g_ck, d_ck = load_checkpoint(g_path, "generator"), load_checkpoint(d_path, "discriminator")
    resume, d_resume = resume_state(g_ck), resume_state(d_ck)
    return {"resume": resume, "d_resume": d_resume, "ema": g_ck.model.state_dict(), "disc": d_ck.model.state_dict(),
            "time_s": float(g_ck.train.get("time_s", 0.0)), "history": list(g_ck.train.get("history", []))}


def _as_tuple(out: torch.Tensor | tuple) -> tuple:
    return out if isinstance(out, tuple) else (out,)


NEW_D_PARTS = ("decoders.", "reader.")  # what a resumed D may gain: registered last, in this order


def with_new_parts(disc: Discriminator, saved: dict, opt_state: dict) -> tuple[dict, dict]:
    """A saved D state (and its Adam state) for `disc`; parts `disc` has and the saved D had not (the
    decoders of --d-recon, the attribute reader of --d-attr) join fresh with empty Adam moments, so
    either task can start mid-run. Anything else that differs is left for load_state_dict to refuse."""
    names = [n for n, _ in disc.named_parameters()]
    fresh_names = [n for n in names if n.startswith(NEW_D_PARTS) and n not in saved]
    if not fresh_names:
        return saved, opt_state
    if names[-len(fresh_names):] != fresh_names:  # Adam's state is by position: new ones must come last
        raise ValueError(f"cannot add {fresh_names[0].split('.')[0]} to this saved discriminator")
    current = disc.state_dict()
    fresh = {k: v for k, v in current.items() if k.startswith(NEW_D_PARTS) and k not in saved}
    groups = [dict(g) for g in opt_state["param_groups"]]
    known = sum(len(g["params"]) for g in groups)
    groups[-1]["params"] = list(groups[-1]["params"]) + list(range(known, known + len(fresh_names)))
    return {**saved, **fresh}, {"state": opt_state["state"], "param_groups": groups}


def fd_input(classifier: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Images at the classifier's resolution (a 64-px classifier can grade a 128-px G)."""
    size = classifier.config.image_size
    if images.shape[-1] == size:
        return images
    x = to_model_range(images) if images.dtype == torch.uint8 else images.float()
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def condition_reader(ck: Checkpoint, attributes: list[str]) -> torch.nn.Module:
    """The classifier checkpoint's model, its outputs put in the data's attribute order."""
    missing = [a for a in attributes if a not in ck.attributes]
    if missing:
        raise SystemExit(f"--cond-cls: the classifier does not read {', '.join(missing)}")
    order = [ck.attributes.index(a) for a in attributes]
    if order == list(range(len(ck.attributes))):
        return ck.model
    return _Reordered(ck.model, order)


class _Reordered(torch.nn.Module):
    """A classifier whose logits are picked (and ordered) to match other attribute names."""

    def __init__(self, model: torch.nn.Module, order: list[int]):
        super().__init__()
        self.model, self.config = model, model.config
        self.register_buffer("order", torch.tensor(order))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.order]


def train(args: argparse.Namespace) -> dict:
    device, data, out = setup(args)
    dist = data.dist
    steps = total_steps(args, len(data.train_images), default_epochs=60, world=dist.world)
    # loaded once: rank 0 reports FD_cls with it; with --cond-cls every rank's G loss reads it too
    classifier_ck = (load_checkpoint(args.classifier, "classifier", device)
                     if args.classifier and (dist.main or args.cond_cls) else None)
    trainer = GanTrainer(args, device, dist, labels=data.train_labels if args.conditional or args.d_attr else None,
                         cond_classifier=condition_reader(classifier_ck, data.attribute_names) if args.cond_cls else None)
    gen, disc, gen_ema = trainer.gen, trainer.disc, trainer.gen_ema

    start, elapsed_before, history = 0, 0.0, []
    g_path, d_path = out / "generator.pt", out / "discriminator.pt"
    state = dist.from_main(lambda: read_resume(g_path, d_path)) if args.resume else None
    if state is not None:
        resume = state["resume"]
        try:
            gen.load_state_dict(resume["generator_raw"])
            if gen_ema is not None:
                gen_ema.load_state_dict(state["ema"])
            disc_state, opt_d_state = with_new_parts(disc, state["disc"], state["d_resume"]["opt_d"])
            disc.load_state_dict(disc_state)
            trainer.opt_g.load_state_dict(resume["opt_g"])
            trainer.opt_d.load_state_dict(opt_d_state)
            start = int(resume["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise resume_failed(g_path, exc) from None
        # the command line's rates win over the saved ones (Adam's moments are kept): a resumed run
        # can anneal or slow D, which loading the optimiser state alone would silently undo
        for opt, lr in ((trainer.opt_g, args.lr_g), (trainer.opt_d, args.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr
        elapsed_before, history = state["time_s"], state["history"]
        dist.reseed(args.seed + start)
        if dist.main:
            print(f"resumed at step {start}/{steps}")
    elif dist.enabled:
        dist.reseed(args.seed)  # same init on every rank (above), its own noise from here on

    classifier = classifier_ck.model if classifier_ck is not None and dist.main else None
    real_eval = data.heldout_images[:args.fd_samples]
    fixed_z = torch.randn(64, args.z_dim, generator=torch.Generator().manual_seed(1234)).to(device)
    try:
        attrs = parse_balance(args.balance, args.balance_rate)
        weights = balance_weights(data.train_labels, data.attribute_names, attrs) if attrs else None
    except ValueError as e:
        raise SystemExit(f"--balance: {e}") from None
    if weights is not None and dist.main:
        print(stream_shifts(data.train_labels, data.attribute_names, weights))
    sampler = BatchSampler(data.train_images, args.batch_size, weights=weights, rank=dist.rank, world=dist.world,
                           seed=args.seed + start,
                           labels=data.train_labels if args.conditional or args.d_attr else None)
    log = MetricLog(out, resume=start > 0, enabled=dist.main)
    sums = torch.zeros(4, device=device)  # d_loss, g_loss, d_real, d_fake: summed on device
    n_sum, t0, last = 0, time.time(), {}
    batch = sampler.batch_size
    if dist.enabled and dist.main:
        print(batch_line(dist, batch))

    def sampling_model() -> Generator:
        """The generator to sample from, ready (EMA BatchNorm statistics recomputed, eval mode)."""
        model = trainer.shipped
        if gen_ema is not None:
            recalibrate_batchnorm(gen_ema, device)
        return model.eval()

    def snapshot(step: int) -> Generator:
        model = sampling_model()
        save_grid(model(fixed_z).float(), out / "samples" / f"step{step:07d}.png")
        return model

    def save(step: int, metrics: dict) -> None:
        summary = train_summary(args, data, device, steps=step, batch_size=batch,
                                images_seen=step * batch * args.n_critic, time_s=elapsed_before + time.time() - t0,
                                history=history, **metrics)
        save_checkpoint(g_path, "generator", trainer.shipped, attributes=data.attribute_names, train=summary,
                        extra={"resume": {"step": step, "generator_raw": gen.state_dict(),
                                          "opt_g": trainer.opt_g.state_dict()}})
        save_checkpoint(d_path, "discriminator", disc, train={"steps": step, "loss": args.loss},
                        extra={"resume": {"step": step, "opt_d": trainer.opt_d.state_dict()}})

    def keep_snapshot(step: int, minute: int) -> None:
        model = sampling_model()
        summary = train_summary(args, data, device, steps=step, batch_size=batch,
                                images_seen=step * batch * args.n_critic, time_s=60.0 * minute, history=[])
        save_checkpoint(out / "snapshots" / f"minute{minute:04d}.pt", "generator", model,
                        attributes=data.attribute_names, train=summary, half=True)
        gen.train()

    snap_s = 60 * args.snapshot_minutes if args.snapshot_minutes else None
    next_snap = (math.floor(elapsed_before / snap_s) + 1) * snap_s if snap_s else math.inf
    gen.train()
    disc.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="gan", unit="step",
               disable=args.smoke or not dist.main)
    budget_s = 60 * args.max_minutes if args.max_minutes else None
    done = start
    for step in bar:
        sums += trainer.step(step, sampler)
        n_sum += 1
        done = step + 1
        out_of_time = budget_s is not None and dist.agree(time.time() - t0) >= budget_s  # rank 0's clock
        if dist.main and elapsed_before + time.time() - t0 >= next_snap:
            keep_snapshot(done, round(next_snap / 60))
            next_snap += snap_s
        if done % args.log_every == 0 or done == steps or out_of_time:
            d_l, g_l, d_r, d_f = (dist.mean_(sums) / n_sum).tolist()  # the only host sync: once per log interval
            if not all(math.isfinite(v) for v in (d_l, g_l)):
                raise SystemExit(f"training diverged at step {done} (loss is NaN/inf); lower the learning rates")
            last = {"d_loss": round(d_l, 4), "g_loss": round(g_l, 4), "d_real": round(d_r, 4), "d_fake": round(d_f, 4)}
            history.append({"step": done, **last})
            log.write(done, **last)
            bar.set_postfix(last)
            sums.zero_()
            n_sum = 0
        if (done % args.sample_every == 0 or done == steps or out_of_time) and dist.main:
            model = snapshot(done)
            if classifier is not None:
                fake = generate(model, len(real_eval), args.z_dim, device, seed=7)
                fd = fd_cls(classifier, fd_input(classifier, fake), fd_input(classifier, real_eval))
                last["fd_cls"] = round(fd, 2)
                log.write(done, fd_cls=last["fd_cls"])
                tqdm.write(f"step {done}: FD_cls {fd:.2f}")
            save(done, {"metrics": last})
            gen.train()
        if out_of_time:
            if dist.main:
                tqdm.write(f"time budget of {args.max_minutes:g} min used up at step {done}")
            break
    elapsed = time.time() - t0
    dist.finish()
    if dist.main:
        print(f"done: {done} steps, {(done - start) * batch * dist.world * args.n_critic / max(elapsed, 1e-9):.0f}"
              f" real img/s, {elapsed_before + elapsed:.0f} s in all; checkpoint {g_path}")
    return {"steps": done, "history": history, "checkpoint": str(g_path), "rank": dist.rank,
            "weights": {"generator": param_hash(gen), "discriminator": param_hash(disc),
                        **({"generator_ema": param_hash(gen_ema)} if gen_ema is not None else {})}, **last}


def main(argv: list[str] | None = None) -> dict:
    return train(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
