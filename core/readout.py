"""What an edit did, in plain words: the other attributes it moved, and whether it is still the person.

The attribute deltas are the app's own readout (the steering classifier, shown beside the face);
"same person" comes from the identity metric (`core.identity`), which no edit optimises against.
"""
from __future__ import annotations

import torch

from core.identity import SAME_PERSON


def side_effects(p0: torch.Tensor, p1: torch.Tensor, names: list[str], edited: set[str], k: int = 3,
                 at_least: float = 0.10) -> list[tuple[str, float]]:
    """The `k` attributes (not in `edited`) that moved most, by at least `at_least`, with their Δp."""
    delta = (p1.float() - p0.float()).tolist()
    moved = [(names[i], d) for i, d in enumerate(delta) if names[i] not in edited and abs(d) >= at_least]
    return sorted(moved, key=lambda item: -abs(item[1]))[:k]


def identity_words(distance: float | None) -> str:
    """A sentence for the face-identity distance between the starting face and this one."""
    if distance is None:
        return ""
    if distance < 0.45:
        return "Still clearly the same person."
    if distance < SAME_PERSON:
        return "Still looks like the same person."
    return "May no longer look like the same person."


def likeness_words(distance: float | None) -> str:
    """A sentence for the identity distance between a photo's aligned crop and its editable face."""
    if distance is None:
        return ""
    if distance < SAME_PERSON:
        return "Looks like the same person."
    return "Resemblance is weak: face recognition does not match the result to the photo."


def describe(changes: list[tuple[str, float]], display=lambda name: name.replace("_", " ")) -> str:
    if not changes:
        return "Nothing else changed noticeably."
    moved = ", ".join(f"{display(n)} {'+' if d > 0 else '−'}{abs(d) * 100:.0f} %" for n, d in changes)
    return f"Also changed: {moved}."  # a sentence: the likeness words follow it


def identity_distance(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """dlib distance between two faces (3, H, W) uint8, or None without dlib. Worker thread only."""
    from core import identity

    metric = identity.shared_metric()
    return None if metric is None else float(metric.distance(a.unsqueeze(0), b.unsqueeze(0))[0])
