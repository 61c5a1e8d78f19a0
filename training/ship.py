"""Copy trained checkpoints into resources/models/ as the app ships them.

    python -m training.ship --generator runs/gan/generator.pt --classifier runs/classifier/classifier.pt \
        --encoder runs/encoder/encoder.pt [--evaluator runs/evaluator/evaluator.pt] [--baseline runs/plain/generator.pt] [--out resources/models]

Drops the resume state (optimiser moments, raw G weights), stores weights as float16 and
keeps the training summary, so the app loads small files that still say how they were made.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import resources
from core.checkpoint import load_checkpoint, save_checkpoint

MODELS = resources.MODELS_DIR


def ship(src: str | Path, dst: Path, kind: str) -> Path:
    ck = load_checkpoint(src, kind)
    path = save_checkpoint(dst, kind, ck.model, attributes=ck.attributes, train=ck.train, half=True)
    print(f"{kind:10s} {src} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--generator")
    p.add_argument("--classifier")
    p.add_argument("--encoder")
    p.add_argument("--evaluator", help="the independent evaluator (training.train_evaluator); grading only")
    p.add_argument("--baseline", help="the plain-recipe generator, kept for the FD_cls comparison")
    p.add_argument("--out", default=str(MODELS))
    args = p.parse_args(argv)
    out = Path(args.out)
    jobs = [(args.generator, out / "generator.pt", "generator"), (args.classifier, out / "classifier.pt", "classifier"),
            (args.encoder, out / "encoder.pt", "encoder"), (args.evaluator, out / "evaluator.pt", "evaluator"),
            (args.baseline, out / "baseline" / "generator.pt", "generator")]
    return [ship(src, dst, kind) for src, dst, kind in jobs if src]


if __name__ == "__main__":
    main(sys.argv[1:])
