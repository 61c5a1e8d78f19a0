"""Controllability of the shipped models: steering and direction edits, success and drift.

    python main.py eval-control [--faces 200] [--device auto]

For each of eight attributes, generated faces whose probability starts below 0.5 are pushed
towards it. Success: p > 0.5 within 30 steering steps (or for some α ≤ --max-alpha). Drift: mean
|Δp| over the other 39 attributes, measured where each face stops. Steering is run with λ = 0
(the plain classifier-gradient method) and with the default λ; direction edits take, per face,
the smallest α on a grid that reaches the target (as a user stops the slider once it flips).
"Plain" is the seed method: gradient ascent on the target logit alone (λ = 0, no momentum).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch

from core.engine import MODELS_DIR, Engine
from core.steering import SteerConfig, steer
from core.worker import run_inline

ATTRIBUTES = ["Smiling", "Eyeglasses", "Blond_Hair", "Mustache", "Male", "Wearing_Lipstick", "Bald", "Young"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=str(MODELS_DIR))
    p.add_argument("--device", default="auto")
    p.add_argument("--faces", type=int, default=200, help="faces per attribute")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--max-alpha", type=float, default=12.0)
    p.add_argument("--alpha-step", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--attributes", nargs="*", default=ATTRIBUTES)
    p.add_argument("--lambda", dest="lam", type=float, default=None, help="preservation weight (default: the app's)")
    p.add_argument("--step-size", type=float, default=None, help="steering step (default: the app's)")
    p.add_argument("--momentum", type=float, default=None, help="steering momentum (default: the app's)")
    return p.parse_args(argv)


@torch.no_grad()
def starting_faces(engine: Engine, attr: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` generated faces whose attribute probability is below 0.5, and their probabilities."""
    gen = torch.Generator().manual_seed(seed + attr)
    zs, ps = [], []
    count = 0
    for _ in range(200):
        z = torch.randn(500, engine.z_dim, generator=gen)
        p = torch.stack([f.probs for f in engine.render(z)])
        keep = p[:, attr] < 0.5
        zs.append(z[keep])
        ps.append(p[keep])
        count += int(keep.sum())
        if count >= n:
            break
    return torch.cat(zs)[:n], torch.cat(ps)[:n]


def drift(p0: torch.Tensor, p1: torch.Tensor, attr: int) -> torch.Tensor:
    """Per-face mean |Δp| over every attribute but `attr`."""
    others = torch.ones(p0.shape[1], dtype=torch.bool)
    others[attr] = False
    return (p1 - p0).abs()[:, others].mean(1)


def steering_scores(engine: Engine, z: torch.Tensor, p0: torch.Tensor, attr: int, config: SteerConfig) -> dict:
    result = run_inline(steer, engine.generator, engine.classifier, z, {attr: 1.0}, None, config)
    p1 = result.probs[-1]
    return {"success": float((p1[:, attr] > 0.5).float().mean()), "drift": float(drift(p0, p1, attr).mean()),
            "steps": float(result.steps_taken.float().mean())}


@torch.no_grad()
def direction_scores(engine: Engine, z: torch.Tensor, p0: torch.Tensor, attr: int, max_alpha: float,
                     alpha_step: float) -> dict:
    d = engine.require_directions().vectors[attr]
    n = len(z)
    chosen_p = p0.clone()
    chosen_alpha = torch.full((n,), float("nan"))
    done = torch.zeros(n, dtype=torch.bool)
    alpha = alpha_step
    while alpha <= max_alpha + 1e-9 and not done.all():
        idx = torch.nonzero(~done).squeeze(1)
        p = torch.stack([f.probs for f in engine.render(z[idx] + alpha * d)])
        hit = p[:, attr] > 0.5
        chosen_p[idx[hit]] = p[hit]
        chosen_alpha[idx[hit]] = alpha
        done[idx[hit]] = True
        alpha += alpha_step
    # faces that never flipped are scored at the largest α tried
    if (~done).any():
        idx = torch.nonzero(~done).squeeze(1)
        chosen_p[idx] = torch.stack([f.probs for f in engine.render(z[idx] + max_alpha * d)])
    return {"success": float(done.float().mean()), "drift": float(drift(p0, chosen_p, attr).mean()),
            "alpha": float(chosen_alpha[done].median()) if done.any() else float("nan")}


def evaluate(args: argparse.Namespace) -> dict:
    engine = Engine(args.models, device=args.device, start_worker=False)
    if engine.directions is None:
        print("fitting latent directions first (cached afterwards) ...", file=sys.stderr)
        run_inline(engine.fit_directions_job)
    default = SteerConfig(steps=args.steps).override(preserve_weight=args.lam, step_size=args.step_size,
                                                     momentum=args.momentum)
    plain = replace(default, preserve_weight=0.0, momentum=0.0)  # the seed method: plain gradient ascent
    rows = {}
    for name in args.attributes:
        attr = engine.attribute_index(name)
        z, p0 = starting_faces(engine, attr, args.faces, args.seed)
        rows[name] = {
            "faces": len(z),
            "steer_plain": steering_scores(engine, z, p0, attr, plain),
            "steer": steering_scores(engine, z, p0, attr, default),
            "direction": direction_scores(engine, z, p0, attr, args.max_alpha, args.alpha_step),
        }
        print(f"{name}: done", file=sys.stderr)
    return {"device": engine.device_name, "lambda": default.preserve_weight, "steps": args.steps, "rows": rows}


def markdown(results: dict) -> str:
    lam = results["lambda"]
    lines = [f"Steering ≤ {results['steps']} steps · plain = λ 0, no momentum · default λ = {lam:g} · "
             f"{results['device']}", "",
             f"| attribute | faces | success plain | drift plain | success λ={lam:g} | drift λ={lam:g} | "
             "success direction | drift direction | median α |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["rows"].items():
        sp, s, d = r["steer_plain"], r["steer"], r["direction"]
        lines.append(f"| {name} | {r['faces']} | {100 * sp['success']:.1f} % | {sp['drift']:.4f} | "
                     f"{100 * s['success']:.1f} % | {s['drift']:.4f} | {100 * d['success']:.1f} % | "
                     f"{d['drift']:.4f} | {d['alpha']:.2f} |")
    rows = list(results["rows"].values())
    mean = lambda key, sub: sum(r[key][sub] for r in rows) / len(rows)  # noqa: E731
    lines.append(f"| **mean** | | {100 * mean('steer_plain', 'success'):.1f} % | {mean('steer_plain', 'drift'):.4f} | "
                 f"{100 * mean('steer', 'success'):.1f} % | {mean('steer', 'drift'):.4f} | "
                 f"{100 * mean('direction', 'success'):.1f} % | {mean('direction', 'drift'):.4f} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    results = evaluate(parse_args(argv))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
