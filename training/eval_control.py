"""Controllability graded by yardsticks the edits never touch: the evaluator and face identity.

    python main.py eval-control [--faces 200] [--grids resources/samples] [--json out.json]

For each of eight attributes, generated faces that the *evaluator* reads as lacking it
(p < 0.5) are edited towards it, the way a user would:
- `cli`     — `main.py steer --more X` with no options (core.policy);
- `window`  — the window's "+" button (`Engine.window_steer_job`, the one composition of it);
- `slider`  — the window's strength slider at its end (α = SLIDER_MAX_ALPHA: a slider ends where the
  window's "+" does, core.slider_paths);
- `plain`   — the seed notebook's recipe, 10 steps of z += ∇logit/10 (a reference);
- `random`  — a move in a random direction exactly as long as the window's "+" moved that face
  (then back onto the prior's shell, as steering does): the drift and likeness that any move of
  that length costs on this generator, against which the window's own drift can be read;
and, with Male and Young locked (minus the target itself), `window` and `slider` again.
Per edit: success = the evaluator's p > 0.5 afterwards; drift = mean |Δp| over the other 39
attributes by the evaluator; identity = dlib distance to the starting face (< 0.6: same
person); lock hold = share of edits where a locked attribute's evaluator p moves ≤ 0.10.
"self-graded" is the steering classifier's own success, printed only to show the gap.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from core.engine import MODELS_DIR, Engine
from core.latent import on_sphere, sample_codes, typical_norm
from core.policy import SLIDER_MAX_ALPHA
from core.steering import SteerConfig
from core.worker import run_inline
from training.policy_options import add_policy_options, apply_policy_options, policy_label
from training.yardsticks import Yardsticks, drift

ATTRIBUTES = ["Smiling", "Eyeglasses", "Blond_Hair", "Mustache", "Male", "Wearing_Lipstick", "Bald", "Young"]
LOCKS = ["Male", "Young"]
IDENTITY_ATTRIBUTES = ["Smiling", "Eyeglasses", "Blond_Hair", "Mustache", "Wearing_Lipstick", "Bald"]
MODES = ["cli", "window", "slider", "plain", "random", "window_locked", "slider_locked"]
LOCK_HOLD = 0.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=str(MODELS_DIR))
    p.add_argument("--device", default="auto")
    p.add_argument("--faces", "--n", dest="faces", type=int, default=200, help="faces per attribute")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--attributes", nargs="*", default=ATTRIBUTES)
    p.add_argument("--modes", nargs="*", default=MODES, choices=MODES)
    p.add_argument("--grids", default=None, help="folder for start | window | slider grids, one per attribute")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    add_policy_options(p)
    args = p.parse_args(argv)
    if args.faces < 1:
        p.error("--faces must be at least 1")
    return args


@torch.no_grad()
def starting_faces(engine: Engine, sticks: Yardsticks, attr: int, n: int, seed: int) -> torch.Tensor:
    """`n` generated codes whose face the evaluator reads as lacking `attr` (p < 0.5)."""
    gen = torch.Generator().manual_seed(seed + attr)
    zs, count = [], 0
    for _ in range(200):
        z = sample_codes(engine.generator, 500, gen)
        images = torch.stack([f.image for f in engine.render(z)])
        keep = sticks.probs(images)[:, attr] < 0.5
        zs.append(z[keep])
        count += int(keep.sum())
        if count >= n:
            break
    return torch.cat(zs)[:n]


def _steer(engine: Engine, z: torch.Tensor, attr: int, locked: list[int] | None, config: SteerConfig) -> torch.Tensor:
    """The engine's own steering job with an explicit config, as `main.py steer` runs it."""
    return run_inline(engine.steer_job, z, {attr: 1.0}, locked, config).result.trajectory[-1]


def window_edit(engine: Engine, z: torch.Tensor, attr: int, locked: list[int]) -> torch.Tensor:
    """The "+" button per face, exactly as the window runs it (`Engine.window_result`)."""
    return engine.window_result(z, attr, +1, locked)


