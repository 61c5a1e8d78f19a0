"""Quality per CPU-hour: the evaluator's FD (and FD_cls) of each run's time snapshots, as curves.

    python -m training.eval_curves --data ../shared/data/celeba runs/fp32 runs/bf16 \
        --labels fp32,bf16 --out resources/curves_bf16.png

Reads the `snapshots/minuteNNNN.pt` generators that `train_gan --snapshot-minutes` keeps, grades
each on 1,000 generated vs 1,000 held-out faces with the evaluator (the yardstick no method
touches) and with the steering classifier (FD_cls), and with `--coverage-n` also the evaluator's
attribute coverage (`training.yardsticks.coverage_misses`), prints a table, writes a JSON next to the PNG
and plots FD against training minutes, one line per run.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from core.checkpoint import load_checkpoint
from core.data import load_celeba
from core.metrics import classifier_features, frechet_distance
from training.evaluate import MODELS, evaluator_coverage, sample
from training.yardsticks import Yardsticks, coverage_misses

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run folders with snapshots/minuteNNNN.pt")
    p.add_argument("--data", required=True, action="append",
                   help="a data folder whose held-out faces are the reference (repeat for several)")
    p.add_argument("--labels", default=None, help="comma-separated legend labels (default: folder names)")
    p.add_argument("--models", default=str(MODELS), help="folder with evaluator.pt and classifier.pt")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--coverage-n", type=int, default=0,
                   help="also grade coverage on this many generated faces per snapshot (evaluate uses 10,000; 0: off)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", required=True, help="PNG to write (the numbers go to the same name .json)")
    p.add_argument("--with", dest="earlier", action="append", default=[],
                   help="a curves JSON this script wrote before (same evaluator and held-out faces): its runs "
                        "are drawn too, ungraded again (runs whose folders are gone)")
    p.add_argument("--reference", default=None, help="VALUE:LABEL, a horizontal line on the evaluator plot "
                   "(e.g. the shipped G's FD)")
    p.add_argument("--x", choices=("minutes", "steps"), default="minutes",
                   help="x axis: training minutes (quality per CPU-hour), or steps (runs on different machines "
                        "or precisions, whose minutes are not comparable)")
    p.add_argument("--title", default=None, help="default: 'Evaluator FD vs training time (2 CPU cores)', or '... vs "
                   "training steps' with --x steps")
    return p.parse_args(argv)


def snapshots(run: Path) -> list[tuple[int, Path]]:
    found = []
    for path in (run / "snapshots").glob("minute*.pt"):
        m = re.fullmatch(r"minute(\d+)\.pt", path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def _nice_top(value: float) -> float:
    """The axis end: the smallest round number at or above `value` whose fifths are round too."""
    import math

    if value <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(value / 5))
    for m in (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10):
        if 5 * m * step >= value:
            return 5 * m * step
    return 50 * step


def plot(series: dict[str, list[tuple[float, float]]], path: Path, title: str, ylabel: str,
         reference: tuple[float, str] | None = None, xlabel: str = "training minutes") -> None:
    """A small line chart (PIL only): one coloured line with dots per series, axes with ticks, and
    an optional dashed horizontal `reference` (value, label)."""
    w, h, left, right, top, bottom = 720, 440, 70, 170, 40, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    xs = [x for s in series.values() for x, _ in s] or [0, 1]
    ys = [y for s in series.values() for _, y in s] or [0, 1]
    x0, x1 = 0.0, _nice_top(max(xs))
    y0, y1 = 0.0, _nice_top(max(ys + ([reference[0]] if reference else [])))
    px = lambda x: left + (x - x0) / (x1 - x0) * (w - left - right)  # noqa: E731
    py = lambda y: h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)  # noqa: E731
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    for i in range(6):
        yv, xv = y0 + (y1 - y0) * i / 5, x0 + (x1 - x0) * i / 5
        d.line([left - 4, py(yv), left, py(yv)], fill="black")
        d.text((6, py(yv) - 6), f"{yv:g}", fill="black", font=font)
        d.line([px(xv), h - bottom, px(xv), h - bottom + 4], fill="black")
        d.text((px(xv) - 8, h - bottom + 8), f"{xv:g}", fill="black", font=font)
    d.text((left, 12), title, fill="black", font=font)
    d.text(((w - right) // 2, h - 18), xlabel, fill="black", font=font)
    d.text((6, top - 16), ylabel, fill="black", font=font)
    if reference is not None:
        value, text = reference
        for xa in range(left, w - right, 10):
            d.line([xa, py(value), min(xa + 5, w - right), py(value)], fill="gray", width=1)
        d.text((left + 6, py(value) - 14), f"{text} ({value:g})", fill="gray", font=font)
    for k, (label, pts) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        coords = [(px(x), py(y)) for x, y in pts]
        if len(coords) > 1:
            d.line(coords, fill=colour, width=2)
        for cx, cy in coords:
            d.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
        d.line([w - right + 12, top + 12 + 18 * k, w - right + 32, top + 12 + 18 * k], fill=colour, width=3)
        d.text((w - right + 38, top + 6 + 18 * k), label, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device("cpu")
    runs = [Path(r) for r in args.runs]
    labels = args.labels.split(",") if args.labels else [r.name for r in runs]
    if len(labels) != len(runs):
        raise SystemExit(f"--labels names {len(labels)} runs, {len(runs)} given")
    held = torch.cat([load_celeba(d, cache_dir=args.cache_dir).split(held_out=True)[0] for d in args.data])[:args.n]
    sticks = Yardsticks(args.models, device)
    classifier = load_checkpoint(Path(args.models) / "classifier.pt", "classifier", device).model.eval()
    real_eval, real_cls = sticks.features(held), classifier_features(classifier, held)
    results: dict[str, list[dict]] = {}
    for label, run in zip(labels, runs):
        rows = []
        for minute, path in snapshots(run):
            ck = load_checkpoint(path, "generator", device)
            ck.model.float().eval()
            fake = sample(ck.model, len(held), args.seed, device)
            row = {"minute": minute, "steps": ck.train.get("steps"),
                   "fd_evaluator": round(frechet_distance(sticks.features(fake), real_eval), 2),
                   "fd_cls": round(frechet_distance(classifier_features(classifier, fake), real_cls), 2)}
            line = (f"{label:>12} | minute {minute:4d} | step {row['steps']} | evaluator FD {row['fd_evaluator']:.2f}"
                    f" | FD_cls {row['fd_cls']:.2f}")
            if args.coverage_n:
                row["coverage"] = evaluator_coverage(sticks, ck.model, held, args.coverage_n, args.seed)
                inside, misses = coverage_misses(row["coverage"])
                row["coverage_inside"], row["coverage_misses"] = inside, misses
                line += f" | coverage {inside} of {inside + len(misses)}, outside: {', '.join(misses) or 'none'}"
            rows.append(row)
            print(line, flush=True)
        results[label] = rows
    for earlier in args.earlier:
        blob = json.loads(Path(earlier).read_text())
        if blob.get("held_out") != len(held):
            raise SystemExit(f"{earlier}: graded on {blob.get('held_out')} held-out faces, this run on {len(held)}")
        for label, rows in blob["runs"].items():
            results.setdefault(label, rows)
    reference = None
    if args.reference:
        value, _, text = args.reference.partition(":")
        reference = (float(value), text or "reference")
    out = Path(args.out)
    x = "minute" if args.x == "minutes" else "steps"
    title = args.title or ("Evaluator FD vs training time (2 CPU cores)" if x == "minute"
                           else "Evaluator FD vs training steps")
    plot({k: [(r[x], r["fd_evaluator"]) for r in v] for k, v in results.items()}, out, title,
         "evaluator FD (lower is better)", reference, xlabel=f"training {args.x}")
    plot({k: [(r[x], r["fd_cls"]) for r in v] for k, v in results.items()},
         out.with_name(out.stem + "_fd_cls.png"), title.replace("Evaluator FD", "FD_cls"), "FD_cls",
         xlabel=f"training {args.x}")
    out.with_suffix(".json").write_text(json.dumps({"held_out": len(held), "runs": results}, indent=1))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
