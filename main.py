"""Latent Steer: controllable face generation with GANs.

    python main.py                          open the desktop app on the shipped models
    python main.py generate --seed 3        faces to a PNG grid
    python main.py steer --seed 3 --more Smiling --less Male --out smile.gif
    python main.py steer --session me.lsteer --more Smiling --in-photo --out smile.gif
    python main.py edit --seed 3 --set Eyeglasses=3 --lock Male --out glasses.png
    python main.py invert photo.jpg --out inverted.png
    python main.py walk --seed 3 --to-seed 8 --to-seed 21 --loop --out walk.gif
    python main.py walk --seed 3 --direction Blond_Hair --out blond.gif
    python main.py directions               fit and cache the latent directions
    python main.py bench [--under-load]     interactive speed (quiet, and beside a CPU-bound competitor)
    python main.py eval | eval-control | eval-photo-edits | info FILE
    python main.py train-gan|train-classifier|train-encoder|bench-gan ...   (see training/)
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from core.seed import MAX_SEED
from core.messages import one_line

ROOT = Path(__file__).resolve().parent
TRAINING = {
    "train-gan": "training.train_gan",
    "train-classifier": "training.train_classifier",
    "train-encoder": "training.train_encoder",
    "bench-gan": "training.bench_gan",
    "eval": "training.evaluate",
    "eval-control": "training.eval_control",
    "eval-photo-edits": "training.eval_photo_edits",
    "bench": "training.bench_app",
}

MAX_FACES = 1024  # generate --n: a 32×32 grid; more is a job for a loop over seeds
MAX_FRAMES = 2000  # frames of one GIF (steer steps, walk frames): they are held in memory until written


def _int_in(lo: int, hi: int):
    """argparse type: an integer from lo to hi (a clear usage error otherwise, never a traceback)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be from {lo} to {hi:,}, got {value:,}")
        return value
    return parse


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--models", default=None, help="folder with the checkpoints (default: resources/models)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0, help="random face to start from")
    p.add_argument("--out", default=out)
    p.add_argument("--size", type=int, default=256, help="output pixels per face")
    p.add_argument("--smooth", action="store_true", help="smooth (LANCZOS) instead of crisp upscaling")


def _session(p: argparse.ArgumentParser) -> None:
    p.add_argument("--session", default=None, metavar="FILE",
                   help="start from this session's face (when it exists and no --seed is given) and record the "
                        "result in it (.lsteer, as File → Save session writes)")
    p.set_defaults(seed=None)  # None: the session's face, else seed 0


