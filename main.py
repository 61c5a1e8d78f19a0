"""Latent Steer: controllable face generation with GANs.

    python main.py                 open the desktop app on the shipped models
    python main.py generate ...    sample faces to a PNG grid, headless
    python main.py info FILE       what a checkpoint holds
    python main.py train-gan|train-classifier|train-encoder|bench-gan ...   (see training/)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MODELS = ROOT / "resources" / "models"
TRAINING = {
    "train-gan": "training.train_gan",
    "train-classifier": "training.train_classifier",
    "train-encoder": "training.train_encoder",
    "bench-gan": "training.bench_gan",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command")
    gen = sub.add_parser("generate", help="sample faces from a generator checkpoint into a PNG grid")
    gen.add_argument("--generator", default=str(MODELS / "generator.pt"))
    gen.add_argument("--n", type=int, default=64)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default="auto")
    gen.add_argument("--out", default="samples.png")
    info = sub.add_parser("info", help="print a checkpoint's metadata (kind, config, training summary)")
    info.add_argument("checkpoint")
    for name, module in TRAINING.items():
        sub.add_parser(name, help=f"python -m {module} (arguments passed through)", add_help=False)
    return parser


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from core.checkpoint import load_checkpoint
    from core.device import resolve_device
    from training.common import save_grid

    device = resolve_device(args.device)
    gen = load_checkpoint(args.generator, "generator", device).model
    z = torch.randn(args.n, gen.z_dim, generator=torch.Generator().manual_seed(args.seed)).to(device)
    with torch.no_grad():
        save_grid(gen(z), Path(args.out), nrow=int(args.n ** 0.5 + 0.999))
    print(f"wrote {args.n} faces to {args.out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from core.checkpoint import read_metadata

    meta = read_metadata(args.checkpoint)
    train = dict(meta.get("train", {}))
    train.pop("history", None)
    meta["train"] = train
    print(json.dumps(meta, indent=2, default=str))
    return 0


def cmd_gui() -> int:
    try:
        from ui.app import run  # noqa: F401  (the desktop window, see ui/)
    except ImportError:
        print("The desktop window is not built yet (ui/app.py); use the subcommands, see --help.", file=sys.stderr)
        return 2
    return run()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINING:
        import importlib

        importlib.import_module(TRAINING[argv[0]]).main(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    if args.command is None:
        return cmd_gui()
    from core.checkpoint import CheckpointError
    from core.data import ImageLoadError

    try:
        return {"generate": cmd_generate, "info": cmd_info}[args.command](args)
    except (CheckpointError, ImageLoadError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
