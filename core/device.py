"""Device and precision choice: CUDA when present, CPU otherwise, through one code path.

Precision policy for training (one for every script): bf16 compute where the device has native
bf16 units (CUDA; a CPU with AMX or AVX512-BF16, or Arm's BF16 extension), fp32 elsewhere. Only
the compute runs in bf16 (torch.autocast): master weights, optimiser state, EMA, losses,
gradient penalties and normalisation statistics stay fp32.
"""
from __future__ import annotations

import contextlib
import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp32")
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 (AMX, AVX512-BF16); Arm's FEAT_BF16 is "bf16"


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA if available else CPU; 'cuda' without a GPU is a clear error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but no CUDA GPU is available (use --device cpu or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """Human name for the status bar and for the hardware line of a training summary."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


@functools.cache
def _cpuinfo() -> str:
    """Linux's /proc/cpuinfo, read once per process ('' where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags the OS reports (Linux /proc/cpuinfo; empty where unknown)."""
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_bf16_units(flags: set[str] | None = None) -> list[str]:
    """Which native bf16 units this CPU has, by flag name (empty list: none, or not known)."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in _BF16_CPU_FLAGS if f in flags]


@dataclass(frozen=True)
class Precision:
    """What a training run computes in, and why (the start-up line prints `describe`)."""

    name: str  # "bf16" | "fp32"
    reason: str

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    def describe(self) -> str:
        return f"precision {self.name} ({self.reason})"


def resolve_precision(name: str, device: torch.device, flags: set[str] | None = None) -> Precision:
    """'auto' -> bf16 where `device` has native bf16 units, else fp32; 'bf16'/'fp32' as asked.

    bf16 asked for on a CPU without bf16 units still runs (emulated, usually slower): the reason
    says so, so that a benchmark row is never mistaken for the fast path.
    """
    name = (name or "auto").lower()
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}: use {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        why = "CUDA bf16 units" if native else "this GPU has no bf16 units"
    else:
        units = cpu_bf16_units(flags)
        native = bool(units)
        machine = platform.machine() or "CPU"
        why = f"CPU has {', '.join(units)}" if native else f"{machine} CPU without native bf16 units"
    if name == "fp32":
        return Precision("fp32", "asked for" + ("" if not native else f"; {why}"))
    if name == "bf16":
        return Precision("bf16", "asked for; " + (why if native else why + ", emulated"))
    return Precision("bf16", why) if native else Precision("fp32", why)


def autocast(device: torch.device, enabled: bool = True, precision: Precision | None = None
             ) -> contextlib.AbstractContextManager:
    """The region where compute runs in bf16.

    Training passes its `precision`; without one (the app), CUDA computes in bf16 (fast tensor
    cores, no loss scaling) and the CPU in fp32.
    """
    if not enabled:
        return contextlib.nullcontext()
    if precision is None:
        use = device.type == "cuda"
    else:
        use = precision.bf16
    return torch.autocast(device.type, dtype=torch.bfloat16) if use else contextlib.nullcontext()
