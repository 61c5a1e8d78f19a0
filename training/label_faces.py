"""Count distorted faces by eye, blind: sheets of random faces from one or more generators, mixed.

    python -m training.label_faces sheets --models resources/models --models runs/set_h --out runs/look1
    (look at runs/look1/sheet*.png; list the distorted faces of each sheet in runs/look1/labels.json)
    python -m training.label_faces report runs/look1
    python -m training.label_faces sheets --models resources/models --real ../shared/data/celeba --out runs/look2

#23's grid bar ("at most 1 in 10 distorted") is a judgement by eye. A 64-face grid gives it with a
95 % interval of ±8 to ±11 points; this tool gives it on hundreds of faces, from several generators at
once, shuffled so that whoever looks cannot tell which generator drew a face (`key.json`, not to
be opened before labelling), and says which kinds of face are distorted most, read by the evaluator
(which no method trains against). Face k of sheet s is number 48·s + k, row by row.

`--real DATA` mixes in held-out real faces of a CelebA folder as one more source, a control for the
one who looks: the share of real faces called distorted is the floor any generator can reach.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import torch

import resources
from core.checkpoint import load_checkpoint
from core.data import load_datasets
from core.export import save_png_grid
from core.latent import sample_codes
from core.model_hash import state_hash
from training.yardsticks import Yardsticks

PER_SHEET, COLUMNS, SIZE, PADDING = 48, 8, 112, 4
KEY, LABELS = "key.json", "labels.json"
REAL = "real:"  # a source that is a data folder's held-out real faces, not a generator


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sheets", help="draw, shuffle and render faces to look at")
    s.add_argument("--models", action="append", required=True,
                   help="a folder with generator.pt, or a generator checkpoint (repeat to compare)")
    s.add_argument("--real", action="append", default=[],
                   help="a CelebA-layout data folder: its held-out real faces join the look as a control")
    s.add_argument("--out", required=True)
    s.add_argument("--faces", type=int, default=144, help="faces per generator")
    s.add_argument("--seed", type=int, default=31)
    r = sub.add_parser("report", help="distorted shares per generator, and by attribute")
    r.add_argument("folder")
    r.add_argument("--evaluator", default=str(resources.MODELS_DIR), help="folder with evaluator.pt")
    return p.parse_args(argv)


def _generator(source: str) -> torch.nn.Module:
    path = Path(source)
    return load_checkpoint(path / "generator.pt" if path.is_dir() else path, "generator").model.float().eval()


def draw(source: str, n: int, seed: int) -> torch.Tensor:
    """`n` faces (uint8) of the generator in `source` from `seed`, unfiltered (z ~ its prior)."""
    return _faces(_generator(source), n, seed)


def _real_faces(folder: str, n: int, seed: int, size: int) -> torch.Tensor:
    """`n` held-out real faces (uint8) of the data `folder` at `size` px, picked by `seed`."""
    held, _ = load_datasets(folder, size=size).split(held_out=True)
    if len(held) < n:
        raise SystemExit(f"{folder}: {len(held)} held-out faces, fewer than the {n} asked for")
    return held[torch.randperm(len(held), generator=torch.Generator().manual_seed(seed))[:n]]


def _source_faces(source: str, n: int, seed: int, size: int) -> tuple[torch.Tensor, str]:
    """A source's faces and the hash that says they are the same ones at report time."""
    if source.startswith(REAL):
        faces = _real_faces(source[len(REAL):], n, seed, size)
        return faces, hashlib.sha256(faces.contiguous().numpy().tobytes()).hexdigest()[:16]
    gen = _generator(source)
    return _faces(gen, n, seed), state_hash(gen)


def _draw_sources(sources: list[str], n: int, seed: int) -> dict[str, tuple[torch.Tensor, str]]:
    """Every source's faces and hash; generators first, so real faces come at their size (else 64 px)."""
    drawn, size = {}, None
    for source in sorted(sources, key=lambda src: src.startswith(REAL)):
        drawn[source] = _source_faces(source, n, seed, size or 64)
        if size is None and not source.startswith(REAL):
            size = drawn[source][0].shape[-1]
    return drawn


@torch.no_grad()
def _faces(gen: torch.nn.Module, n: int, seed: int) -> torch.Tensor:
    z = sample_codes(gen, n, torch.Generator().manual_seed(seed))
    x = torch.cat([gen(z[i:i + 250]) for i in range(0, n, 250)])
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def write_sheets(images: torch.Tensor, out: Path) -> list[Path]:
    paths = [out / f"sheet{s // PER_SHEET:02d}.png" for s in range(0, len(images), PER_SHEET)]
    for s, path in zip(range(0, len(images), PER_SHEET), paths):
        save_png_grid(images[s:s + PER_SHEET], path, nrow=COLUMNS, size=SIZE, padding=PADDING, smooth=True)
    return paths


