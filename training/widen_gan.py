"""Widen a DCGAN run's generator without changing what it draws, so a run that D has outgrown
continues with more capacity instead of starting over (Net2WiderNet, Chen et al. 2016).

    python -m training.widen_gan runs/g3_25k runs/g3_w48 --width 48
    python -m training.train_gan ... --g-width 48 --out runs/g3_w48 --resume

Every hidden channel of the new G copies one of the old (the old ones first, then a random pick);
the layer that reads a channel divides its weights by how many copies there are, so the sum is the
old one. BatchNorm sees identical copies, so the function is exact before the noise; a little noise
on the copies' incoming weights breaks their symmetry (identical copies would get identical
gradients forever). The raw G, its EMA and G's Adam moments are widened with the same channel map;
D, its optimiser, the step, the clock and the metrics carry over unchanged.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from core.models import Generator, GeneratorConfig
from training.common import read_gan_run, write_grown_run

WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
STEM_POSITIONS = 16  # the linear stem's rows are (channel, 4×4 position)


def _layers(gen: Generator) -> list[tuple[str, nn.Module]]:
    """The weight and BatchNorm layers in forward order (registration order for this G)."""
    return [(name, m) for name, m in gen.named_modules() if isinstance(m, WEIGHTED + (nn.BatchNorm2d,))]


def channel_maps(config: GeneratorConfig, width: int, rng: torch.Generator) -> list[torch.Tensor]:
    """For each hidden stage, the old channel each new channel copies (the identity first)."""
    sizes = [(m.num_features, m.num_features * width // config.width)  # every stage is a multiple of width
             for _, m in _layers(Generator(config)) if isinstance(m, nn.BatchNorm2d)]
    return [torch.cat([torch.arange(n), torch.randint(n, (m - n,), generator=rng)]) for n, m in sizes]


def _plan(config: GeneratorConfig) -> dict[str, tuple[int | None, int | None, str]]:
    """Parameter/buffer prefix -> (stage it writes, stage it reads, module type)."""
    plan, stage = {}, -1  # stage -1 = z, never widened
    layers = _layers(Generator(config))
    last = max(i for i, (_, m) in enumerate(layers) if isinstance(m, WEIGHTED))
    for i, (name, m) in enumerate(layers):
        if isinstance(m, nn.BatchNorm2d):
            plan[name] = (stage, None, "bn")
            continue
        reads = stage if stage >= 0 else None
        writes = None if i == last else stage + 1
        plan[name] = (writes, reads, type(m).__name__)
        if writes is not None:
            stage = writes
    return plan


def _along(v: torch.Tensor, dim: int, ndim: int) -> torch.Tensor:
    """Vector `v` shaped to broadcast along axis `dim` of an `ndim`-d tensor."""
    shape = [1] * ndim
    shape[dim] = -1
    return v.view(shape)


def _widen(t: torch.Tensor, kind: str, key: str, writes: int | None, reads: int | None,
           maps: list[torch.Tensor], moment: str = "") -> torch.Tensor:
    """One tensor widened. `moment` "" = a weight; "exp_avg"/"exp_avg_sq" = Adam's moments of it."""
    if key == "num_batches_tracked" or t.dim() == 0:
        return t.clone()
    out_dim, in_dim = (1, 0) if kind == "ConvTranspose2d" else (0, 1)
    if kind == "bn" or key == "bias":
        out_dim, in_dim = 0, None
    if writes is not None:
        g = maps[writes]
        counts = torch.bincount(g).to(t.dtype)[g]
        if kind == "Linear" and key == "weight":
            t = t.view(-1, STEM_POSITIONS, t.shape[1])[g].reshape(-1, t.shape[1])
            counts, out_dim = counts.repeat_interleave(STEM_POSITIONS), 0
        else:
            t = t.index_select(out_dim, g)
        # a copy's gradient is 1/count of the old one (its reader was divided): the moments follow
        power = {"exp_avg": 1, "exp_avg_sq": 2}.get(moment, 0)
        if power:
            t = t / _along(counts, out_dim, t.dim()) ** power
    if reads is not None and in_dim is not None and key == "weight":
        g = maps[reads]
        t = t.index_select(in_dim, g)
        if not moment:  # the reader's gradient per copy equals the old one: moments are copied
            t = t / _along(torch.bincount(g).to(t.dtype)[g], in_dim, t.dim())
    return t.contiguous()


def widen_state(state: dict[str, torch.Tensor], config: GeneratorConfig, maps: list[torch.Tensor],
                noise: float = 0.0, rng: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """A state dict of the width-`config.width` G as one of the widened G."""
    plan, out = _plan(config), {}
    for full, t in state.items():
        prefix, key = full.rsplit(".", 1)
        writes, reads, kind = plan[prefix]
        w = _widen(t, kind, key, writes, reads, maps)
        if noise and writes is not None and key == "weight" and kind != "bn":
            dim = 1 if kind == "ConvTranspose2d" else 0
            fresh = torch.arange(w.shape[dim]) >= t.shape[dim]  # only the copies move, the old channels stay
            w = w + noise * t.float().std() * torch.randn(w.shape, generator=rng) * _along(fresh, dim, w.dim())
        out[full] = w
    return out


def widen_adam(opt_state: dict, config: GeneratorConfig, maps: list[torch.Tensor]) -> dict:
    """G's Adam state for the widened G: moments mapped like their weights (see `_widen`)."""
    names = [name for name, _ in Generator(config).named_parameters()]
    plan = _plan(config)
    state = {}
    for idx, per in opt_state["state"].items():
        prefix, key = names[int(idx)].rsplit(".", 1)
        writes, reads, kind = plan[prefix]
        state[idx] = {k: (_widen(v, kind, key, writes, reads, maps, moment=k) if k in ("exp_avg", "exp_avg_sq")
                          else v.clone()) for k, v in per.items()}
    return {"state": state, "param_groups": opt_state["param_groups"]}


def widen_run(run: Path, out: Path, width: int, noise: float = 0.01, seed: int = 0) -> Path:
    """Write run folder `out`: `run`'s checkpoint with G widened to `width`, ready for --resume."""
    ck, resume = read_gan_run(run, Generator, "the DCGAN generator can be widened")
    config = ck.model.config
    if width <= config.width:
        raise SystemExit(f"--width {width}: the run's G is already {config.width} wide")
    rng = torch.Generator().manual_seed(seed)
    maps = channel_maps(config, width, rng)
    new_config = replace(config, width=width)
    ema = Generator(new_config)
    ema.load_state_dict(widen_state(ck.model.state_dict(), config, maps))
    raw = widen_state(resume["generator_raw"], config, maps, noise=noise, rng=rng)
    step = int(resume["step"])
    return write_grown_run(run, out, ck, ema, {"step": step, "generator_raw": raw,
                                               "opt_g": widen_adam(resume["opt_g"], config, maps)},
                           {"g_width": width}, {"widened_from": {"width": config.width, "step": step, "noise": noise}})


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", type=Path, help="train_gan run folder (DCGAN G)")
    p.add_argument("out", type=Path, help="new run folder, for train_gan --resume --g-width WIDTH")
    p.add_argument("--width", type=int, required=True, help="the new G's --g-width")
    p.add_argument("--noise", type=float, default=0.01, help="noise on the copies' weights, × the layer's std")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    done = widen_run(args.run, args.out, args.width, args.noise, args.seed)
    print(f"widened {args.run} -> {done} (g-width {args.width})")
    return done


if __name__ == "__main__":
    main()
