"""Small compositions of engine calls that the window and the command line both run.

The window submits these to the engine's worker (`Bridge.submit` -> `Engine.submit`) and they
run there, never on the GUI thread; `main.py` runs the same functions inline (`run_inline`), so a
GIF, a walk or a caption is made one way whichever asks. Nothing here imports Qt. The maths lives
in the other core modules (engine, latent, history, export); these functions only chain it.
Generator functions yield `Progress` (cancellation takes effect at each yield) and return their
result.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from core.align import CROP, PhotoPlacement, apply_affine, invert_affine
from core.canvas import Axis, LatentPlane, available_directions, axis_vector
from core.data import open_image
from core.directions import FitConfig
from core.engine import Engine, Frame, InvertOutcome, Progress, SteerOutcome
from core.export import GifOptions, save_gif
from core.history import EditState, Keyframes, mix_state
from core.align import FaceCrop
from core.inversion import InvertConfig
from core.latent import alpha_range, direction_walk
from core.session import base_z, face_z  # noqa: F401 - shared with the CLI; re-exported
from core.steering import SteerConfig


@dataclass
class FaceResult:
    state: EditState
    frame: Frame


def render_face(engine: Engine, state: EditState) -> FaceResult:
    """Render the face of a state: one generator + classifier pass."""
    delta = state.generator
    if state.z is not None:
        return FaceResult(state, engine.render_job(state.z, delta))
    base = base_z(engine, state)
    frame = (engine.edit_job(base, state.edits, state.locked_list, delta) if state.edits
             else engine.render_job(base, delta))
    return FaceResult(state, frame)


def slider_end_ready(engine: Engine, state: EditState, attribute: str, sign: int) -> bool:
    """Whether moving this slider of the face of `state` is instant (its end is steered already)."""
    return engine.slider_end_ready(base_z(engine, state), attribute, sign, state.locked_list, state.generator)


def steer_face(engine: Engine, state: EditState, targets: dict[str, float], locked: list[str] | None,
               config: SteerConfig | None) -> Iterator[Progress]:
    """Classifier-gradient steering from the face of `state` with an explicit config (`main.py steer`)."""
    outcome: SteerOutcome = yield from engine.steer_job(face_z(engine, state), targets, locked, config,
                                                        delta=state.generator)
    return outcome


def window_steer_face(engine: Engine, state: EditState, attribute: str, sign: int,
                      base: SteerConfig | None = None) -> Iterator[Progress]:
    """The window's "+"/"−" on the face of `state`, with its locks (`Engine.window_steer_job`)."""
    outcome: SteerOutcome = yield from engine.window_steer_job(face_z(engine, state), attribute, sign,
                                                               state.locked_list, state.generator, base)
    return outcome


def estimate_fit_seconds(engine: Engine, config: FitConfig) -> float:
    """How long fitting the directions takes here: one batch of faces drawn and read, timed, × batches."""
    n = max(1, min(config.batch_size, config.samples, 256))
    z = engine.z_from_seed(config.seed, n)
    engine.render(z[:2])  # warm-up
    t0 = time.perf_counter()
    engine.render(z)
    return (time.perf_counter() - t0) * config.samples / n


def directions_status(engine: Engine) -> list[bool] | None:
    """Which attributes have a usable direction (None: directions not fitted)."""
    directions = engine.directions
    return available_directions(directions.vectors if directions is not None else None)


def random_faces(engine: Engine, seeds: list[int]) -> Iterator[Progress]:
    """The faces of `seeds` (the codes `new_face(seed)` starts from), one per progress event."""
    frames: list[Frame] = []
    for seed in seeds:
        frames.append(engine.random_job(seed))
        yield Progress(step=len(frames), total=len(seeds), frame=frames[-1])
    return frames


def mix_face(engine: Engine, a: EditState, b: EditState, t: float) -> FaceResult:
    """The face `t` of the way from a's face to b's, drawn by the shared generator."""
    state = mix_state(a, b, t, lambda s: face_z(engine, s), engine.interpolation)
    return FaceResult(state, engine.render_job(state.z))


# ---------------------------------------------------------------------------------------------
# Latent canvas


@dataclass
class CanvasMap:
    plane: LatentPlane
    n: int
    extent: float
    images: list[Any]  # n*n (3, 64, 64) uint8, row-major from the top-left
    pins: list[tuple[float, float]]  # each pin's (u, v) on this plane


def make_plane(engine: Engine, origin: Any, axis_a: Axis, axis_b: Axis) -> LatentPlane:
    vectors = engine.directions.vectors if engine.directions is not None else None
    a = axis_vector(axis_a, vectors, engine.z_dim)
    b = axis_vector(axis_b, vectors, engine.z_dim)
    return LatentPlane(origin, a, b, labels=(axis_a.label, axis_b.label))


def canvas_map(engine: Engine, state: EditState, axis_a: Axis, axis_b: Axis, n: int, extent: float,
               pins: list[EditState], plane: LatentPlane | None = None) -> Iterator[Progress]:
    """A map of n×n faces sampled on `plane`, or by default on a new plane through the face of `state`."""
    if plane is None:
        plane = make_plane(engine, face_z(engine, state), axis_a, axis_b)
    grid = plane.grid(n, extent)
    frames: list[Frame] = []
    for row in range(n):  # a row at a time, so a newer request can cancel the map quickly
        frames += yield from engine.render_path_job(grid[row * n:(row + 1) * n], state.generator)
    pin_uv = [plane.project(face_z(engine, s)) for s in pins]
    return CanvasMap(plane=plane, n=n, extent=extent, images=[f.image for f in frames], pins=pin_uv)