def plain_edit(engine: Engine, z: torch.Tensor, attr: int, steps: int = 10, rate: float = 0.1) -> torch.Tensor:
    """The seed notebook's recipe: z += rate·∇logit, `steps` times, nothing else."""
    z = z.clone().to(engine.device)
    for _ in range(steps):
        z.requires_grad_(True)
        logit = engine.classifier(engine.generator(z))[:, attr].sum()
        (grad,) = torch.autograd.grad(logit, z)
        z = (z + rate * grad).detach()
    return z.cpu()


def random_move(engine: Engine, z: torch.Tensor, z_edited: torch.Tensor, seed: int) -> torch.Tensor:
    """Each face moved as far as `z_edited` moved it, in a random direction (tangent to the shell in z)."""
    rng = torch.Generator().manual_seed(seed)
    length = (z_edited - z).norm(dim=1, keepdim=True)
    u = torch.randn(z.shape, generator=rng)
    sphere = on_sphere(engine.generator)
    if sphere:  # a radial part would be undone by renormalising: keep the move along the shell
        u = u - (u * z).sum(1, keepdim=True) * z / z.square().sum(1, keepdim=True).clamp_min(1e-12)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if not sphere:
        return z + length * u
    # the point of the shell (radius R) at distance `length` from z (norm r), at angle θ from z
    r, big_r = z.norm(dim=1, keepdim=True), typical_norm(z.shape[1])
    cos = ((big_r ** 2 + r ** 2 - length ** 2) / (2 * big_r * r)).clamp(-1.0, 1.0)
    return big_r * (cos * z / r + (1 - cos ** 2).sqrt() * u)


