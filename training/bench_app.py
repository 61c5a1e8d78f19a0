"""Interactive speed of the app's model work: prints numbers, asserts nothing.

    python main.py bench [--models resources/models] [--repeats 200] [--threads N]
    python main.py bench --under-load [--load spin|torch] [--load-procs 1]

On the CPU always, and on CUDA when present (`--precision both`: the CPU again under bf16 autocast,
side by side, a trial of what bf16 would give the app):
- direction edit -> image (batch 1): z + α·d (conditioned on a locked attribute), G, the
  classifier readout and the uint8 conversion, i.e. what a slider move costs; p50/p95 ms;
- classifier-gradient steering: steps/s at batch 1 and 16;
- the canvas map: 49 faces rendered and read, seconds;
- inversion: face crop of a 400-px photo + encoder + 100 refinement steps, seconds;
- a photo as the window opens it (`Engine.invert_job`, the window's `InvertConfig`): preview (the
  drop -> the first face shown: alignment + encoder), refine, tune and edit-ready (the drop -> the
  face's own generator), seconds; and the memory each photo face
  keeps: its generator change (fp16) and its photo for paste-back (`--photo` picks the photo).

Threads: the engine's policy (`core.threads`: cores − 1, `$LATENT_STEER_THREADS`), or `--threads`.
`--under-load` measures twice, quiet and then beside competitor processes it starts itself
(`spin`: a pure-Python busy loop on one core each; `torch`: matrix products on torch's default
threads, i.e. a second torch app), stops them, and prints the two side by side with the slowdown.
A machine that is already busy has no truly quiet run: the table is a comparison, not a record.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image

from core.data import open_image
from core.engine import MODELS_DIR, Engine
from core.align import crop_face
from core.inversion import InvertConfig, invert
from core.steering import SteerConfig, steer
from core.worker import run_inline


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=str(MODELS_DIR))
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--steer-steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: the app's policy: $LATENT_STEER_THREADS, $OMP_NUM_THREADS or cores - 1)")
    p.add_argument("--under-load", action="store_true",
                   help="measure quiet, then beside CPU-bound competitor processes; print both side by side")
    p.add_argument("--load", choices=sorted(COMPETITORS), default="spin", help="what each competitor runs")
    p.add_argument("--load-procs", type=int, default=1, help="how many competitor processes (default 1)")
    p.add_argument("--devices", default="cpu,cuda",
                   help="comma-separated devices to time (cuda only where a GPU is present)")
    p.add_argument("--photo", default=None, help="photo for the photo stages (default: a generated 400-px one)")
    p.add_argument("--precision", choices=("fp32", "both"), default="fp32",
                   help="both: time the CPU stages again under bf16 autocast and print fp32 and bf16 side by side")
    p.add_argument("--startup", action="store_true",
                   help="also time launch -> splash -> window -> first face (training.bench_startup, 3 launches)")
    return p.parse_args(argv)


COMPETITORS = {
    "spin": "print('ready', flush=True)\nwhile True:\n    pass\n",
    "torch": ("import torch\na = torch.randn(384, 384)\nprint('ready', flush=True)\n"
              "while True:\n    a = torch.tanh(a @ a)\n"),
}


@contextlib.contextmanager
def competitors(kind: str, n: int) -> Iterator[list[subprocess.Popen]]:
    """Start `n` CPU-bound processes, wait until each runs, and stop them (always) on exit."""
    procs: list[subprocess.Popen] = []
    # a competing torch app uses torch's default threads, whatever this process was told
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        for _ in range(max(0, n)):
            procs.append(subprocess.Popen([sys.executable, "-c", COMPETITORS[kind]], stdout=subprocess.PIPE,
                                          stdin=subprocess.DEVNULL, text=True, env=env))
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the {kind} competitor process did not start (exit code {proc.poll()})")
        time.sleep(0.5)  # let the scheduler see them as busy before measuring
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _photo(engine: Engine) -> Image.Image:
    """A 400×400 'photo': a generated face upscaled onto a larger canvas, so the crop has work to do."""
    face = engine.render(engine.z_from_seed(5))[0].image.permute(1, 2, 0).numpy()
    canvas = np.full((400, 400, 3), 90, np.uint8)
    canvas[80:320, 80:320] = np.asarray(Image.fromarray(face).resize((240, 240), Image.Resampling.BICUBIC))
    return Image.fromarray(canvas)


def photo_stages(engine: Engine, photo: Image.Image) -> dict:
    """The window's photo path, timed by stage from the drop (a warm-up run first)."""
    from core.engine import Progress

    config = InvertConfig()
    warm_up = InvertConfig(steps=2, tune=dataclasses.replace(config.tune, steps=2))
    run_inline(engine.invert_job, crop_face(photo), warm_up)
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def mark(item) -> None:
        if isinstance(item, Progress) and item.frame is not None:
            _sync(engine.device)
            now = time.perf_counter() - t0
            marks.setdefault("preview_s", now)
            if item.step <= config.steps:
                marks["refined_at"] = now

    crop = crop_face(photo)
    outcome = run_inline(engine.invert_job, crop, config, on_progress=mark)
    _sync(engine.device)
    ready = time.perf_counter() - t0
    refined = marks.get("refined_at", marks["preview_s"])
    out = {"preview_s": marks["preview_s"], "refine_s": refined - marks["preview_s"], "tune_s": ready - refined,
           "ready_s": ready, "photo_face_found": crop.face is not None}
    if outcome.delta is not None:
        out["delta_bytes"] = outcome.delta.nbytes
        out["photo_bytes"] = outcome.delta.photo.nbytes if outcome.delta.photo is not None else 0
    return out


