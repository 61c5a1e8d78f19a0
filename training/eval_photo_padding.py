"""Tight photo crops: does leaving the filled-in border out of the inversion's losses pay?

    python -m training.eval_photo_padding [--n 30] [--min-padded 0.2] [--grid out.png]

Tight face crops (held-out CelebA test-split crops, IDs ≥ the crops' held-out start, and the
UTKFace photos) go through the app's whole inversion twice: with and without
`InvertConfig.mask_padding` (refinement and pivotal tuning weigh each pixel by its share inside
the photo; the app's default since this measurement). Graded on the part of the crop the photo really has: PSNR there (pixels), and **dlib**
on the face-only pair (`FaceCrop.likeness_pair`, < 0.6 = same person). Neither method sees dlib.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from core.data import open_image
from core.engine import MODELS_DIR, Engine
from core.export import save_png
from core.identity import SAME_PERSON, shared_metric
from core.inversion import InvertConfig
from core.worker import run_inline

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=str(MODELS_DIR))
    p.add_argument("--crops", default=str(DATA / "celeba_test_crops"))
    p.add_argument("--photos", default=str(DATA / "photos"))
    p.add_argument("--n", type=int, default=30, help="held-out crops with at least --min-padded filled in")
    p.add_argument("--min-padded", type=float, default=0.2)
    p.add_argument("--grid", default=None, help="PNG: crop (filled-in part shaded) | unmasked | masked, the 12 most padded, one per row")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def inside_psnr(a: torch.Tensor, b: torch.Tensor, inside: np.ndarray) -> float:
    """PSNR (dB, images in [0, 255]) over the pixels that lie inside the photo."""
    keep = torch.from_numpy(inside >= 0.5)
    diff = (a.float() - b.float())[:, keep]
    mse = float(diff.square().mean()) if diff.numel() else float("nan")
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def tight_crops(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """The crops folder's held-out images (`CelebAIndex.holdout_mask`, as training leaves them out),
    and the UTKFace photos."""
    from core.data import read_celeba

    held: list[Path] = []
    if Path(args.crops).is_dir():
        index = read_celeba(args.crops)
        held = [index.image_dir / n for n, out in zip(index.filenames, index.holdout_mask()) if out]
    photos = sorted(Path(args.photos).glob("utkface_*.jpg")) if Path(args.photos).is_dir() else []
    return held, photos


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    engine = Engine(args.models, device="cpu")
    metric = shared_metric()
    if metric is None:
        raise SystemExit("dlib's face models are not installed: no identity yardstick")
    held, photos = tight_crops(args)
    chosen = []
    for path in held:
        if len(chosen) >= args.n:
            break
        crop = engine.crop_job(open_image(path))
        if crop.method == "landmarks" and crop.padded_share >= args.min_padded:
            chosen.append((path.name, crop))
    chosen += [(p.name, engine.crop_job(open_image(p))) for p in photos]
    rows, grid = [], []
    for name, crop in chosen:
        row = {"name": name, "padded": round(crop.padded_share, 3)}
        images = [crop.padding_shown()]
        for label, masked in (("unmasked", False), ("masked", True)):
            config = InvertConfig(mask_padding=masked)
            outcome = run_inline(engine.invert_job, crop, config)
            image = outcome.frame.image
            a, b = crop.likeness_pair(image)
            row[label] = {"psnr_inside": round(inside_psnr(image, crop.image, crop.inside), 2),
                          "identity": round(float(metric.distance(a[None], b[None])[0]), 3)}
            images.append(image)
        rows.append(row)
        grid.append((crop.padded_share, images))
        print(json.dumps(row), flush=True)
    summary = {}
    for label in ("unmasked", "masked"):
        psnr_v = [r[label]["psnr_inside"] for r in rows]
        ident = [r[label]["identity"] for r in rows]
        summary[label] = {"psnr_inside": round(float(np.mean(psnr_v)), 2), "identity": round(float(np.mean(ident)), 3),
                          "same_person": round(100 * float(np.mean([d < SAME_PERSON for d in ident])), 1)}
    print(json.dumps({"faces": len(rows), **summary}))
    if args.grid and grid:
        most = sorted(grid, key=lambda g: -g[0])[:12]
        rows_img = [torch.cat(images, dim=2) for _, images in most]  # each row: three faces side by side
        save_png(torch.cat(rows_img, dim=1), args.grid, size=2 * 64 * len(rows_img))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