def keyframe_frames(engine: Engine, pins: list[EditState], frames_per_segment: int, loop: bool
                    ) -> Iterator[Progress]:
    """Render the slerp path through the pins' faces."""
    keys = Keyframes(limit=max(2, len(pins)))
    for state in pins:
        keys.add(state)
    path = keys.path(lambda s: face_z(engine, s), frames_per_segment, loop=loop, mode=engine.interpolation)
    own = {id(s.generator) for s in pins}  # pins of one photo: its own G; mixed faces: the shared G
    frames = yield from engine.render_path_job(path, pins[0].generator if pins and len(own) == 1 else None)
    return frames


# ---------------------------------------------------------------------------------------------
# Photos


@dataclass
class FoundFace:
    """A photo's face as the window shows it: the aligned crop, and the photo, small, with the crop outlined."""

    crop: FaceCrop
    thumbnail: np.ndarray  # (h, w, 3) uint8: the photo, longest side at most `side`
    outline: list[tuple[float, float]]  # the crop's corners on the thumbnail, clockwise from its top-left


def find_face(engine: Engine, source: str | bytes, side: int) -> FoundFace:
    """Open the photo once: its aligned face (`Engine.crop_job`) and a thumbnail of the whole photo."""
    photo = open_image(source)
    crop = engine.crop_job(photo)
    thumb = photo.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    corners = apply_affine(invert_affine(crop.transform), np.array([[0, 0], [CROP, 0], [CROP, CROP], [0, CROP]]))
    scale = np.array([thumb.width / photo.width, thumb.height / photo.height])
    return FoundFace(crop, np.asarray(thumb.convert("RGB")), [tuple(p) for p in (corners * scale).tolist()])


@dataclass
class PhotoInversion:
    outcome: InvertOutcome
    crop_probs: Any  # (A,) the classifier's reading of the aligned crop itself (what "Before" shows)


def invert_photo(engine: Engine, crop: FaceCrop, config: InvertConfig) -> Iterator[Progress]:
    """The crop -> its editable face (`Engine.invert_job`, stage by stage), and the crop's own reading."""
    outcome = yield from engine.invert_job(crop, config)
    return PhotoInversion(outcome, engine.read(crop.image))


# ---------------------------------------------------------------------------------------------
# GIF export


@dataclass(kw_only=True)
class GifRequest:
    """What every GIF says: where, how (size, fps, loop…), captions or not, and whether each frame is
    pasted into the photo the face came from (then it has the photo's size, not `options.size`).
    One subclass per source says what its frames are."""

    path: Path
    options: GifOptions
    captions: bool = False
    photo: PhotoPlacement | None = None

    def frames(self, engine: Engine) -> Iterator[Progress]:
        """Render this source's frames; returns (frames, one caption per frame)."""
        raise NotImplementedError
        yield  # a job


@dataclass(kw_only=True)
class SteerGif(GifRequest):
    """The frames of a steering run, captioned with the targets' probabilities."""

    steps: list[Frame]
    targets: list[str]

    def frames(self, engine: Engine) -> Iterator[Progress]:
        if not self.steps:
            raise ValueError("there is no steering run to export yet: use a more/less button first")
        return list(self.steps), [probs_caption(engine, f, self.targets) for f in self.steps]
        yield  # a job


@dataclass(kw_only=True)
class PathGif(GifRequest):
    """The path through keyframe pins, as the window's Play shows it."""

    pins: list[EditState]
    frames_per_segment: int = 12
    loop: bool = False

    def frames(self, engine: Engine) -> Iterator[Progress]:
        frames = yield from keyframe_frames(engine, self.pins, self.frames_per_segment, self.loop)
        return frames, [f"{i + 1}/{len(frames)}" for i in range(len(frames))]


@dataclass(kw_only=True)
class WalkGif(GifRequest):
    """A face walked along one attribute's direction from −max to +max (`loop`: 0 → +max → −max → 0)."""

    state: EditState
    attribute: str
    max_alpha: float = 3.0
    count: int = 24
    loop: bool = False

    def frames(self, engine: Engine) -> Iterator[Progress]:
        if self.state is None or not self.attribute:
            raise ValueError("choose a face and an attribute to walk along")
        index = engine.attribute_index(self.attribute)
        vectors = engine.require_directions().vectors
        axis = Axis("attribute", index, self.attribute)
        alphas = alpha_range(self.max_alpha, self.count, pingpong=self.loop)
        zs = direction_walk(face_z(engine, self.state), axis_vector(axis, vectors, engine.z_dim), alphas)
        frames = yield from engine.render_path_job(zs, self.state.generator)
        return frames, [f"{self.attribute.replace('_', ' ')} {a:+.1f}  p {f.probs.tolist()[index]:.2f}"
                        for a, f in zip(alphas.tolist(), frames)]


def probs_caption(engine: Engine, frame: Frame, names: list[str]) -> str:
    """"Smiling 0.93  Male 0.12": how the face reads on `names` (a GIF caption, a CLI line)."""
    probs = frame.probs.tolist()
    return "  ".join(f"{n.replace('_', ' ')} {probs[engine.attribute_index(n)]:.2f}" for n in names)


def export_gif(engine: Engine, request: GifRequest) -> Iterator[Progress]:
    """Render the request's frames (if they need rendering), caption them, write the GIF; returns its path."""
    frames, captions = yield from request.frames(engine)
    options = dataclasses.replace(request.options, captions=captions if request.captions else None)
    images = [f.image for f in frames]
    if request.photo is not None:
        yield Progress(step=len(frames), total=len(frames), message="pasting the frames into the photo")
        images, options.size = request.photo.paste(images), None
    yield Progress(step=len(frames), total=len(frames), message="writing the GIF")
    return save_gif(images, request.path, options)
