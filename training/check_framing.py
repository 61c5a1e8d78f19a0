"""Do the landmark-aligned crops sit in CelebA's framing? Mean eye and mouth positions, and a grid.

    python -m training.check_framing --aligned ../shared/data/celeba --crops ../shared/data/celeba_test_crops \
        --out resources/samples/framing_aligned_vs_crops.png

dlib's 68-point landmarks (on each 64-px training face upscaled ×4) give the centre of each eye
and of the mouth; the means over `--n` faces of each set are compared in 64-px coordinates
(the issue's bar: within 1 px). The grid shows the first 32 faces of each set, aligned set above.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data import load_celeba
from core.export import save_png_grid
from core.identity import _model_dir

PARTS = {"left eye": slice(36, 42), "right eye": slice(42, 48), "mouth": slice(48, 68)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--aligned", required=True, help="CelebA folder in the official (aligned) layout")
    p.add_argument("--crops", required=True, help="folder of unaligned crops (img/), aligned on decode")
    p.add_argument("--n", type=int, default=400, help="training faces measured per set")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default=None, help="PNG grid: 32 aligned-set faces above 32 aligned crops")
    return p.parse_args(argv)


def landmark_means(images: torch.Tensor) -> tuple[dict[str, np.ndarray], int]:
    """Mean (x, y) of each part over the faces dlib finds, in 64-px continuous coordinates."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(Path(_model_dir()) / "shape_predictor_68_face_landmarks.dat"))
    scale = 256 / images.shape[-1]
    found: dict[str, list[np.ndarray]] = {k: [] for k in PARTS}
    for img in images:
        arr = np.asarray(Image.fromarray(img.permute(1, 2, 0).numpy()).resize((256, 256), Image.Resampling.BICUBIC))
        boxes = detector(arr, 0)
        if not boxes:
            continue
        shape = predictor(arr, max(boxes, key=lambda r: r.area()))
        pts = np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()]) / scale
        for name, sl in PARTS.items():
            found[name].append(pts[sl].mean(0))
    return {k: np.mean(v, 0) for k, v in found.items()}, len(found["mouth"])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    sets = {"aligned set": load_celeba(args.aligned, cache_dir=args.cache_dir),
            "aligned crops": load_celeba(args.crops, cache_dir=args.cache_dir)}
    train = {k: v.split(held_out=False)[0] for k, v in sets.items()}
    means = {}
    for name, images in train.items():
        means[name], found = landmark_means(images[:args.n])
        print(f"{name}: {found} of {min(args.n, len(images))} faces found; " +
              ", ".join(f"{k} ({x:.2f}, {y:.2f})" for k, (x, y) in means[name].items()))
    (a, b) = means.values()
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in PARTS)
    print("difference (crops − set): " + ", ".join(f"{k} ({b[k][0] - a[k][0]:+.2f}, {b[k][1] - a[k][1]:+.2f}) px"
                                                  for k in PARTS) + f"; largest {worst:.2f} px")
    ds = sets["aligned crops"]
    if ds.padded is not None:
        pad = ds.padded.float()
        print(f"aligned crops: {len(ds.images)} kept, {ds.unaligned} without a face skipped; padded border: mean "
              f"{pad.mean():.1f} % of the crop, {int((pad > 0).sum())} crops have some, {int((pad >= 20).sum())} ≥ 20 %")
    if args.out:
        faces = torch.cat([train["aligned set"][:32], train["aligned crops"][:32]]).float() / 127.5 - 1
        save_png_grid(faces, Path(args.out), nrow=8, padding=2)
    return {"means": {k: {p: v.tolist() for p, v in m.items()} for k, m in means.items()}, "largest_px": worst}


if __name__ == "__main__":
    main(sys.argv[1:])
