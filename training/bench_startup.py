"""How long a user waits at start-up: launch → splash → window → first face, in a fresh process.

    python -m training.bench_startup [--runs 3]

Each run starts `python -m training.bench_startup --child` (which opens the app on the shipped
models with throw-away settings and autosave folder, and quits once the first face is painted);
`ui.app.mark` prints the time of each event. Goal (issue 14): something on screen at once, and the
first face within 3 s of the window. Not a test: numbers depend on the machine's load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ("splash", "window", "face")


def child() -> int:
    from PySide6.QtCore import QSettings

    from ui.app import run

    with tempfile.TemporaryDirectory(prefix="ls-startup-") as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        return run([sys.argv[0]], settings=settings, data_dir=Path(tmp) / "data")


def one_run(timeout: float = 120.0) -> dict[str, float]:
    """Seconds from launch to each start-up event, for one fresh process."""
    env = dict(os.environ, LATENT_STEER_STARTUP_PROBE="1")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "training.bench_startup", "--child"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    seen: dict[str, float] = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "startup" and parts[1] not in seen:
            seen[parts[1]] = float(parts[2]) - t0
    missing = [e for e in EVENTS if e not in seen]
    if missing:
        raise RuntimeError(f"start-up probe saw no {', '.join(missing)} (exit {out.returncode}): "
                           f"{(out.stderr or out.stdout).strip()[-500:]}")
    return seen


def measure(runs: int = 3) -> dict[str, float]:
    """Median seconds over `runs` launches: splash, window, face, and face after the window."""
    results = [one_run() for _ in range(runs)]
    med = {e: statistics.median(r[e] for r in results) for e in EVENTS}
    med["face_after_window"] = statistics.median(r["face"] - r["window"] for r in results)
    return med


def report(med: dict[str, float]) -> str:
    return (f"start-up (median, fresh process): splash {med['splash']:.2f} s · window {med['window']:.2f} s · "
            f"first face {med['face']:.2f} s ({med['face_after_window']:.2f} s after the window; goal ≤ 3 s)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child()
    print(report(measure(max(1, args.runs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
