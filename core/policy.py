"""What the app's controls mean, in one place for the window, the command line and eval-control.

A slider's end, what "more"/"less" steers to, and how locks are held are product decisions that
were measured (resources/MODELS.md); keeping them here means the evaluation grades exactly what
a user gets.
"""
from __future__ import annotations

from dataclasses import replace

from core.steering import SteerConfig

SLIDER_MAX_ALPHA = 3.0  # strength at a slider's end, in z units along a unit direction
CLI_STEER = SteerConfig()  # `main.py steer` without options
WINDOW_STEER = SteerConfig(until=0.9)  # the window's − / + buttons


def window_steer_config(p_now: float, sign: int, locked: bool, base: SteerConfig = WINDOW_STEER) -> SteerConfig:
    """"More" means confidently more: steer until p passes `base.until` (1 − it for "less"); a face
    that is already there gets a short push further instead of a run that stops at once. With
    locks, the preserved attributes keep full weight for the whole run (λ ≥ 1, no fade, no momentum)."""
    config = replace(base)
    if locked:
        config = replace(config, fade_preservation=False, momentum=0.0,
                         preserve_weight=max(config.preserve_weight, 1.0))
    if config.until is not None and ((p_now > config.until) if sign > 0 else (p_now < 1 - config.until)):
        config = replace(config, until=None, steps=max(1, config.steps // 3))
    return config
