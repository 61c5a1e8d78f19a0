"""Editability after inversion, graded by the yardsticks: does "more X" still work on *your* face,
and is it still you afterwards?

    python main.py eval-photo-edits [--n 40] [--photos ../shared/data/photos] [--cache inv.pt]

Held-out CelebA faces (IDs 8001–9000, CelebA's own aligned crop, every k-th) and, with
`--photos`, real photos go through the app's whole inversion (`Engine.invert_job`: alignment,
encoder, refinement, pivotal tuning of the face's own generator). For each attribute, the faces
whose *result* the evaluator reads as lacking it (p < 0.5) get the window's "more" (core.policy,
on the face's own generator, as the window runs it). Per edit, by the **evaluator**: success
(p > 0.5 after), drift (mean |Δp| over the other 39); by **dlib**: the edited face vs the
inversion before the edit and vs the photo's crop (< 0.6 = same person). The inversions are cached
(`--cache`), so that runs compare on the same faces.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from core.engine import MODELS_DIR, Engine
from core.identity import SAME_PERSON
from core.align import FaceCrop
from core.inversion import InvertConfig
from core.metrics import psnr
from core.tuning import GeneratorDelta
from core.worker import run_inline
from training.eval_control import ATTRIBUTES, IDENTITY_ATTRIBUTES
from training.policy_options import add_policy_options, apply_policy_options, policy_label
from training.yardsticks import Yardsticks, drift

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=str(MODELS_DIR))
    p.add_argument("--device", default="auto")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "celeba"))
    p.add_argument("--photos", default=None, help="a folder of real photos to invert and edit too")
    p.add_argument("--n", type=int, default=40, help="held-out faces (every k-th of the 1,000)")
    p.add_argument("--attributes", nargs="*", default=ATTRIBUTES)
    p.add_argument("--tune-precision", choices=("fp32", "bf16", "auto"), default=None,
                   help="the pivotal tuning's precision (default: the app's, core.tuning.TuneConfig)")
    p.add_argument("--cache", default=None, help="inversions are read from / written to this .pt file")
    p.add_argument("--json", default=None)
    add_policy_options(p)
    return p.parse_args(argv)


def sources(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(name, source for invert_job): held-out aligned crops, then the photos' paths."""
    from core.data import load_celeba

    out: list[tuple[str, object]] = []
    if args.n > 0:
        ds = load_celeba(args.data)
        held_x, _ = ds.split(held_out=True)
        step = max(1, len(held_x) // args.n)
        for i in range(0, step * args.n, step):
            img = held_x[i]
            out.append((f"heldout-{i}", FaceCrop(image=img, box=(0, 0, img.shape[2], img.shape[1]), face=None)))
    if args.photos:
        for p in sorted(Path(args.photos).glob("*")):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                out.append((f"photo-{p.name}", str(p)))
    return out


def invert_all(engine: Engine, args: argparse.Namespace) -> list[dict]:
    """Every face inverted once: crop, z, its generator change (cached in `--cache`)."""
    if args.cache and Path(args.cache).exists():
        blob = torch.load(args.cache, weights_only=True)
        return [{"name": f["name"], "crop": f["crop"], "z": f["z"],
                 "delta": GeneratorDelta.from_dict(f["delta"]) if f["delta"] is not None else None}
                for f in blob["faces"]]
    faces = []
    for name, source in sources(args):
        config = InvertConfig()
        config.tune = config.tune.override(precision=args.tune_precision)
        outcome = run_inline(engine.invert_job, source, config)
        faces.append({"name": name, "crop": outcome.crop.image, "z": outcome.frame.z, "delta": outcome.delta})
        print(f"inverted {name}", file=sys.stderr)
    if args.cache:
        torch.save({"faces": [{**f, "delta": f["delta"].to_dict() if f["delta"] is not None else None}
                              for f in faces]}, args.cache)
    return faces


def window_more(engine: Engine, face: dict, attr: int) -> torch.Tensor:
    """The window's "more" on this face's own generator (`Engine.window_result`): its z afterwards."""
    return engine.window_result(face["z"].reshape(1, -1), attr, +1, [], face["delta"])[0]


def evaluate(args: argparse.Namespace) -> dict:
    engine = Engine(args.models, device=args.device, start_worker=False)
    tried = apply_policy_options(engine, args)
    sticks = Yardsticks(args.models, engine.device, engine.attributes)
    faces = invert_all(engine, args)
    start_images = torch.stack([engine.render(f["z"], f["delta"])[0].image for f in faces])
    crops = torch.stack([f["crop"] for f in faces])
    p0 = sticks.probs(start_images)
    recon_same = sticks.identity_distance(crops, start_images)
    rows: dict[str, dict] = {}
    for name in args.attributes:
        attr = engine.attribute_index(name)
        idx = [i for i in range(len(faces)) if p0[i, attr] < 0.5]
        if not idx:
            continue
        edited = torch.stack([engine.render(window_more(engine, faces[i], attr), faces[i]["delta"])[0].image
                              for i in idx])
        p1 = sticks.probs(edited)
        row = {"faces": len(idx), "success": float((p1[:, attr] > 0.5).float().mean()),
               "drift": float(drift(p0[idx], p1, attr).mean())}
        d_start = sticks.identity_distance(start_images[idx], edited)
        d_photo = sticks.identity_distance(crops[idx], edited)
        if d_start is not None:
            row["same_as_before_edit"] = float((d_start < SAME_PERSON).mean())
            row["same_as_photo"] = float((d_photo < SAME_PERSON).mean())
        rows[name] = row
        print(f"{name}: {row}", file=sys.stderr)
    config = engine.steer_config
    return {"faces": len(faces), "device": engine.device_name, "policy": policy_label(tried),
            "identity_weight": config.identity_weight,
            "guide": config.guide, "views": config.views, "until": config.until, "preserve_weight": config.preserve_weight,
            "reconstruction_same_person": None if recon_same is None else float((recon_same < SAME_PERSON).mean()),
            "reconstruction_psnr_db": float(psnr(start_images.float().div(127.5).sub(1),
                                                 crops.float().div(127.5).sub(1)).mean()),
            "rows": rows}


def markdown(results: dict) -> str:
    rows = results["rows"]
    pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    out = [f"{results['faces']} inverted faces · window \"more\" (identity weight {results['identity_weight']}, "
           f"guide {results['guide']}, λ {results.get('preserve_weight')}, views {results.get('views', 1)}, "
           f"until {results.get('until')})"
           " · success and drift by the **evaluator**, same person by **dlib** · "
           f"reconstruction same person as the photo: {pct(results['reconstruction_same_person'])}"
           + (f", PSNR {results['reconstruction_psnr_db']:.2f} dB" if "reconstruction_psnr_db" in results else ""), "",
           "| attribute | faces | success | drift | same as before the edit | same as the photo |",
           "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        out.append(f"| {name} | {r['faces']} | {pct(r['success'])} | {r['drift']:.3f} | "
                   f"{pct(r.get('same_as_before_edit'))} | {pct(r.get('same_as_photo'))} |")

    def mean(key: str, only: list[str] | None = None) -> float | None:
        values = [r[key] for n, r in rows.items() if key in r and (only is None or n in only)]
        return sum(values) / len(values) if values else None

    out.append(f"| **mean** | | {pct(mean('success'))} | {mean('drift') or 0:.3f} | "
               f"{pct(mean('same_as_before_edit', IDENTITY_ATTRIBUTES))} ¹ | "
               f"{pct(mean('same_as_photo', IDENTITY_ATTRIBUTES))} ¹ |")
    out += ["", "¹ over " + ", ".join(IDENTITY_ATTRIBUTES) + " (a sex or age change is rightly someone else)."]
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
