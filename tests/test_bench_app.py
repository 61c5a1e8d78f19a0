"""`main.py bench --under-load`: measures quiet and loaded, prints them side by side, leaves no process behind.

Only the shape of the report is checked: the numbers are the machine's, and a test never asserts them.
"""
from __future__ import annotations

import subprocess

import pytest
import torch

from training import bench_app


def test_under_load_prints_quiet_and_loaded_side_by_side(tiny_models, capsys, monkeypatch):
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    results = bench_app.main(["--models", str(tiny_models), "--repeats", "2", "--steer-steps", "2",
                              "--threads", "1", "--under-load"])
    out = capsys.readouterr().out
    assert len(started) == 1 and all(p.poll() is not None for p in started)  # the competitor is gone
    cpu = results[0]
    assert cpu["device"] == "CPU (1 threads)" and "loaded" in cpu
    assert "quiet vs 1 spin competitor process" in out and "| | quiet | loaded | slowdown |" in out
    assert 0 < cpu["more_30_s"] and 0 < cpu["loaded"]["more_30_s"]  # the window's 30-step "more" is timed
    assert 0 < cpu["slider_first_s"] and "a slider's first move" in out  # the steered end of a new slider
    for label in ("edit→image p50", "a slider's first move", "steering b=1", "steering b=16", 'window "more", 30 steps', "inversion"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {label}"))
        assert row.count("|") == 5 and row.rstrip().endswith("× |"), row


def test_slowdown_is_loaded_over_quiet_for_times_and_quiet_over_loaded_for_rates():
    quiet, loaded = {"edit_ms_p50": 2.0, "steer_steps_per_s_b1": 100.0}, {"edit_ms_p50": 3.0,
                                                                        "steer_steps_per_s_b1": 50.0}
    assert bench_app.slowdown(quiet, loaded, "edit_ms_p50", False) == pytest.approx(1.5)
    assert bench_app.slowdown(quiet, loaded, "steer_steps_per_s_b1", True) == pytest.approx(2.0)
    assert bench_app.slowdown(quiet, {}, "edit_ms_p50", False) is None


def test_numbers_keep_three_significant_figures_and_slow_rates_are_not_zero():
    assert [bench_app._num(x) for x in (124.4, 16.23, 2.94, 0.414, 0.0071)] == ["124", "16.2", "2.9", "0.41",
                                                                              "0.0071"]


def test_precision_both_times_the_cpu_again_under_bf16_autocast(tiny_models, capsys, monkeypatch):
    seen: list[bool] = []
    real = bench_app._bench_engine

    def recording(engine, *args):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(engine, *args)

    monkeypatch.setattr(bench_app, "_bench_engine", recording)
    results = bench_app.main(["--models", str(tiny_models), "--repeats", "2", "--steer-steps", "2",
                              "--threads", "1", "--devices", "cpu", "--precision", "both"])
    out = capsys.readouterr().out
    assert seen == [False, True]  # fp32 first, then the same stages under bf16 autocast
    cpu = results[0]
    assert cpu["precision"] == "fp32" and cpu["bf16"]["precision"] == "bf16 autocast"
    assert "| | fp32 | bf16 | bf16 time / fp32 time |" in out
    assert 0 < cpu["map_49_s"] and 0 < cpu["bf16"]["map_49_s"]
    row = next(line for line in out.splitlines() if line.startswith("| canvas map, 49 faces"))
    assert row.rstrip().endswith("× |")
