"""Command-line variants of the window's "+" (core.policy), so the eval scripts can measure one
before it ships: the same five options and the same rule in `eval_control` and `eval_photo_edits`."""
from __future__ import annotations

import argparse
from dataclasses import replace

from core.engine import Engine

POLICY_FIELDS = ("views", "identity_weight", "guide", "preserve_weight", "until")


def add_policy_options(p: argparse.ArgumentParser) -> None:
    """--views, --identity-weight, --guide, --preserve-weight, --until (unset: the shipped value)."""
    p.add_argument("--views", type=int, default=None, help="try the window/CLI steering with this many EOT views")
    p.add_argument("--identity-weight", type=float, default=None, help="try this identity-term weight")
    p.add_argument("--guide", type=float, default=None, help="try this weight of the global direction")
    p.add_argument("--preserve-weight", type=float, default=None,
                   help="try this weight λ of the pull that keeps the other attributes")
    p.add_argument("--until", type=float, default=None,
                   help="try this stopping confidence: a face stops once the steering classifier's p passes it")


def apply_policy_options(engine: Engine, args: argparse.Namespace) -> dict:
    """Set the engine's "+" to the options given (validated); returns them, empty for the shipped policy."""
    tried = {k: getattr(args, k) for k in POLICY_FIELDS if getattr(args, k, None) is not None}
    if tried:
        config = replace(engine.steer_config, **tried)
        config.validate()
        engine.steer_config = config
    return tried


def policy_label(tried: dict) -> str:
    """'shipped' or 'shipped, views 8, …': how a result file names the policy it measured."""
    return "shipped" + "".join(f", {k} {v}" for k, v in tried.items())
