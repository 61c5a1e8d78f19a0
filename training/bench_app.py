"""Interactive speed of the app's model work: prints numbers, asserts nothing.

    python main.py bench [--models resources/models] [--repeats 200]

On the CPU always, and on CUDA when present:
- direction edit -> image (batch 1): z + α·d (conditioned on a locked attribute), G, the
  classifier readout and the uint8 conversion, i.e. what a slider move costs; p50/p95 ms;
- classifier-gradient steering: steps/s at batch 1 and 16;
- inversion: face crop of a 400-px photo + encoder + 100 refinement steps, seconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image

from core.engine import MODELS_DIR, Engine
from core.inversion import InvertConfig, crop_face, invert
from core.steering import SteerConfig, steer
from core.worker import run_inline


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=str(MODELS_DIR))
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--steer-steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _photo(engine: Engine) -> Image.Image:
    """A 400×400 'photo': a generated face upscaled onto a larger canvas, so the crop has work to do."""
    face = engine.render(engine.z_from_seed(5))[0].image.permute(1, 2, 0).numpy()
    canvas = np.full((400, 400, 3), 90, np.uint8)
    canvas[80:320, 80:320] = np.asarray(Image.fromarray(face).resize((240, 240), Image.Resampling.BICUBIC))
    return Image.fromarray(canvas)


def bench_device(models: str, device: str, repeats: int, steer_steps: int) -> dict:
    engine = Engine(models, device=device, start_worker=False)
    dev = engine.device
    out: dict = {"device": engine.device_name, "load_s": engine.load_time_s}
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
    config = SteerConfig(steps=steer_steps, until=None)
    for batch in (1, 16):
        zb = engine.z_from_seed(1, batch)
        run_inline(steer, engine.generator, engine.classifier, zb, {31: 1.0}, None, SteerConfig(steps=3, until=None))
        _sync(dev)
        t = time.perf_counter()
        run_inline(steer, engine.generator, engine.classifier, zb, {31: 1.0}, None, config)
        _sync(dev)
        out[f"steer_steps_per_s_b{batch}"] = steer_steps / (time.perf_counter() - t)
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
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = [bench_device(args.models, d, args.repeats, args.steer_steps) for d in devices]
    print("| device | load | edit→image p50 / p95 | steering b=1 | steering b=16 | inversion (crop+E+100 steps) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        edit = f"{r['edit_ms_p50']:.1f} / {r['edit_ms_p95']:.1f} ms" if "edit_ms_p50" in r else "no directions"
        inv = f"{r['invert_s']:.2f} s" if "invert_s" in r else "no encoder"
        print(f"| {r['device']} | {r['load_s']:.2f} s | {edit} | {r['steer_steps_per_s_b1']:.0f} steps/s | "
              f"{r['steer_steps_per_s_b16']:.0f} steps/s | {inv} |")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
