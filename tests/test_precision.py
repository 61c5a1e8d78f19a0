"""The training precision policy: bf16 only where the device has native bf16 units, and a bf16 run
that trains like the fp32 one."""
from __future__ import annotations

import statistics

import pytest
import torch

from conftest import write_celeba
from core.device import autocast, cpu_bf16_units, cpu_flags, resolve_precision
from training import train_classifier, train_gan

CPU = torch.device("cpu")
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
SAPPHIRE = "flags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_auto_picks_bf16_only_with_native_bf16_units():
    assert cpu_bf16_units(cpu_flags(SAPPHIRE)) == ["amx_bf16", "avx512_bf16"]
    with_units = resolve_precision("auto", CPU, cpu_flags(ZEN4))
    assert with_units.bf16 and "avx512_bf16" in with_units.describe()
    without = resolve_precision("auto", CPU, cpu_flags(AVX2))
    assert without.name == "fp32" and "without native bf16 units" in without.reason
    emulated = resolve_precision("bf16", CPU, cpu_flags(AVX2))
    assert emulated.bf16 and "emulated" in emulated.reason
    assert resolve_precision("fp32", CPU, cpu_flags(ZEN4)).name == "fp32"
    assert resolve_precision("auto", CPU, set()).name == "fp32"  # flags unknown: the safe choice
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp16", CPU)


def test_autocast_follows_the_precision_and_the_app_keeps_fp32_on_the_cpu():
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)
    with autocast(CPU, precision=resolve_precision("bf16", CPU)):
        assert conv(x).dtype == torch.bfloat16
    with autocast(CPU, precision=resolve_precision("fp32", CPU)):
        assert conv(x).dtype == torch.float32
    with autocast(CPU):  # no precision given: the app's policy (fp32 on the CPU)
        assert conv(x).dtype == torch.float32


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_celeba(tmp_path_factory.mktemp("celeba") / "celeba", n=60)


def _run_gan(data_dir, out, precision: str, extra: list[str] = ()) -> dict:
    return train_gan.main(["--data", str(data_dir), "--out", str(out), "--smoke", "--steps", "40",
                           "--precision", precision, "--seed", "3", *extra])


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--loss", "wgan-gp", "--n-critic", "2", "--d-downsample", "pool"],
                                   ["--arch", "style", "--r1", "1", "--r1-every", "4", "--loss", "hinge"]],
                         ids=["dcgan-bce", "wgan-gp-pool", "style-hinge-r1"])
def test_a_bf16_gan_trains_like_the_fp32_one(data_dir, tmp_path, capsys, extra):
    fp32 = _run_gan(data_dir, tmp_path / "fp32", "fp32", extra)
    assert "precision fp32" in capsys.readouterr().out
    bf16 = _run_gan(data_dir, tmp_path / "bf16", "bf16", extra)
    assert "precision bf16" in capsys.readouterr().out
    for key in ("d_loss", "g_loss"):
        a = [h[key] for h in fp32["history"]][10:]
        b = [h[key] for h in bf16["history"]][10:]
        assert len(a) == len(b) == 30
        spread = max(statistics.pstdev(a), 0.05 * abs(statistics.mean(a)), 0.02)
        assert abs(statistics.mean(a) - statistics.mean(b)) < 3 * spread, (key, a, b)
    # the weights, optimiser state and EMA stay fp32 whatever the compute precision
    from core.checkpoint import load_checkpoint

    ck = load_checkpoint(bf16["checkpoint"], "generator")
    assert all(p.dtype == torch.float32 for p in ck.model.parameters())
    assert "precision bf16" in ck.train["precision"]


@pytest.mark.slow
def test_a_bf16_classifier_learns_like_the_fp32_one(data_dir, tmp_path):
    runs = {p: train_classifier.main(["--data", str(data_dir), "--out", str(tmp_path / p), "--smoke", "--steps", "40",
                                      "--precision", p]) for p in ("fp32", "bf16")}
    first = {p: r["history"][0]["loss"] for p, r in runs.items()}
    last = {p: r["history"][-1]["loss"] for p, r in runs.items()}
    assert last["fp32"] < first["fp32"] and last["bf16"] < first["bf16"]  # both learn
    assert abs(last["fp32"] - last["bf16"]) < 0.1 * last["fp32"] + 0.02