def edit(engine: Engine, mode: str, z: torch.Tensor, attr: int, locks: list[int],
         done: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Face codes after the edit `mode`; `done` holds the edits already made on these faces (reused)."""
    done = {} if done is None else done
    if mode == "random":
        window = done["window"] if "window" in done else window_edit(engine, z, attr, [])
        return random_move(engine, z, window, seed=attr)
    if mode == "cli":
        return _steer(engine, z, attr, None, engine.steer_config)
    if mode == "window":
        return window_edit(engine, z, attr, [])
    if mode == "window_locked":
        return window_edit(engine, z, attr, locks)
    if mode == "slider":
        return engine.edit_z(z, {attr: SLIDER_MAX_ALPHA})
    if mode == "slider_locked":
        return engine.edit_z(z, {attr: SLIDER_MAX_ALPHA}, locks)
    if mode == "plain":
        return plain_edit(engine, z, attr)
    raise ValueError(f"unknown mode {mode!r}")


def score(sticks: Yardsticks, attr: int, start: dict, frames: list, locks: list[int], names: list[str]) -> dict:
    images = torch.stack([f.image for f in frames])
    p1 = sticks.probs(images)
    self_p = torch.stack([f.probs for f in frames])
    row = {"success": float((p1[:, attr] > 0.5).float().mean()),
           "self_graded": float((self_p[:, attr] > 0.5).float().mean()),
           "drift": float(drift(start["p"], p1, attr).mean())}
    dist = sticks.identity_distance(start["images"], images)
    if dist is not None:
        row["identity"] = float(dist.mean())
        row["same_person"] = float((dist < 0.6).mean())
    for j in locks:
        row[f"hold_{names[j]}"] = float(((p1[:, j] - start["p"][:, j]).abs() <= LOCK_HOLD).float().mean())
    return row


def evaluate(args: argparse.Namespace) -> dict:
    engine = Engine(args.models, device=args.device, start_worker=False)
    tried = apply_policy_options(engine, args)  # a variant of the steering, to measure before it ships
    if engine.directions is None and engine.steer_config.guide > 0:
        print("fitting latent directions first (cached afterwards) ...", file=sys.stderr)
        run_inline(engine.fit_directions_job)
    sticks = Yardsticks(args.models, engine.device, engine.attributes)
    if sticks.identity is None:
        print("dlib is not installed: identity columns are left out", file=sys.stderr)
    names = engine.attributes
    rows: dict[str, dict] = {}
    for name in args.attributes:
        attr = engine.attribute_index(name)
        locks = [engine.attribute_index(a) for a in LOCKS if a != name]
        z = starting_faces(engine, sticks, attr, args.faces, args.seed)
        frames0 = engine.render(z)
        images0 = torch.stack([f.image for f in frames0])
        start = {"images": images0, "p": sticks.probs(images0)}
        rows[name] = {"faces": len(z)}
        shown, done = {}, {}
        for mode in args.modes:
            z1 = done[mode] = edit(engine, mode, z, attr, locks, done)
            frames = engine.render(z1)
            rows[name][mode] = score(sticks, attr, start, frames, locks if mode.endswith("_locked") else [], names)
            shown[mode] = torch.stack([f.image for f in frames[:8]])
        if args.grids:
            save_edit_grid(Path(args.grids) / f"edit_{name}.png", images0[:8], shown)
        print(f"{name}: " + ", ".join(f"{m} {100 * rows[name][m]['success']:.0f} %" for m in args.modes),
              file=sys.stderr)
    return {"device": engine.device_name, "faces": args.faces, "rows": rows, "modes": args.modes,
            "policy": policy_label(tried),
            "space": "z" if on_sphere(engine.generator) else "w"}


def save_edit_grid(path: Path, start: torch.Tensor, shown: dict[str, torch.Tensor]) -> None:
    """Columns start | window "+" | slider end (8 faces down), at 2× so a person can judge them."""
    from core.export import save_png_grid

    columns = [start] + [shown[m] for m in ("window", "slider") if m in shown]
    tiles = torch.stack(columns, 1).reshape(-1, *start.shape[1:])  # row-major: face by face
    save_png_grid(list(tiles), path, nrow=len(columns), size=128, smooth=True)


def _mean(rows: dict, mode: str, key: str, only: list[str] | None = None) -> float | None:
    values = [r[mode][key] for n, r in rows.items() if mode in r and key in r[mode] and (only is None or n in only)]
    return sum(values) / len(values) if values else None


def markdown(results: dict) -> str:
    rows = results["rows"]
    out = [f"policy {results.get('policy', 'current')} · edited in {results.get('space', 'z')} · {results['faces']} faces per attribute, each starting at evaluator p < 0.5 · {results['device']} · "
           "success, drift, lock hold by the **evaluator**; identity by **dlib** (< 0.6 = same person); "
           "self-graded = the steering classifier's own reading (not evidence)"]
    pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    num = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for mode in results["modes"]:
        locked = mode.endswith("_locked")
        head = "| attribute | success | self-graded | drift | identity | same person |"
        head += " Male hold | Young hold |" if locked else ""
        out += ["", f"**{mode}**", "", head, "|" + "---|" * (head.count("|") - 1)]
        for name, r in rows.items():
            m = r[mode]
            line = (f"| {name} | {pct(m['success'])} | {pct(m['self_graded'])} | {num(m['drift'])} | "
                    f"{num(m.get('identity'))} | {pct(m.get('same_person'))} |")
            if locked:
                line += f" {pct(m.get('hold_Male'))} | {pct(m.get('hold_Young'))} |"
            out.append(line)
        line = (f"| **mean** | {pct(_mean(rows, mode, 'success'))} | {pct(_mean(rows, mode, 'self_graded'))} | "
                f"{num(_mean(rows, mode, 'drift'))} | {num(_mean(rows, mode, 'identity'))} | "
                f"{pct(_mean(rows, mode, 'same_person', IDENTITY_ATTRIBUTES))} ¹ |")
        if locked:
            line += f" {pct(_mean(rows, mode, 'hold_Male'))} | {pct(_mean(rows, mode, 'hold_Young'))} |"
        out.append(line)
    out += ["", "¹ same-person mean over " + ", ".join(IDENTITY_ATTRIBUTES) +
            " (a face recogniser rightly reads a sex or age change as someone else)."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    results = evaluate(args)
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
