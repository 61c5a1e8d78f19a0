"""What the app's controls mean, in one place for the window, the command line and eval-control.

A slider's end, what "more"/"less" steers to, and which attributes every edit holds are product
decisions measured with the independent yardsticks (resources/MODELS.md); keeping them here
means the evaluation grades exactly what a user gets.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from core.steering import SteerConfig

SLIDER_MAX_ALPHA = 3.0  # strength at a slider's end, in z units along a unit direction
# Sex and age are most of what makes a face someone: a slider holds them (its direction is made
# orthogonal to theirs) unless the user edits them, or the target cannot be had without them: |cos|
# of the two directions ≥ INSEPARABLE (on the shipped G: Mustache and Wearing_Lipstick vs Male
# 0.86 / 0.96, Bald vs Young 0.79). Steering keeps the person with its identity term instead.
HELD_ATTRIBUTES = ("Male", "Young")
INSEPARABLE = 0.75
# The path through the keyframe pins, as the window's Play shows it and as its GIF exports it (the
# same frames: Play showed 36 and the GIF had 25): a second per segment at 12 fps, back to the first pin.
PATH_FRAMES_PER_SEGMENT = 12
PATH_LOOPS = True


@dataclass(frozen=True)
class Policy:
    window: SteerConfig  # the window's − / + buttons
    cli: SteerConfig  # `main.py steer` without options
    held: tuple[str, ...] = HELD_ATTRIBUTES  # slider directions are made orthogonal to these
    steer_held: bool = False  # steering also keeps them as constraints (measured: costs success; the
    # identity term keeps the person better, resources/MODELS.md)
    hard_locks: bool = True  # locks are constraints; False: the soft penalty at full weight (before)
    keep_units: bool = False  # a held slider direction still crosses the boundary as fast (directions.edit)
    slider_paths: bool = False  # a slider moves the face towards what the window's "+"/"−" makes of it
    # (core.slider_paths) instead of along the attribute's global direction


# The policy that ships (chosen with eval-control, resources/MODELS.md): "more" runs until the
# steering classifier is confident (p > 0.9), pulled back towards the starting face in our
# classifier's features (identity term) and leaning a little on the attribute's global direction,
# so it follows what many faces share rather than what fools one network; the CLI does exactly
# what the window does; a slider's end is the face the window's "+"/"−" makes (its own path).
SHIPPED_STEER = SteerConfig(until=0.9, guide=0.25, identity_weight=1.0)
CURRENT = Policy(window=SHIPPED_STEER, cli=SHIPPED_STEER, slider_paths=True)
# What shipped before the independent yardsticks existed (kept to measure against).
PREVIOUS = Policy(window=SteerConfig(until=0.9), cli=SteerConfig(), held=(), hard_locks=False)
WINDOW_STEER = CURRENT.window
CLI_STEER = CURRENT.cli


def held_attributes(policy: Policy, names: list[str], targets: list[int], locked: list[int],
                    vectors: torch.Tensor | None) -> list[int]:
    """The user's locks plus the policy's held attributes that these targets can be separated from."""
    held = set(locked) - set(targets)
    if vectors is None:
        return sorted(held)
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    for name in policy.held:
        if name not in names or names.index(name) in targets:
            continue
        j = names.index(name)
        if all(abs(float(unit[t] @ unit[j])) < INSEPARABLE for t in targets):
            held.add(j)
    return sorted(held)


def window_steer_config(p_now: float, sign: int, locked: bool, base: SteerConfig = WINDOW_STEER,
                        hard_locks: bool = True) -> SteerConfig:
    """"More" means confidently more: steer until p passes `base.until` (1 − it for "less"); a face
    that is already there gets a short push further instead of a run that stops at once. With
    soft locks (the previous policy) the preserved attributes keep full weight for the whole run."""
    config = replace(base)
    if locked and not hard_locks:
        config = replace(config, fade_preservation=False, momentum=0.0,
                         preserve_weight=max(config.preserve_weight, 1.0))
    if config.until is not None and ((p_now > config.until) if sign > 0 else (p_now < 1 - config.until)):
        config = replace(config, until=None, steps=max(1, config.steps // 3))
    return config