def _gif(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fps", type=int, default=12)
    p.add_argument("--pingpong", action="store_true", help="play forwards then backwards")
    p.add_argument("--captions", action="store_true", help="write the edited attributes' probabilities")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("generate", help="random faces to a PNG grid")
    _common(p, "faces.png")
    p.add_argument("--n", type=_int_in(1, MAX_FACES), default=None,
                   help="number of faces (default 16; a session's face is one)")
    _session(p)
    p = sub.add_parser("steer", help="classifier-gradient steering; GIF of the trajectory (or PNG)")
    _common(p, "steer.gif")
    _gif(p)
    p.add_argument("--more", action="append", default=[], metavar="ATTR")
    p.add_argument("--less", action="append", default=[], metavar="ATTR")
    p.add_argument("--lock", action="append", default=None, metavar="ATTR",
                   help="preserve only these (default: preserve all other attributes)")
    p.add_argument("--steps", type=_int_in(0, MAX_FRAMES - 1), default=30)
    p.add_argument("--step-size", type=float, default=None)
    p.add_argument("--lambda", dest="lam", type=float, default=None, help="preservation weight λ (0 = plain)")
    p.add_argument("--until", type=float, default=None,
                   help="stop once targets pass this probability (0: always run every step)")
    p.add_argument("--in-photo", action="store_true",
                   help="paste every frame into the photo the face came from (a --session face opened from a "
                        "photo): the GIF or PNG has the photo's size, longest side at most 512 px; --size does "
                        "not apply")
    _session(p)
    p = sub.add_parser("edit", help="the window's sliders: ATTR=ALPHA moves the face |α|/3 of the way to what "
                                    "its more/less makes of it; PNG")
    _common(p, "edit.png")
    p.add_argument("--set", action="append", default=[], metavar="ATTR=ALPHA", help="slider strength, ±3 at the end")
    p.add_argument("--lock", action="append", default=[], metavar="ATTR", help="keep these while editing")
    _session(p)
    p = sub.add_parser("invert", help="photo -> aligned crop -> z -> the face's own tuned G; PNG of the result")
    _common(p, "inverted.png")
    p.add_argument("photo")
    p.add_argument("--steps", type=_int_in(0, 10_000), default=40, help="z refinement steps")
    p.add_argument("--tune-steps", type=_int_in(0, 10_000), default=None, help="generator tuning steps (0 = no tuning)")
    p.add_argument("--crop-out", default=None, help="also write the aligned crop (same framing as --out)")
    p.add_argument("--paste-out", default=None, help="also write the result pasted back into the photo")
    p.add_argument("--save-z", default=None, help="also save z (and the generator change) to this .pt file")
    p.add_argument("--session", default=None, metavar="FILE",
                   help="record the photo's face (with its own generator and the photo) in this session, as a new "
                        "face; the window, `edit`, `steer --in-photo` and `walk` then start from it")
    p = sub.add_parser("walk", help="keyframe path (--to-seed) or walk along a direction; GIF")
    _common(p, "walk.gif")
    _gif(p)
    p.add_argument("--session", default=None, metavar="FILE",
                   help="start from this session's face (when no --seed is given); nothing is recorded")
    p.set_defaults(seed=None)
    p.add_argument("--to-seed", type=_int_in(0, MAX_SEED), action="append", default=[],
                   help="next keyframe (repeatable)")
    p.add_argument("--direction", default=None, metavar="ATTR")
    p.add_argument("--max-alpha", type=float, default=None,
                   help="the walk's reach along the direction (default: a slider's end in the window, 3)")
    p.add_argument("--frames", type=_int_in(2, MAX_FRAMES), default=24,
                   help="frames per segment (keyframes) or in all (direction)")
    p.add_argument("--loop", action="store_true", help="return to the first keyframe")
    p = sub.add_parser("directions", help="fit the latent directions of the generator and save them")
    p.add_argument("--models", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--samples", type=_int_in(100, 10_000_000), default=None,
                   help="generated faces to fit on (default 200,000)")
    p.add_argument("--out", default=None, help="default: the user cache (resources/models/directions.pt to ship)")
    p = sub.add_parser("info", help="print a checkpoint's metadata")
    p.add_argument("checkpoint")
    sub.add_parser("install-desktop", help="add Latent Steer to the Linux desktop's application menu")
    for name, module in TRAINING.items():
        sub.add_parser(name, help=f"python -m {module} (arguments passed through)", add_help=False)
    return parser


# ---------------------------------------------------------------------------------------------


def _engine(args: argparse.Namespace):
    from core.engine import MODELS_DIR, Engine

    return Engine(args.models or MODELS_DIR, device=args.device, start_worker=False)


def _progress(label: str):
    """A one-line textual progress callback for long jobs."""
    from core.engine import Notice, Progress

    def show(item) -> None:
        if isinstance(item, Notice):
            print(f"\nnote: {item.text}", file=sys.stderr)
        elif isinstance(item, Progress):
            end = "\n" if item.step >= item.total else ""
            print(f"\r{label}: {item.step}/{item.total} {item.message}", end=end, file=sys.stderr, flush=True)
    return show


def _save_tensor(obj: object, path: str) -> None:
    """`torch.save` through the one atomic writer: a failed write keeps the previous file."""
    from core.atomic import save_tensor_atomic

    save_tensor_atomic(obj, path)


def _check_out(out: str, *suffixes: str, option: str = "--out") -> None:
    """An output option must name a file of a kind this command writes (x.txt used to get PNG bytes)."""
    if not out or not out.lower().endswith(suffixes):
        kinds = " or ".join(suffixes)
        raise ValueError(f"{option} {out!r}: this command writes {kinds.upper().replace('.', '')}; "
                         f"give a file name ending in {kinds}")


def _check_alpha(what: str, alpha: float, z_dim: int) -> None:
    from core.latent import max_alpha

    limit = max_alpha(z_dim)
    if not math.isfinite(alpha) or abs(alpha) > limit:
        raise ValueError(f"{what}={alpha:g}: the strength must be within ±{limit:.1f} for this generator "
                         f"(twice the typical length of z; beyond it the edit is all that is left of the face)")


def _canonical(engine, names: list[str], option: str) -> list[str]:
    """Attribute names as the models spell them (`smiling` -> `Smiling`): a session records only
    canonical names, so it opens again; an unknown name is an error before any work."""
    try:
        return [engine.attributes[engine.attribute_index(n)] for n in names]
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


def _gif_request(args: argparse.Namespace, source: str, **fields):
    """The GIF the window's dialog would make (core.jobs.export_gif), from the command's options;
    `source` names its kind: steer, path or walk."""
    from core.export import GifOptions
    from core.jobs import PathGif, SteerGif, WalkGif

    kind = {"steer": SteerGif, "path": PathGif, "walk": WalkGif}[source]
    options = GifOptions(size=args.size, smooth=args.smooth, fps=args.fps, pingpong=args.pingpong)
    return kind(path=Path(args.out), options=options, captions=args.captions, **fields)


def _caption(engine, frame, names: list[str]) -> str:
    from core.jobs import probs_caption

    return probs_caption(engine, frame, names)


def cmd_generate(args: argparse.Namespace) -> int:
    from core.export import check_output_pixels, save_png_grid

    from core.session import SessionFile, face_z

    _check_out(args.out, ".png")
    check_output_pixels(args.n or 16, args.size, "PNG grid")
    engine = _engine(args)
    session = SessionFile(args.session, engine)
    origin = session.origin(args.seed)
    if origin is session.current:  # the session's face: one face, not a grid of seeds
        if args.n not in (None, 1):
            raise ValueError("--n: a session holds one face; add --seed N for a grid of random faces")
        frames, what = engine.render(face_z(engine, origin), origin.generator), f"the face of {args.session}"
    else:
        n = args.n or 16
        frames, what = engine.render(engine.z_from_seed(origin.seed, n)), f"{n} faces (seed {origin.seed})"
    path = save_png_grid([f.image for f in frames], args.out, nrow=math.ceil(math.sqrt(len(frames))), size=args.size,
                         smooth=args.smooth)
    print(f"wrote {what} to {path}")
    if origin is not session.current and session.record(origin):
        print(f"recorded seed {origin.seed} in {args.session}")
    return 0


def cmd_steer(args: argparse.Namespace) -> int:
    from core.export import save_png
    from core.jobs import export_gif
    from core.policy import WINDOW_STEER
    from core.worker import run_inline

    if not args.more and not args.less:
        raise ValueError("say what to change: --more ATTR and/or --less ATTR")
    _check_out(args.out, ".gif", ".png")
    if args.out.lower().endswith(".gif"):
        _gif_request(args, "steer", steps=[], targets=[]).options.validate(n_frames=args.steps + 1)  # before any work
    engine = _engine(args)
    more, less = _canonical(engine, args.more, "--more"), _canonical(engine, args.less, "--less")
    both = sorted(set(more) & set(less))
    if both:
        raise ValueError(f"--more and --less both name {', '.join(both)}: say which way to steer it")
    targets = {**{a: 1.0 for a in more}, **{a: -1.0 for a in less}}
    if args.lock is not None:
        args.lock = _canonical(engine, args.lock, "--lock")
    config = WINDOW_STEER.override(steps=args.steps, step_size=args.step_size, preserve_weight=args.lam,
                                until=args.until)
    if args.until == 0:
        config.until = None  # 0: always run every step
    from core.history import EditState
    from core.session import SessionFile, face_z

    session = SessionFile(args.session, engine)
    origin = session.origin(args.seed)
    photo = getattr(origin.generator, "photo", None) if args.in_photo else None
    if args.in_photo and photo is None:
        raise ValueError("--in-photo needs a face that came from a photo: give --session FILE whose face was "
                         "opened from a photo (and no --seed)")
    locked = args.lock if args.lock is not None else (origin.locked_list or None)
    outcome = run_inline(engine.steer_job, face_z(engine, origin), targets, locked, config, origin.generator,
                         on_progress=_progress("steering"))
    names = list(targets)
    first, last = outcome.frames[0], outcome.frames[-1]
    print(f"{_caption(engine, first, names)}  ->  {_caption(engine, last, names)} "
          f"in {len(outcome.frames) - 1} steps")
    if args.out.lower().endswith(".png"):
        path = (save_png(photo.paste([last.image])[0], args.out) if photo is not None
                else save_png(last.image, args.out, size=args.size, smooth=args.smooth))
    else:
        request = _gif_request(args, "steer", steps=outcome.frames, targets=names, photo=photo)
        path = run_inline(export_gif, engine, request)
    print(f"wrote {path}")
    label = " ".join([f"more {a}" for a in more] + [f"less {a}" for a in less])
    if session.record(origin, EditState.steered(origin, last.z, label)):
        print(f"recorded the steered face in {args.session}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from core.export import save_png_grid

    alphas = {}
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            alphas[name] = float(value)
        except ValueError:
            raise ValueError(f"--set needs ATTR=NUMBER, got {item!r}") from None
    if not alphas:
        raise ValueError("say what to edit: --set ATTR=ALPHA (e.g. --set Smiling=2)")
    from core.session import SessionFile, face_z

    _check_out(args.out, ".png")
    engine = _engine(args)
    alphas = dict(zip(_canonical(engine, list(alphas), "--set"), alphas.values()))
    args.lock = _canonical(engine, args.lock, "--lock")
    for name, alpha in alphas.items():
        _check_alpha(f"--set {name}", alpha, engine.z_dim)
    session = SessionFile(args.session, engine)
    origin = session.origin(args.seed)  # the sliders add to the face's own (a session's face may have some)
    edited = origin.derive(" ".join(f"{k} {v:+.1f}" for k, v in alphas.items()), alphas={**origin.alphas, **alphas},
                           locked=origin.locked | set(args.lock))
    before = engine.render(face_z(engine, origin), origin.generator)[0]
    after = engine.render(face_z(engine, edited), edited.generator)[0]
    edited.z = after.z
    names = list(alphas)
    print(f"{_caption(engine, before, names)}  ->  {_caption(engine, after, names)}")
    path = save_png_grid([before.image, after.image], args.out, nrow=2, size=args.size, smooth=args.smooth)
    print(f"wrote before | after to {path}")
    if session.record(origin, edited):
        print(f"recorded the edit in {args.session}")
    return 0


def cmd_invert(args: argparse.Namespace) -> int:
    import numpy as np

    from core.align import paste_back
    from core.data import open_image
    from core.export import save_png
    from core.align import crop_face
    from core.inversion import InvertConfig
    from core.worker import run_inline

    from core.session import SessionFile

    config = InvertConfig(steps=args.steps)
    if args.tune_steps is not None:
        config.tune.steps = args.tune_steps
    _check_out(args.out, ".png")  # every input and output checked before the first second of work
    for option, value in (("--crop-out", args.crop_out), ("--paste-out", args.paste_out)):
        if value:
            _check_out(value, ".png", option=option)
    if args.save_z:
        _check_out(args.save_z, ".pt", option="--save-z")
    photo = open_image(args.photo)
    engine = _engine(args)
    session = SessionFile(args.session, engine) if args.session else None
    crop = crop_face(photo)
    outcome = run_inline(engine.invert_job, crop, config, on_progress=_progress("inverting"))
    res = outcome.result
    tuned = f" -> tuned {outcome.tuning.psnr_db:.2f} dB" if outcome.tuning else ""
    print(f"face {'found at ' + str(crop.face) + ' (' + crop.method + ')' if crop.face else 'not found (centre crop)'}; "
          f"PSNR encoder {res.psnr_encoder_db:.2f} dB -> refined {res.psnr_db:.2f} dB{tuned}")
    path = save_png(outcome.frame.image, args.out, size=args.size, smooth=args.smooth)
    print(f"wrote the result to {path}")
    if args.crop_out:
        print(f"wrote the aligned crop to {save_png(crop.image, args.crop_out, size=args.size, smooth=args.smooth)}")
    if args.paste_out:
        pasted = paste_back(photo, outcome.frame.image.permute(1, 2, 0).numpy(), np.asarray(crop.transform))
        print(f"wrote the result pasted into the photo to {save_png(pasted, args.paste_out)}")
    if args.save_z:
        _save_tensor({"z": res.z, "generator_delta": outcome.delta.to_dict() if outcome.delta else None}, args.save_z)
    if session is not None:
        from core.history import EditState

        z = outcome.frame.z
        face = EditState.photo_face(z, Path(args.photo).name, outcome.delta)
        print(f"recorded the photo's face in {session.record(face)}")
    return 0


def cmd_walk(args: argparse.Namespace) -> int:
    from core.jobs import export_gif
    from core.policy import SLIDER_MAX_ALPHA
    from core.history import EditState
    from core.session import SessionFile
    from core.worker import run_inline

    _check_out(args.out, ".gif")
    engine = _engine(args)
    origin = SessionFile(args.session, engine).origin(args.seed)  # a session's face, or the seed's (default 0)
    if args.direction:
        if args.max_alpha is None:
            args.max_alpha = SLIDER_MAX_ALPHA  # the window's slider range: one policy for both
        _check_alpha("--max-alpha", args.max_alpha, engine.z_dim)
        engine.attribute_index(args.direction)  # a clear error for an unknown name, before any work
        request = _gif_request(args, "walk", state=origin, attribute=args.direction,
                               max_alpha=args.max_alpha, count=args.frames, loop=args.loop)
        count = args.frames
    elif args.to_seed:
        pins = [origin] + [EditState.seed_face(s) for s in args.to_seed]
        request = _gif_request(args, "path", pins=pins, frames_per_segment=args.frames, loop=args.loop)
        count = (len(pins) - (0 if args.loop else 1)) * args.frames + (0 if args.loop else 1)
    else:
        raise ValueError("give --to-seed N (keyframes) or --direction ATTR")
    if count > MAX_FRAMES:
        raise ValueError(f"that walk has {count:,} frames; one GIF holds at most {MAX_FRAMES:,} "
                         "(fewer --frames or keyframes)")
    request.options.validate(n_frames=count)  # frames × size² bounded before any is rendered
    path = run_inline(export_gif, engine, request, on_progress=_progress("rendering"))
    print(f"wrote {count} frames to {path}")
    return 0


def cmd_directions(args: argparse.Namespace) -> int:
    from core.directions import FitConfig
    from core.worker import run_inline

    engine = _engine(args)
    config = FitConfig() if args.samples is None else FitConfig(samples=args.samples)
    directions = run_inline(engine.fit_directions_job, config, args.out, on_progress=_progress("fitting"))
    acc, names = directions.val_accuracy, directions.attributes
    print(f"fitted {len(names)} directions; boundary validation accuracy mean {100 * acc.mean():.1f} %, "
          f"min {100 * acc.min():.1f} % ({names[int(acc.argmin())]})")
    balanced = directions.val_balanced_accuracy
    if balanced is not None:
        print(f"balanced accuracy (mean of the two class recalls) mean {100 * balanced.mean():.1f} %, "
              f"min {100 * balanced.min():.1f} % ({names[int(balanced.argmin())]})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from core.checkpoint import read_metadata

    meta = read_metadata(args.checkpoint)
    train = meta.get("train")
    if isinstance(train, dict):
        meta["train"] = {k: v for k, v in train.items() if k != "history"}
    print(json.dumps(meta, indent=2, default=str))
    return 0


def cmd_install_desktop(args: argparse.Namespace) -> int:
    """Put the launcher entry and the icon where Linux desktops look ($XDG_DATA_HOME, ~/.local/share)."""
    import os
    import shutil

    import resources

    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    apps, icons = data / "applications", data / "icons" / "hicolor" / "256x256" / "apps"
    apps.mkdir(parents=True, exist_ok=True)
    icons.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resources.ICON, icons / "latent-steer.png")
    entry = resources.DESKTOP_ENTRY.read_text()
    launcher = shutil.which("latent-steer")
    if launcher is None:  # run from a checkout: start this interpreter on this main.py
        entry = entry.replace("Exec=latent-steer", f"Exec={sys.executable} {Path(__file__).resolve()}")
    (apps / "latent-steer.desktop").write_text(entry)
    print(f"wrote {apps / 'latent-steer.desktop'} and {icons / 'latent-steer.png'}")
    return 0


def cmd_gui() -> int:
    try:
        from ui.app import run
    except ImportError as exc:  # PySide6 or the system's Qt libraries are missing
        print(f"The desktop window cannot start ({exc}). Install the app with `pip install -e .`, or use the "
              "subcommands (see --help).", file=sys.stderr)
        return 2
    return run()


COMMANDS = {"generate": cmd_generate, "steer": cmd_steer, "edit": cmd_edit, "invert": cmd_invert,
            "walk": cmd_walk, "directions": cmd_directions, "info": cmd_info,
            "install-desktop": cmd_install_desktop}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # CelebAError, CheckpointError and ImageLoadError are ValueErrors; a missing file, a folder
    # where a file belongs or a full disk are OSErrors: each is one line, never a traceback.
    # Training keeps tracebacks for RuntimeErrors (a bug or a device failure mid-run).
    if argv and argv[0] in TRAINING:
        import importlib

        run, expected = (lambda: importlib.import_module(TRAINING[argv[0]]).main(argv[1:])), (ValueError, OSError)
    else:
        args = build_parser().parse_args(argv)
        if args.command is None:
            return cmd_gui()
        run, expected = (lambda: COMMANDS[args.command](args)), (RuntimeError, ValueError, OSError)
    try:
        code = run()
    except expected as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0




def entry() -> None:
    """The `latent-steer` command that `pip install .` puts on the PATH: the same as `python main.py`."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
