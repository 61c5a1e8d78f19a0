"""Sliders that follow each face's own "more"/"less" path instead of one global direction.

A direction fitted over all faces points where the attribute changes *on average*; on a given face
it drags along whatever correlates with the attribute there. So a slider's end is the face that the
window's "+" (or "−") makes from the slider's starting face, and the positions in between lie on
the straight line in the code space towards it. Each end costs one steering run on the slider's
first move; ends are cached, so dragging stays instant. (How much this keeps the person, measured
with the yardsticks: resources/MODELS.md.)
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from core.policy import SLIDER_MAX_ALPHA

SLIDER_ENDS_CACHE = 1024  # (face, attribute, sign, locks) ends kept; one is a code of z_dim floats


@dataclass(frozen=True)
class EndKey:
    """What a slider's end depends on: the starting code, the attribute and side, the locks, the
    face's own generator (a photo's) and the policy that steers."""

    code: str
    attribute: int
    sign: int
    locked: tuple[int, ...]
    generator: str | None
    policy: int


def code_digest(z: torch.Tensor) -> str:
    """A stable name for one code (bit-exact: two renders of the same recipe give the same name)."""
    return hashlib.sha1(z.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


class SliderEnds:
    """A bounded least-recently-used store of slider ends (CPU codes), safe to share between the
    worker thread and a caller that reads a face's code on another thread."""

    def __init__(self, limit: int = SLIDER_ENDS_CACHE) -> None:
        self.limit = limit
        self._ends: OrderedDict[EndKey, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ends)

    def get(self, key: EndKey) -> torch.Tensor | None:
        with self._lock:
            end = self._ends.get(key)
            if end is not None:
                self._ends.move_to_end(key)
            return end

    def put(self, key: EndKey, end: torch.Tensor) -> torch.Tensor:
        """Store `end` (as a CPU float copy) and return what is stored."""
        stored = end.detach().to("cpu", torch.float32).clone()
        with self._lock:
            self._ends[key] = stored
            self._ends.move_to_end(key)
            while len(self._ends) > self.limit:
                self._ends.popitem(last=False)
        return stored


def along_paths(z: torch.Tensor, moves: list[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """z (N, d) moved |α| / SLIDER_MAX_ALPHA of the way to each (α, ends) pair's ends, summed.

    At α = ±SLIDER_MAX_ALPHA a single slider gives exactly the end; beyond it (the command line
    allows any strength) the line continues.
    """
    out = z.clone()
    for alpha, ends in moves:
        out = out + (abs(alpha) / SLIDER_MAX_ALPHA) * (ends.to(z.device, z.dtype) - z)
    return out