def bench_device(models: str, device: str, repeats: int, steer_steps: int, threads: int | None = None,
                 photo: Image.Image | None = None, bf16: bool = False) -> dict:
    """Every stage's time on `device`; `bf16`: the model work under bf16 autocast, as a trial of
    what bf16 would give the app (the app itself computes in fp32 on the CPU, `core.device`)."""
    engine = Engine(models, device=device, start_worker=False, threads=threads)
    with torch.autocast(engine.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
        out = _bench_engine(engine, repeats, steer_steps, photo)
    out["precision"] = "bf16 autocast" if bf16 else "fp32"
    return out


def _bench_engine(engine: Engine, repeats: int, steer_steps: int, photo: Image.Image | None) -> dict:
    dev = engine.device
    out: dict = {"device": engine.device_name, "load_s": engine.load_time_s}
    z = engine.z_from_seed(0)
    grid = engine.z_from_seed(3, 49)
    engine.render(grid[:4])
    t = time.perf_counter()
    engine.render(grid)  # the canvas map's 7×7 faces (rendered and read by the classifier)
    _sync(dev)
    out["map_49_s"] = time.perf_counter() - t
    z = engine.z_from_seed(0)
    if engine.directions is not None:
        smiling, male = engine.attribute_index("Smiling"), engine.attribute_index("Male")
        times = []
        for i in range(repeats + 10):
            t = time.perf_counter()
            engine.edit_job(z, {smiling: (i % 20) / 5 - 2}, [male])
            _sync(dev)
            if i >= 10:
                times.append(1000 * (time.perf_counter() - t))
        times.sort()
        out["edit_ms_p50"] = statistics.median(times)
        out["edit_ms_p95"] = times[int(0.95 * (len(times) - 1))]
    out["slider_first_s"] = slider_first_move_seconds(engine)
    config = SteerConfig(steps=steer_steps, until=None)
    for batch in (1, 16):
        zb = engine.z_from_seed(1, batch)
        run_inline(steer, engine.generator, engine.classifier, zb, {31: 1.0}, None, SteerConfig(steps=3, until=None))
        _sync(dev)
        t = time.perf_counter()
        run_inline(steer, engine.generator, engine.classifier, zb, {31: 1.0}, None, config)
        _sync(dev)
        out[f"steer_steps_per_s_b{batch}"] = steer_steps / (time.perf_counter() - t)
    out["more_30_s"] = window_more_seconds(engine, z)
    if engine.encoder is not None:
        photo = _photo(engine)
        run_inline(invert, engine.generator, engine.encoder, engine.classifier, crop_face(photo).image,
                   InvertConfig(steps=3))
        _sync(dev)
        t = time.perf_counter()
        crop = crop_face(photo)
        run_inline(invert, engine.generator, engine.encoder, engine.classifier, crop.image, InvertConfig(steps=100))
        _sync(dev)
        out["invert_s"] = time.perf_counter() - t
        out["face_found"] = crop.face is not None
        out.update(photo_stages(engine, photo or _photo(engine)))
    return out


def slider_first_move_seconds(engine: Engine) -> float:
    """Seconds for a slider's first move on a new face (its end is steered once, then cached;
    the drag after it is the edit→image time), median over 3 faces."""
    smiling = engine.attribute_index("Smiling")
    times = []
    for seed in (10, 11, 12):
        z = engine.z_from_seed(seed)
        t = time.perf_counter()
        engine.edit_job(z, {smiling: 1.0})
        _sync(engine.device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def window_more_seconds(engine: Engine, z: torch.Tensor, steps: int = 30) -> float:
    """Seconds for the window's "more Smiling" run to its full `steps` (the shipped policy: identity
    term, guide, held attributes), median of 3 — what a user waits for after a click."""
    base = dataclasses.replace(engine.steer_config, steps=steps, until=None)
    run_inline(engine.window_steer_job, z, "Smiling", +1, None, None, dataclasses.replace(base, steps=2))  # warm-up
    times = []
    for _ in range(3):
        t = time.perf_counter()
        run_inline(engine.window_steer_job, z, "Smiling", +1, None, None, base)
        _sync(engine.device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _num(x: float) -> str:
    """Three significant figures at most, never a bare 0 for a slow rate: 124, 16.2, 0.41."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 1 else f"{x:.2g}"


def _fmt_row(r: dict) -> str:
    edit = f"{_num(r['edit_ms_p50'])} / {_num(r['edit_ms_p95'])} ms" if "edit_ms_p50" in r else "no directions"
    if "slider_first_s" in r:
        edit += f" (a slider's first move {_num(r['slider_first_s'])} s)"
    inv = f"{_num(r['invert_s'])} s" if "invert_s" in r else "no encoder"
    return (f"| {r['device']} | {r['load_s']:.2f} s | {edit} | {_num(r['steer_steps_per_s_b1'])} steps/s | "
            f"{_num(r['steer_steps_per_s_b16'])} steps/s | {_num(r['more_30_s'])} s | {inv} |")


# (label, key, unit, higher is better)
METRICS = [("edit→image p50", "edit_ms_p50", "ms", False), ("edit→image p95", "edit_ms_p95", "ms", False),
           ("steering b=1", "steer_steps_per_s_b1", "steps/s", True),
           ("steering b=16", "steer_steps_per_s_b16", "steps/s", True),
           ("a slider's first move", "slider_first_s", "s", False),
           ("canvas map, 49 faces", "map_49_s", "s", False),
           ("window \"more\", 30 steps", "more_30_s", "s", False),
           ("inversion (crop+E+100 steps)", "invert_s", "s", False),
           ("photo: preview", "preview_s", "s", False), ("photo: refine", "refine_s", "s", False),
           ("photo: tune", "tune_s", "s", False), ("photo: edit-ready", "ready_s", "s", False)]


def _fmt_photo(r: dict) -> str:
    if "ready_s" not in r:
        return f"| {r['device']} | no encoder | | | | |"
    memory = (f"{r['delta_bytes'] / 2**20:.2f} MB + photo {r['photo_bytes'] / 2**20:.2f} MB"
              if "delta_bytes" in r else "no tuning")
    return (f"| {r['device']} | {_num(r['preview_s'])} s | {_num(r['refine_s'])} s | {_num(r['tune_s'])} s | "
            f"{_num(r['ready_s'])} s | {memory} |")


def slowdown(quiet: dict, loaded: dict, key: str, higher_better: bool) -> float | None:
    """How many times slower the loaded run was (1.0 = unaffected)."""
    if key not in quiet or key not in loaded or not quiet[key] or not loaded[key]:
        return None
    return quiet[key] / loaded[key] if higher_better else loaded[key] / quiet[key]


def side_by_side(quiet: dict, loaded: dict, load: str, columns: tuple[str, str, str] = ("quiet", "loaded", "slowdown")
                 ) -> list[str]:
    first, second, ratio = columns
    lines = [f"{quiet['device']}: {first} vs {load}", "", f"| | {first} | {second} | {ratio} |", "|---|---|---|---|"]
    for label, key, unit, higher in METRICS:
        if key not in quiet:
            continue
        factor = slowdown(quiet, loaded, key, higher)
        lines.append(f"| {label} | {_num(quiet[key])} {unit} | {_num(loaded[key])} {unit} | "
                     + (f"{factor:.2f}× |" if factor is not None else "– |"))
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    devices = [d for d in args.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    if not devices:
        raise SystemExit(f"--devices {args.devices!r}: nothing to time here (cpu, or cuda with a GPU)")

    photo = open_image(args.photo) if args.photo else None

    def run_all() -> list[dict]:
        return [bench_device(args.models, d, args.repeats, args.steer_steps, args.threads, photo) for d in devices]

    results = run_all()
    print("| device | load | edit→image p50 / p95 | steering b=1 | steering b=16 | window \"more\", 30 steps "
          "(goal ≤ 1 s) | inversion (crop+E+100 steps) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(_fmt_row(r))
    print()
    print(f"photo: {args.photo or 'a generated 400-px one'}; seconds from the drop")
    print("| device | preview (the first face shown; goal ≤ 0.3 s) | refine | tune | edit-ready (goal ≤ 5 s) "
          "| memory per photo face |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(_fmt_photo(r))
    if args.startup:
        from training.bench_startup import measure, report

        print()
        print(report(measure(3)))
    if args.precision == "both" and "cpu" in devices:
        fp32 = results[devices.index("cpu")]
        bf16 = bench_device(args.models, "cpu", args.repeats, args.steer_steps, args.threads, photo, bf16=True)
        fp32["bf16"] = bf16
        print()
        print("\n".join(side_by_side(fp32, bf16, "bf16 autocast", ("fp32", "bf16", "bf16 time / fp32 time"))))
    if not args.under_load:
        return results
    load = f"{args.load_procs} {args.load} competitor process{'es' if args.load_procs != 1 else ''}"
    with competitors(args.load, args.load_procs):
        loaded = run_all()
    for quiet, busy in zip(results, loaded):
        quiet["loaded"] = busy
        print()
        print("\n".join(side_by_side(quiet, busy, load)))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
