"""Quality per CPU-hour: train_gan keeps time snapshots, eval_curves grades each with the evaluator."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_celeba
from core.checkpoint import load_checkpoint
from training import eval_curves, train_gan

pytestmark = pytest.mark.slow  # trains real (tiny) models: `pytest -m "not slow"` skips them


def test_time_snapshots_are_graded_and_plotted(tmp_path, tiny_models, monkeypatch):
    data = write_celeba(tmp_path / "celeba", n=40)
    clock = iter(range(0, 10**6, 20))  # every call of time.time() is 20 s later: a snapshot each 3 steps
    import training.train_gan as tg

    run = tmp_path / "run"
    with monkeypatch.context() as m:  # undoing only this patch: the whole fixture's undo would unset the test's cache folder
        m.setattr(tg.time, "time", lambda: float(next(clock)))
        train_gan.main(["--data", str(data), "--out", str(run), "--smoke", "--steps", "8", "--snapshot-minutes", "1"])
    snaps = sorted(p.name for p in (run / "snapshots").glob("*.pt"))
    assert snaps[:2] == ["minute0001.pt", "minute0002.pt"]
    ck = load_checkpoint(run / "snapshots" / snaps[0], "generator")
    assert ck.train["time_s"] == 60.0 and 0 < ck.train["steps"] < 8
    out = tmp_path / "curves.png"
    results = eval_curves.main([str(run), "--data", str(data), "--models", str(tiny_models), "--n", "8",
                                "--labels", "tiny", "--out", str(out)])
    rows = results["tiny"]
    assert [r["minute"] for r in rows] == [int(s[6:10]) for s in snaps]
    assert all(math.isfinite(r["fd_evaluator"]) and r["fd_evaluator"] >= 0 and math.isfinite(r["fd_cls"]) for r in rows)
    assert Image.open(out).size == (720, 440) and (tmp_path / "curves_fd_cls.png").exists()
    assert json.loads(out.with_suffix(".json").read_text())["runs"]["tiny"] == rows
    # an earlier curve (its run folder gone) drawn beside a new one, with the shipped G as a line
    again = eval_curves.main([str(run), "--data", str(data), "--models", str(tiny_models), "--n", "8",
                              "--labels", "again", "--out", str(tmp_path / "both.png"), "--with",
                              str(out.with_suffix(".json")), "--reference", "104.2:shipped G"])
    assert set(again) == {"again", "tiny"} and again["tiny"] == rows
    grey = int((np.asarray(Image.open(tmp_path / "both.png").convert("RGB")) == 128).all(-1).sum())
    assert grey > 50  # the dashed reference line
    # by steps (runs whose minutes differ in worth): the same rows, plotted at their step counts
    drawn = []
    with monkeypatch.context() as m:
        m.setattr(eval_curves, "plot", lambda series, *a, **k: drawn.append((series, k["xlabel"])))
        eval_curves.main([str(run), "--data", str(data), "--models", str(tiny_models), "--n", "8", "--labels", "tiny",
                          "--out", str(tmp_path / "steps.png"), "--x", "steps"])
    assert drawn[0] == ({"tiny": [(r["steps"], r["fd_evaluator"]) for r in rows]}, "training steps")
    # with coverage: each row also says which attributes the snapshot draws outside 0.5-2x their real share
    covered = eval_curves.main([str(run), "--data", str(data), "--models", str(tiny_models), "--n", "8",
                                "--labels", "tiny", "--out", str(tmp_path / "cov.png"), "--coverage-n", "12"])
    for row in covered["tiny"]:
        judged = [a for a, (r, _) in row["coverage"].items() if r >= 0.02]
        assert row["coverage_inside"] + len(row["coverage_misses"]) == len(judged) > 0
        assert all(0 <= g <= 1 and abs(12 * g - round(12 * g)) < 1e-4 for _, g in row["coverage"].values())  # of 12 faces
    with pytest.raises(SystemExit, match="held-out faces"):
        eval_curves.main([str(run), "--data", str(data), "--models", str(tiny_models), "--n", "6",
                          "--out", str(tmp_path / "x.png"), "--with", str(out.with_suffix(".json"))])


def test_coverage_counts_attributes_drawn_within_half_to_twice_their_real_share():
    from training.yardsticks import coverage_misses

    shares = {"Smiling": (0.48, 0.50), "Bald": (0.02, 0.041), "Goatee": (0.06, 0.029), "Wavy": (0.30, 0.15),
              "Mustache": (0.019, 0.0), "Blond": (0.10, 0.20)}
    assert coverage_misses(shares) == (3, ["Bald", "Goatee"])  # Mustache is too rare to judge; 0.5x and 2x are inside
    assert coverage_misses(shares, min_real=0.01) == (3, ["Bald", "Goatee", "Mustache"])


def test_a_packed_run_resumes_where_it_stopped(tmp_path):
    from training import pack_run

    data = write_celeba(tmp_path / "celeba", n=40)
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--smoke"]
    train_gan.main([*common, "--steps", "4"])
    packed = pack_run.main(["pack", str(run), str(tmp_path / "run.pt")])
    assert packed.stat().st_size < 0.7 * sum((run / f).stat().st_size for f in pack_run.FILES)
    moved = tmp_path / "elsewhere"
    pack_run.main(["unpack", str(packed), str(moved)])
    result = train_gan.main(["--data", str(data), "--out", str(moved), "--smoke", "--steps", "6", "--resume"])
    assert [h["step"] for h in result["history"]] == list(range(1, 7))  # the history went on from step 4
    ck = load_checkpoint(moved / "generator.pt", "generator")
    assert ck.train["steps"] == 6 and all(p.dtype == torch.float32 for p in ck.model.parameters())
