"""Deepen a FastGAN run's generator without changing what it draws: residual blocks that start as
the identity go after its 4×4, 8×8 and 16×16 stages, so a trained run continues with more depth
where the face's layout is drawn instead of starting over.

    python -m training.deepen_gan runs/fast24_v4 runs/fast24_deep --blocks 1
    python -m training.train_gan ... --arch fast --g-blocks 1 --out runs/fast24_deep --resume

The raw G, its EMA and G's Adam state carry over by parameter name (the new blocks' parameters start
with no Adam state, as fresh ones do); D, its optimiser, the step, the clock and the metrics are
copied unchanged.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from core.models import FastGenerator, FastGeneratorConfig
from training.common import read_gan_run, write_grown_run


def deepen_state(state: dict[str, torch.Tensor], config: FastGeneratorConfig,
                 blocks: int) -> tuple[FastGenerator, dict[str, torch.Tensor]]:
    """The deeper G and `state` (a G of `config`) as its state dict; the new blocks keep their init."""
    deep = FastGenerator(replace(config, coarse_blocks=blocks))
    try:
        missing, unexpected = deep.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise ValueError(f"the state does not fit a FastGAN G of width {config.width}: {detail}") from None
    if unexpected or any(not key.startswith("blocks.") for key in missing):
        raise ValueError(f"the state does not fit a FastGAN G of width {config.width} "
                         f"(unexpected {unexpected[:3]}, missing {[k for k in missing if not k.startswith('blocks.')][:3]})")
    return deep, deep.state_dict()


def deepen_adam(opt_state: dict, config: FastGeneratorConfig, blocks: int) -> dict:
    """G's Adam state re-indexed for the deeper G: every old parameter keeps its moments and step."""
    old_names = [name for name, _ in FastGenerator(config).named_parameters()]
    new_names = [name for name, _ in FastGenerator(replace(config, coarse_blocks=blocks)).named_parameters()]
    index = {name: i for i, name in enumerate(new_names)}
    state = {index[old_names[int(i)]]: dict(per) for i, per in opt_state["state"].items()}
    if len(opt_state["param_groups"]) != 1:
        raise ValueError("G's optimiser has more than one parameter group")
    groups = [{**opt_state["param_groups"][0], "params": list(range(len(new_names)))}]
    return {"state": state, "param_groups": groups}


def deepen_run(run: Path, out: Path, blocks: int) -> Path:
    """Write run folder `out`: `run`'s checkpoint with `blocks` residual blocks per coarse stage."""
    ck, resume = read_gan_run(run, FastGenerator, "the FastGAN generator (--arch fast) can be deepened")
    config = ck.model.config
    if blocks <= config.coarse_blocks:
        raise SystemExit(f"--blocks {blocks}: the run's G already has {config.coarse_blocks} per coarse stage")
    ema, _ = deepen_state(ck.model.state_dict(), config, blocks)
    _, raw = deepen_state(resume["generator_raw"], config, blocks)
    step = int(resume["step"])
    return write_grown_run(run, out, ck, ema, {"step": step, "generator_raw": raw,
                                               "opt_g": deepen_adam(resume["opt_g"], config, blocks)},
                           {"g_blocks": blocks}, {"deepened_from": {"coarse_blocks": config.coarse_blocks, "step": step}})


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", type=Path, help="train_gan run folder (FastGAN G)")
    p.add_argument("out", type=Path, help="new run folder, for train_gan --resume --g-blocks BLOCKS")
    p.add_argument("--blocks", type=int, required=True, help="the new G's --g-blocks (residual blocks per coarse stage)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    done = deepen_run(args.run, args.out, args.blocks)
    print(f"deepened {args.run} -> {done} (g-blocks {args.blocks})")
    return done


if __name__ == "__main__":
    main()
