"""The editor's state, without Qt: undo/redo of edits, snapshots, keyframe pins.

An edit is an `EditState`: a *recipe* for the face on screen (a base code, slider strengths per
attribute, the locked attributes) plus, once its face has been rendered, the exact z of that
face. The base is a tensor, or a lazy point (`SeedPoint`, `PlanePoint`) that a worker job turns
into a tensor, so the window can record an edit at once without waiting for (or running) any
model code. Undo and redo hand back recorded states; a state whose z has been recorded renders
from that z, so restoring it restores z bit for bit.

Tensors are stored and never changed in place (every producer hands over a fresh CPU tensor), so
nothing here copies them. Keyframe paths run wherever their caller runs: the window calls them
only from jobs on the engine's worker. The canvas plane's geometry is `core.canvas`. Nothing here
imports Qt.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from core.canvas import LatentPlane
from core.latent import interpolator, keyframe_path

Tensor = torch.Tensor

__all__ = ["EditState", "History", "Keyframe", "Keyframes", "PlanePoint", "SeedPoint", "Snapshot", "Snapshots",
           "mix_state"]

# ---------------------------------------------------------------------------------------------
# Lazy bases


@dataclass(frozen=True, eq=False)
class SeedPoint:
    """The base code of a random face: `Engine.z_from_seed(seed)`, resolved by a job."""

    seed: int


@dataclass(frozen=True, eq=False)
class PlanePoint:
    """A point (u, v) on a latent canvas plane; `z()` is origin + u·a + v·b."""

    plane: LatentPlane
    u: float
    v: float

    def z(self) -> Tensor:
        return self.plane.point(self.u, self.v)


Base = Tensor | SeedPoint | PlanePoint


# ---------------------------------------------------------------------------------------------
# Edits and their history


@dataclass(eq=False)
class EditState:
    """One face as a recipe: base code + Σ alpha·direction (conditioned on `locked`).

    `z` is the face's exact code once a job has rendered it (None until then). States are
    treated as values: `derive` makes a changed copy and never touches the original.
    """

    base: Base
    alphas: dict[str, float] = field(default_factory=dict)
    locked: frozenset[str] = frozenset()
    label: str = ""
    seed: int | None = None
    z: Tensor | None = None
    generator: Any = None  # a photo's own generator change (core.tuning.GeneratorDelta); None: the shared G

    @classmethod
    def seed_face(cls, seed: int) -> EditState:
        """A new random face: the code of `seed`, nothing edited."""
        return cls(base=SeedPoint(seed), label=f"seed {seed}", seed=seed)

    @classmethod
    def steered(cls, origin: EditState, z: Tensor, label: str) -> EditState:
        """The face a steering run from `origin` ended at: its code is the new base (sliders restart
        from 0), with the origin's locks and own generator."""
        return cls(base=z, locked=origin.locked, label=label, z=z, generator=origin.generator)

    @classmethod
    def photo_face(cls, z: Tensor, name: str, generator: Any) -> EditState:
        """A photo's editable face: its inverted code under its own tuned generator."""
        return cls(base=z, label=f"photo {name}", z=z, generator=generator)

    def __post_init__(self) -> None:
        if not isinstance(self.base, (torch.Tensor, SeedPoint, PlanePoint)):
            raise TypeError(f"base must be a tensor, SeedPoint or PlanePoint, got {type(self.base).__name__}")
        alphas = {}
        for name, value in dict(self.alphas).items():
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"strength for {name} must be finite, got {value!r}")
            alphas[str(name)] = value
        self.alphas = alphas
        self.locked = frozenset(self.locked)

    @property
    def edits(self) -> dict[str, float]:
        """The non-zero strengths, in a stable order (what an edit job needs)."""
        return {k: v for k, v in sorted(self.alphas.items()) if v != 0.0}

    @property
    def locked_list(self) -> list[str]:
        return sorted(self.locked)

    def derive(self, label: str = "", **changes: Any) -> EditState:
        """A new state with `changes`; its z is unknown again unless given."""
        changes.setdefault("z", None)
        return dataclasses.replace(self, label=label, **changes)

    def same_recipe(self, other: EditState | None) -> bool:
        """Same base object, strengths and locks (so the same z)."""
        return (other is not None and other.base is self.base and other.edits == self.edits
                and (not self.edits or other.locked == self.locked))


