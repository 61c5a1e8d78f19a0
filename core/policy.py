"""What the app's controls mean, in one place for the window, the command line and the eval scripts.

The window's "+"/"−" (and so a slider's end, which is where one "+" gets) runs classifier-gradient
steering until the steering classifier is confident (p > 0.9), read on four small transforms of
the face (views), pulled back towards the starting face in our classifier's features (the identity
term) and towards the other attributes' readings (λ), and leaning a little on the attribute's
global direction, so it follows what many faces share rather than what fools one network. Locks
are constraints: their gradients are projected out and drift is stepped back. The weights are tuned
for the shipped generator; the measurements behind them are in resources/MODELS.md.
"""
from __future__ import annotations

from dataclasses import replace

from core.steering import SteerConfig

SLIDER_MAX_ALPHA = 3.0  # strength at a slider's end (the face one "+" or "−" makes)
# The path through the keyframe pins, as the window's Play shows it and as its GIF exports it (the
# same frames): a second per segment at 12 fps, back to the first pin.
PATH_FRAMES_PER_SEGMENT = 12
PATH_LOOPS = True

# "+"/"−", and `main.py steer`
WINDOW_STEER = SteerConfig(until=0.9, guide=0.1, identity_weight=2.0, preserve_weight=0.8, views=4)


def window_steer_config(p_now: float, sign: int, base: SteerConfig = WINDOW_STEER) -> SteerConfig:
    """"More" means confidently more: steer until p passes `base.until` (1 − it for "less"); a face
    that is already there gets a short push further instead of a run that stops at once."""
    config = replace(base)
    if config.until is not None and ((p_now > config.until) if sign > 0 else (p_now < 1 - config.until)):
        config = replace(config, until=None, steps=max(1, config.steps // 3))
    return config
