"""How many CPU threads torch may use for the engine's model work.

Policy: one fewer than the cores this process may run on, at least 1, so that the GUI thread and
whatever else runs on the machine keep a core. An explicit argument overrides it, then
`LATENT_STEER_THREADS`, then a valid `OMP_NUM_THREADS` (the usual way to tell a torch program).
Why: with torch's default (every core), work collapses as soon as another program wants a core;
one thread fewer degrades in proportion instead (`python main.py bench --under-load` measures
it; resources/MODELS.md has the numbers).

torch's intra-op thread count is process-wide (threads started later, the worker included,
pick it up), so the engine applies it once when it is built.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch

ENV_VAR = "LATENT_STEER_THREADS"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _positive(value: str) -> int | None:
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


def policy_threads(threads: int | None = None, cores: int | None = None,
                   env: Mapping[str, str] | None = None) -> int:
    """The thread count to use: `threads` if given, else `$LATENT_STEER_THREADS`, else a valid
    `$OMP_NUM_THREADS`, else cores − 1 (≥ 1)."""
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"the thread count must be at least 1, not {threads}")
        return int(threads)
    env = os.environ if env is None else env
    value = env.get(ENV_VAR, "").strip()
    if value:
        n = _positive(value)
        if n is None:
            raise ValueError(f"{ENV_VAR} must be a whole number of at least 1, not {value!r}")
        return n
    omp = _positive(env.get("OMP_NUM_THREADS", "").strip())  # torch's own convention; ignored if unusable
    if omp is not None:
        return omp
    return max(1, (available_cores() if cores is None else int(cores)) - 1)


def apply_thread_policy(threads: int | None = None) -> int:
    """Set torch's intra-op thread count by `policy_threads` and return it."""
    n = policy_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