class History:
    """Undo/redo of `EditState`s: a list of states and the index of the current one.

    `push` drops any redo branch. With a `merge` key equal to the previous push's key (and no
    `seal`, undo or redo in between), the new state replaces the top one instead of adding an
    entry, so dragging one slider from 0 to 2 is one undo step, not two hundred.
    """

    def __init__(self, limit: int = 500) -> None:
        if limit < 2:
            raise ValueError(f"history limit must be at least 2, got {limit!r}")
        self.limit = limit
        self._states: list[EditState] = []
        self._index = -1
        self._merge: Hashable | None = None

    def __len__(self) -> int:
        return len(self._states)

    @property
    def states(self) -> tuple[EditState, ...]:
        return tuple(self._states)

    @property
    def index(self) -> int:
        return self._index

    @property
    def current(self) -> EditState | None:
        return self._states[self._index] if self._index >= 0 else None

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._states) - 1

    @property
    def undo_label(self) -> str:
        return self._states[self._index].label if self.can_undo else ""

    @property
    def redo_label(self) -> str:
        return self._states[self._index + 1].label if self.can_redo else ""

    def push(self, state: EditState, merge: Hashable | None = None) -> EditState:
        if not isinstance(state, EditState):
            raise TypeError(f"History holds EditState objects, got {type(state).__name__}")
        del self._states[self._index + 1:]
        if merge is not None and merge == self._merge and self._index > 0:
            self._states[self._index] = state
        else:
            self._states.append(state)
            self._index += 1
        self._merge = merge
        overflow = len(self._states) - self.limit
        if overflow > 0:
            del self._states[:overflow]
            self._index -= overflow
        return state

    def seal(self) -> None:
        """The next push starts a new entry whatever its merge key."""
        self._merge = None

    def undo(self) -> EditState | None:
        if not self.can_undo:
            return None
        self._index -= 1
        self._merge = None
        return self._states[self._index]

    def redo(self) -> EditState | None:
        if not self.can_redo:
            return None
        self._index += 1
        self._merge = None
        return self._states[self._index]

    def clear(self) -> None:
        self._states.clear()
        self._index = -1
        self._merge = None


# ---------------------------------------------------------------------------------------------
# Snapshots and keyframes


@dataclass(eq=False)
class Snapshot:
    state: EditState
    image: Any = None  # (3, H, W) uint8 thumbnail source
    label: str = ""


class _Items:
    """A bounded list of items (oldest dropped first)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit!r}")
        self.limit = limit
        self._items: list = []

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator:
        return iter(list(self._items))

    def __getitem__(self, index: int):
        return self._items[index]

    def _append(self, item):
        self._items.append(item)
        del self._items[:max(0, len(self._items) - self.limit)]
        return item

    def remove(self, index: int) -> None:
        if not -len(self._items) <= index < len(self._items):
            raise IndexError(f"no item {index} (there are {len(self._items)})")
        del self._items[index]

    def clear(self) -> None:
        self._items.clear()


class Snapshots(_Items):
    """The strip of saved faces the user can go back to."""

    def __init__(self, limit: int = 48) -> None:
        super().__init__(limit)

    def add(self, state: EditState, image: Any = None, label: str = "") -> Snapshot:
        return self._append(Snapshot(state=state, image=image, label=label or state.label))


def mix_state(a: EditState, b: EditState, t: float, resolve: Callable[[EditState], Tensor],
              mode: str = "slerp") -> EditState:
    """The face `t` of the way from a's face to b's (exactly a at 0, exactly b at 1): slerp in z,
    lerp in a style G's w (`Engine.interpolation`).

    `resolve` turns a state into its z (a job does it). The mix is a plain code: it is drawn by the
    shared generator, whatever tuned generator of a photo either face had.
    """
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"the mix must be between 0 and 1, got {t!r}")
    z = interpolator(mode)(resolve(a).reshape(-1), resolve(b).reshape(-1), t)
    share = round(100 * t)
    return EditState(base=z, label=f"mix: {100 - share} % {a.label} + {share} % {b.label}", z=z)


@dataclass(eq=False)
class Keyframe:
    state: EditState
    uv: tuple[float, float] | None = None  # where the pin sits on the canvas plane it was dropped on
    image: Any = None


class Keyframes(_Items):
    """Pins dropped on the latent canvas, in play order."""

    def __init__(self, limit: int = 64) -> None:
        super().__init__(limit)

    def add(self, state: EditState, uv: tuple[float, float] | None = None, image: Any = None) -> Keyframe:
        return self._append(Keyframe(state=state, uv=uv, image=image))

    def move(self, index: int, to: int) -> None:
        item = self._items.pop(index)
        self._items.insert(to, item)

    @property
    def can_play(self) -> bool:
        return len(self._items) >= 2

    def path(self, resolve: Callable[[EditState], Tensor], frames_per_segment: int = 12, loop: bool = False,
             mode: str = "slerp") -> Tensor:
        """The latent path (F, d) through the pins; `resolve` turns a state into its z (a job does it)."""
        if not self.can_play:
            raise ValueError(f"a path needs at least 2 pins, there are {len(self._items)}")
        zs = [resolve(k.state).reshape(-1) for k in self._items]
        return keyframe_path(zs, frames_per_segment, mode=mode, loop=loop)