def make_sheets(sources: list[str], n: int, seed: int, out: Path, real: tuple[str, ...] = ()) -> list[Path]:
    """Faces of every source (and held-out faces of each `real` data folder), shuffled together;
    the key says which is whose."""
    if (out / LABELS).exists():
        raise SystemExit(f"{out} already holds a look ({LABELS}); sheets go to a new folder, so no labels are lost")
    sources = list(sources) + [REAL + str(folder) for folder in real]
    faces = _draw_sources(sources, n, seed)
    out.mkdir(parents=True, exist_ok=True)
    images = torch.cat([faces[source][0] for source in sources])
    owner = torch.arange(len(sources)).repeat_interleave(n)
    index = torch.arange(n).repeat(len(sources))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + 1)) if len(sources) > 1 \
        else torch.arange(len(images))
    paths = write_sheets(images[order], out)
    hashes = [faces[source][1] for source in sources]
    (out / KEY).write_text(json.dumps({"sources": sources, "generator_hashes": hashes, "faces": n, "seed": seed,
                                       "owner": owner[order].tolist(), "index": index[order].tolist()}) + "\n")
    (out / LABELS).write_text("{\n" + ",\n".join(f' "{p.stem[5:]}": []' for p in paths) + "\n}\n")
    return paths


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a share k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    mid, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def read_labels(folder: Path, total: int) -> torch.Tensor:
    try:
        labels = json.loads((folder / LABELS).read_text())
        bad = [int(sheet) * PER_SHEET + int(k) for sheet, ks in labels.items() for k in ks]
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"{folder / LABELS}: not a labels file ({exc})") from None
    if any(not 0 <= i < total for i in bad) or any(not 0 <= int(k) < PER_SHEET for ks in labels.values() for k in ks):
        raise SystemExit(f"{folder / LABELS}: a face number is outside its sheet")
    distorted = torch.zeros(total, dtype=torch.bool)
    distorted[bad] = True
    return distorted


@torch.no_grad()
def report(folder: Path, evaluator: Path) -> dict:
    key = json.loads((folder / KEY).read_text())
    owner = torch.tensor(key["owner"])
    distorted = read_labels(folder, len(owner))
    sticks = Yardsticks(evaluator, torch.device("cpu"))
    out: dict = {}
    faces = _draw_sources(key["sources"], key["faces"], key["seed"])
    for s, source in enumerate(key["sources"]):
        drawn, digest = faces[source]
        if digest != key["generator_hashes"][s]:
            what = "data" if source.startswith(REAL) else "generator"
            raise SystemExit(f"{source} is not the {what} this look drew from (it changed since)")
        mine = owner == s
        images = drawn[torch.tensor(key["index"])[mine]]
        bad = distorted[mine]
        k, n = int(bad.sum()), int(mine.sum())
        low, high = wilson(k, n)
        present = sticks.probs(images) > 0.5
        kinds = {}
        for i, name in enumerate(sticks.attributes):
            has = present[:, i]
            if min(int(has.sum()), int((~has).sum())) >= 10:
                kinds[name] = {"with": int(has.sum()), "distorted_with": float(bad[has].float().mean()),
                               "distorted_without": float(bad[~has].float().mean())}
        out[source] = {"generator_hash": key["generator_hashes"][s], "faces": n, "distorted": k,
                       "share": k / n, "interval_95": [low, high], "by_attribute": kinds}
        print(f"{source}: {k} of {n} distorted, {100 * k / n:.1f} % (95 % interval {100 * low:.1f}–{100 * high:.1f} %)")
        for name, row in sorted(kinds.items(), key=lambda kv: kv[1]["distorted_without"] - kv[1]["distorted_with"]):
            print(f"  {name:>20} ({row['with']:3d} faces, evaluator): {100 * row['distorted_with']:3.0f} % distorted "
                  f"with it, {100 * row['distorted_without']:3.0f} % without")
    (folder / "report.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "sheets":
        paths = make_sheets(args.models, args.faces, args.seed, Path(args.out), real=tuple(args.real))
        print(f"{len(paths)} sheets in {args.out}; list each sheet's distorted faces in {Path(args.out) / LABELS} "
              f"(do not open {KEY} before)")
    else:
        report(Path(args.folder), Path(args.evaluator))
    return 0


if __name__ == "__main__":
    sys.exit(main())
