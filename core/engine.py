"""The engine: owns the frozen models on one device and runs every model job on one worker thread.

The UI and the command line use only this class. Each `*_job` method is a job in the worker's
sense (a generator that yields progress and returns a result, or a plain function): the UI
passes it to `submit` (background thread, callbacks), the CLI to `core.worker.run_inline`.
Nothing here imports Qt; results are CPU tensors, so callers never touch the device.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from PIL import Image

import resources
from core.align import FaceCrop, PhotoPlacement, crop_face
from core.checkpoint import CheckpointError, load_checkpoint, state_hash
from core.data import default_cache_dir, open_image, to_model_range, to_uint8
from core.device import describe, resolve_device
from core.directions import Directions, FitConfig, fit_directions, load_directions, save_directions
from core.inversion import InvertConfig, InvertResult, invert
from core.latent import on_sphere, sample_codes
from core.models import edit_space, prepare_for_inference
from core.policy import WINDOW_STEER, window_steer_config
from core.slider_paths import EndKey, SliderEnds, along_paths, code_digest
from core.steering import SteerConfig, SteerResult, steer
from core.tuning import GeneratorDelta, TuneResult, tune_generator
from core.threads import apply_thread_policy
from core.worker import JobHandle, Worker, run_inline

MODELS_DIR = resources.MODELS_DIR
MAX_BATCH = 256
TUNED_CACHE = 3  # photo generators kept built on the device; the rest stay fp16 deltas on the CPU
READ_EVERY = 5  # inversion: every 5th live frame carries the classifier's reading (for the window's bars)


@dataclass
class Frame:
    """A rendered face: its code, its picture and what the classifier reads on it (CPU)."""

    z: torch.Tensor  # (d,)
    image: torch.Tensor  # (3, 64, 64) uint8
    probs: torch.Tensor  # (A,)


@dataclass
class Progress:
    """A progress event of a long job: where it is and (optionally) the face right now."""

    step: int
    total: int
    frame: Frame | None = None
    message: str = ""
    stage: str = ""  # the part of a multi-stage job ("encode", "refine", "tune" for a photo)


@dataclass
class Notice:
    """Something the user should read (fell back to CPU, no face found, ...)."""

    text: str


@dataclass
class SteerOutcome:
    frames: list[Frame]  # one per trajectory step of face 0 (for the UI and GIFs)
    result: SteerResult
    codes: torch.Tensor | None = None  # (N, d) CPU: every face's result, from `window_steer_job`


@dataclass
class InvertOutcome:
    crop: FaceCrop
    frame: Frame
    result: InvertResult
    notices: list[str] = field(default_factory=list)
    delta: GeneratorDelta | None = None  # the face's own generator (pivotal tuning); render with it
    tuning: TuneResult | None = None


class Engine:
    """Frozen G, C, E (+ latent directions) on one device, and the worker that runs jobs on them."""

    def __init__(self, models_dir: str | os.PathLike = MODELS_DIR, device: str = "auto",
                 directions_cache: str | os.PathLike | None = None, start_worker: bool = True,
                 threads: int | None = None):
        """`threads`: torch's CPU thread count (default: the policy of `core.threads`, cores − 1)."""
        t0 = time.perf_counter()
        self.threads = apply_thread_policy(threads)
        self.models_dir = Path(models_dir)
        self.device = resolve_device(device)
        # a style G is edited in w (core.models.WSpaceGenerator): codes, directions and the encoder are w's
        self.generator = edit_space(self._load("generator.pt", "generator"))
        classifier_ck = load_checkpoint(self.models_dir / "classifier.pt", "classifier", self.device)
        self.classifier = prepare_for_inference(classifier_ck.model)
        self.attributes: list[str] = classifier_ck.attributes
        encoder_path = self.models_dir / "encoder.pt"
        self.encoder = self._load("encoder.pt", "encoder") if encoder_path.exists() else None
        if self.encoder is not None and self.encoder.z_dim != self.generator.z_dim:
            raise CheckpointError(f"{encoder_path}: encoder outputs codes of size {self.encoder.z_dim}, "
                                  f"the generator is edited with codes of size {self.generator.z_dim}"
                                  + (" (w: train the encoder for this generator)" if not on_sphere(self.generator) else ""))
        self.generator_hash = state_hash(self.generator)
        self.directions_cache = Path(directions_cache) if directions_cache else default_cache_dir()
        self.directions: Directions | None = self._find_directions()
        self.steer_config: SteerConfig = WINDOW_STEER  # what "+"/"−" runs (core.policy); eval scripts may vary it
        self._tuned: OrderedDict[str, torch.nn.Module] = OrderedDict()
        self._slider_ends = SliderEnds()
        self.worker = Worker() if start_worker else None
        self.load_time_s = time.perf_counter() - t0

    def _load(self, name: str, kind: str) -> torch.nn.Module:
        return prepare_for_inference(load_checkpoint(self.models_dir / name, kind, self.device).model)

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    @property
    def interpolation(self) -> str:
        """How paths between two faces run: along z's prior sphere (slerp), or straight in a style G's w."""
        return "slerp" if on_sphere(self.generator) else "lerp"

    @property
    def device_name(self) -> str:
        return describe(self.device)

    # -- attribute names ---------------------------------------------------------------------

    def attribute_index(self, name: str | int) -> int:
        if isinstance(name, int):
            if not 0 <= name < len(self.attributes):
                raise ValueError(f"attribute index {name} is out of range")
            return name
        lookup = {a.lower(): i for i, a in enumerate(self.attributes)}
        try:
            return lookup[name.lower()]
        except KeyError:
            raise ValueError(f"unknown attribute {name!r}; known: {', '.join(self.attributes)}") from None

    def _indices(self, names: list[str | int] | None) -> list[int]:
        return [self.attribute_index(n) for n in (names or [])]

    # -- directions --------------------------------------------------------------------------

    def _directions_paths(self) -> list[Path]:
        return [self.models_dir / "directions.pt", self.directions_cache / f"directions-{self.generator_hash}.pt"]

    def _find_directions(self) -> Directions | None:
        for path in self._directions_paths():
            if path.exists():
                try:
                    return load_directions(path, self.generator)
                except CheckpointError:
                    continue  # fitted for another generator: refit on demand
        return None

    def fit_directions_job(self, config: FitConfig | None = None, save_to: str | os.PathLike | None = None
                           ) -> Iterator[Progress]:
        """Fit and cache the latent directions of this generator (the sliders need them)."""
        job = fit_directions(self.generator, self.classifier, self.attributes, config)
        directions = yield from _relay(job, lambda item: Progress(step=item[0], total=item[1], message="sampling faces"))
        path = Path(save_to) if save_to else self._directions_paths()[1]
        save_directions(directions, path, train={"samples": (config or FitConfig()).samples})
        self.directions = directions
        return directions

    def require_directions(self) -> Directions:
        if self.directions is None:
            raise RuntimeError("latent directions are not fitted for this generator yet (run the fit job)")
        return self.directions

    # -- the model calls every job uses ------------------------------------------------------

    def generator_for(self, delta: GeneratorDelta | None) -> torch.nn.Module:
        """The shared G, or a photo's own tuned G (the last `TUNED_CACHE` are kept built)."""
        if delta is None:
            return self.generator
        if delta.base_hash != self.generator_hash:
            raise ValueError("this photo was tuned for another generator; invert it again")
        tuned = self._tuned.pop(delta.key, None)
        if tuned is None:
            tuned = delta.apply(self.generator)
        self._tuned[delta.key] = tuned
        while len(self._tuned) > TUNED_CACHE:
            self._tuned.popitem(last=False)
        return tuned

    @torch.no_grad()
    def render(self, z: torch.Tensor, delta: GeneratorDelta | None = None) -> list[Frame]:
        """z (N, d) or (d,) -> frames (with a photo's own generator when `delta` is given)."""
        z = z.detach().float().reshape(-1, self.z_dim)
        if not torch.isfinite(z).all():
            raise ValueError("z contains NaN or infinite values")
        generator = self.generator_for(delta)
        frames = []
        for i in range(0, len(z), MAX_BATCH):
            chunk = z[i:i + MAX_BATCH].to(self.device)
            images = generator(chunk)
            probs = torch.sigmoid(self.classifier(images).float())
            frames += [Frame(z=zz, image=im, probs=p)
                       for zz, im, p in zip(chunk.cpu(), to_uint8(images).cpu(), probs.cpu())]
        return frames

    def z_from_seed(self, seed: int, n: int = 1) -> torch.Tensor:
        return sample_codes(self.generator, n, torch.Generator().manual_seed(int(seed)))

    # -- jobs --------------------------------------------------------------------------------

    def render_job(self, z: torch.Tensor, delta: GeneratorDelta | None = None) -> Frame:
        return self.render(z, delta)[0]

    def random_job(self, seed: int) -> Frame:
        return self.render(self.z_from_seed(seed))[0]

    def edit_z(self, z: torch.Tensor, alphas: dict[str | int, float], locked: list[str | int] | None = None,
               delta: GeneratorDelta | None = None) -> torch.Tensor:
        """The code after the sliders `alphas` (from `z`, with `locked` kept): each slider moves the
        face towards what the window's "+"/"−" makes of it (`core.slider_paths`; under `delta`, a
        photo's own generator)."""
        alphas_idx = {self.attribute_index(k): float(a) for k, a in alphas.items()}
        flat = z.detach().float().reshape(-1, self.z_dim)
        locks = sorted(set(self._indices(locked)))
        moves = [(a, self.slider_ends(flat, k, 1 if a > 0 else -1, locks, delta)) for k, a in alphas_idx.items() if a]
        return along_paths(flat, moves).reshape(z.shape)

    def slider_end_ready(self, z: torch.Tensor, name: str | int, sign: int, locked: list[str | int] | None = None,
                         delta: GeneratorDelta | None = None) -> bool:
        """Whether moving this slider of the face `z` (d,) is instant (its end is steered already)."""
        (key,) = self._end_keys(z.detach().float().reshape(1, -1), self.attribute_index(name), 1 if sign > 0 else -1,
                                self._indices(locked), delta)
        return self._slider_ends.get(key) is not None

    def _end_keys(self, z: torch.Tensor, attr: int, sign: int, locked: list[int], delta: GeneratorDelta | None
                  ) -> list[EndKey]:
        locks, generator, policy = tuple(sorted(set(locked))), delta.key if delta else None, hash(repr(self.steer_config))
        return [EndKey(code_digest(row), attr, sign, locks, generator, policy) for row in z]

    def slider_ends(self, z: torch.Tensor, attr: int, sign: int, locked: list[int],
                    delta: GeneratorDelta | None = None) -> torch.Tensor:
        """(N, d) CPU codes: `window_result` for each face of `z`, cached per face (the first move of
        a slider runs the steering)."""
        keys = self._end_keys(z, attr, sign, locked, delta)
        ends = [self._slider_ends.get(key) for key in keys]
        missing = [i for i, end in enumerate(ends) if end is None]
        if missing:
            for i, end in zip(missing, self.window_result(z[missing], attr, sign, locked, delta)):
                ends[i] = self._slider_ends.put(keys[i], end)
        return torch.stack(ends)

    def window_steer_job(self, z: torch.Tensor, attr: str | int, sign: int, locked: list[str | int] | None = None,
                         delta: GeneratorDelta | None = None, base: SteerConfig | None = None
                         ) -> Iterator[Progress]:
        """The window's "+" (sign 1) or "−" (−1) on `attr`, the one way it is composed: for each face
        of `z` a run configured from what the classifier reads on it now (`window_steer_config` of
        `base`, default `steer_config`), with `locked` kept (none: only the target moves freely).
        Faces that need the same run share one batch. Yields face 0's frames; returns a
        `SteerOutcome` whose `codes` hold every face's result."""
        attr = self.attribute_index(attr)
        z = z.detach().float().reshape(-1, self.z_dim)
        p_now = torch.stack([f.probs for f in self.render(z, delta)])[:, attr]
        configs = [window_steer_config(float(p), sign, base or self.steer_config) for p in p_now]
        codes = z.cpu().clone()
        first: SteerOutcome | None = None
        for config in {repr(c): c for c in configs}.values():
            group = [i for i, c in enumerate(configs) if c == config]
            args = (z[group], {attr: float(sign)}, list(locked or []) or None, config, delta)
            outcome = (yield from self.steer_job(*args)) if 0 in group else run_inline(self.steer_job, *args)
            codes[group] = outcome.result.trajectory[-1]
            first = outcome if 0 in group else first
        first.codes = codes
        return first

    def window_result(self, z: torch.Tensor, attr: int, sign: int, locked: list[int] | None = None,
                      delta: GeneratorDelta | None = None) -> torch.Tensor:
        """(N, d) CPU codes: what the window's "+"/"−" makes of each face of `z` (`window_steer_job`)."""
        return run_inline(self.window_steer_job, z, attr, sign, locked, delta).codes

    def edit_job(self, z: torch.Tensor, alphas: dict[str | int, float], locked: list[str | int] | None = None,
                 delta: GeneratorDelta | None = None) -> Frame:
        return self.render(self.edit_z(z, alphas, locked, delta), delta)[0]

    def steer_job(self, z: torch.Tensor, targets: dict[str | int, float], locked: list[str | int] | None = None,
                  config: SteerConfig | None = None, delta: GeneratorDelta | None = None) -> Iterator[Progress]:
        """Classifier-gradient steering of one face (or a batch); yields a frame per step.

        `locked=None` preserves every non-target attribute; a list preserves just those.
        `delta`: a photo's own generator (steering then moves z under that generator).
        """
        target_idx = {self.attribute_index(k): float(w) for k, w in targets.items()}
        preserve = None if locked is None else self._indices(locked)
        hold = sorted(set(preserve or []) - set(target_idx))  # locks are constraints
        prior = None
        if self.directions is not None and (config or SteerConfig()).guide > 0:
            prior = sum(w * self.directions.conditional(i, hold) for i, w in target_idx.items()
                        if self.directions.available[i])
            prior = prior if isinstance(prior, torch.Tensor) else None
        z = z.reshape(-1, self.z_dim)
        frames = self.render(z[:1], delta)
        job = steer(self.generator_for(delta), self.classifier, z, target_idx, preserve, config, prior, hold)

        def to_progress(s) -> Progress:
            frames.append(Frame(z=s.z[0], image=s.images[0], probs=s.probs[0]))
            return Progress(step=s.step, total=s.total, frame=frames[-1])

        result = yield from _relay(job, to_progress)
        return SteerOutcome(frames=frames, result=result)

    def crop_job(self, source: str | os.PathLike | bytes | Image.Image) -> FaceCrop:
        return crop_face(source if isinstance(source, Image.Image) else open_image(source))

    @torch.no_grad()
    def read(self, image: torch.Tensor) -> torch.Tensor:
        """The classifier's probabilities (A,) for one (3, 64, 64) uint8 face, e.g. a photo's aligned crop."""
        x = to_model_range(image).unsqueeze(0).to(self.device)
        return torch.sigmoid(self.classifier(x).float())[0].cpu()

    def invert_job(self, source: str | os.PathLike | bytes | FaceCrop, config: InvertConfig | None = None
                   ) -> Iterator[Progress | Notice]:
        """Photo -> aligned crop -> E -> refined z -> the face's own tuned G; a frame per step.

        Progress counts the stages in one bar: the encoder's guess (step 0, the first preview), refine
        (steps 1…`config.steps`), tune (`config.tune.steps`, 0 = no tuning), each item naming its
        `stage`. The outcome's `delta` renders the face and keeps the photo (longest side ≤
        `core.align.PLACEMENT_SIDE`) and the face's place in it for paste-back.
        """
        if self.encoder is None:
            raise RuntimeError("no encoder is installed (resources/models/encoder.pt), so photos cannot be inverted")
        config = config or InvertConfig()
        crop = source if isinstance(source, FaceCrop) else crop_face(open_image(source))
        notices = [crop.notice] if crop.notice else []
        for text in notices:
            yield Notice(text)
        total = config.steps + config.tune.steps

        def frame(z: torch.Tensor, image: torch.Tensor, step: int) -> Frame:
            """A live frame; every READ_EVERY-th one carries the classifier's reading (the window's
            bars follow the preview) — each reading costs a forward pass, so not every step."""
            image = to_uint8(image)
            return Frame(z=z, image=image, probs=self.read(image) if step % READ_EVERY == 0 else torch.empty(0))

        weight = crop.inside_weight() if config.mask_padding else None
        job = invert(self.generator, self.encoder, self.classifier, crop.image, config, weight)
        result = yield from _relay(job, lambda s: Progress(
            step=s.step, total=total, frame=frame(s.z[0], s.image[0], s.step),
            message=f"{'encoder' if s.step == 0 else 'refining'}: PSNR {s.psnr_db:.1f} dB",
            stage="encode" if s.step == 0 else "refine"))
        delta = tuning = None
        if config.tune.steps:
            target = to_model_range(crop.image).unsqueeze(0)
            directions = self.directions.vectors if self.directions is not None else None
            job = tune_generator(self.generator, self.classifier, result.z, target, config.tune, self.generator_hash,
                                 directions, weight)
            tuning = yield from _relay(job, lambda s: Progress(
                step=config.steps + s.step, total=total, message=f"tuning: PSNR {s.psnr_db:.1f} dB", stage="tune",
                frame=frame(result.z[0], s.image[0], config.steps + s.step)))
            delta = tuning.delta
            if crop.photo is not None and crop.transform is not None:
                delta.photo = PhotoPlacement.of(crop.photo, crop.transform)
        return InvertOutcome(crop=crop, frame=self.render(result.z, delta)[0], result=result, notices=notices,
                             delta=delta, tuning=tuning)

    def render_path_job(self, zs: torch.Tensor, delta: GeneratorDelta | None = None) -> Iterator[Progress]:
        """Render a latent path (walk, keyframes, trajectory) in chunks, yielding progress."""
        zs = zs.reshape(-1, self.z_dim)
        frames: list[Frame] = []
        chunk = 32
        for i in range(0, len(zs), chunk):
            frames += self.render(zs[i:i + chunk], delta)
            yield Progress(step=len(frames), total=len(zs), frame=frames[-1])
        return frames

    # -- running jobs ------------------------------------------------------------------------

    def submit(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> JobHandle:
        """Run `job(*args)` on the worker thread (see `Worker.submit` for callbacks).

        A CUDA out-of-memory error moves the models to the CPU, emits a `Notice` through
        `on_progress` and runs the job again there.
        """
        if self.worker is None:
            raise RuntimeError("this engine was created without a worker")
        return self.worker.submit(self._with_oom_fallback, job, *args, **kwargs)

    def _with_oom_fallback(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            out = job(*args, **kwargs)
            if hasattr(out, "__next__"):
                out = yield from out
            return out
        except torch.cuda.OutOfMemoryError:
            if self.device.type != "cuda":
                raise
            self.to_device(torch.device("cpu"))
            torch.cuda.empty_cache()
            yield Notice("The GPU ran out of memory; continuing on the CPU.")
            out = job(*args, **kwargs)
            if hasattr(out, "__next__"):
                out = yield from out
            return out

    def to_device(self, device: torch.device) -> None:
        for model in (self.generator, self.classifier, self.encoder):
            if model is not None:
                model.to(device)
        self._tuned.clear()  # rebuilt from the CPU deltas on the new device when next needed
        self.device = device

    def close(self, timeout: float = 5.0) -> bool:
        """Cancel running work and stop the worker thread; True once the thread has stopped."""
        return self.worker.shutdown(cancel=True, timeout=timeout) if self.worker is not None else True


def _relay(job: Iterator, convert: Callable[[Any], Any]) -> Iterator:
    """Re-yield a core job's progress items converted for the caller; return the job's result."""
    while True:
        try:
            item = next(job)
        except StopIteration as stop:
            return stop.value
        yield convert(item)
