"""The CUDA path, end to end: the same engine and training scripts on a GPU as on the CPU.

Skipped (with the reason) on a machine without a CUDA GPU, which includes CI; run on a lent GPU
with `pytest tests/test_cuda.py`. Results are compared with the CPU path where they must agree.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import write_celeba
from core.checkpoint import load_checkpoint
from core.engine import Engine
from core.inversion import InvertConfig
from core.steering import SteerConfig
from core.worker import run_inline
from training import bench_gan, train_classifier, train_encoder, train_gan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def engines(tiny_models, tmp_path_factory) -> tuple[Engine, Engine]:
    cache = tmp_path_factory.mktemp("dirs")
    gpu = Engine(tiny_models, device="cuda", start_worker=False, directions_cache=cache / "gpu")
    cpu = Engine(tiny_models, device="cpu", start_worker=False, directions_cache=cache / "cpu")
    yield gpu, cpu
    gpu.close()
    cpu.close()


def test_engine_renders_on_the_gpu_like_on_the_cpu(engines):
    gpu, cpu = engines
    assert gpu.device.type == "cuda" and next(gpu.generator.parameters()).is_cuda
    z = gpu.z_from_seed(5, 4)
    a, b = gpu.render(z), cpu.render(z)
    assert all(f.image.device.type == "cpu" and f.probs.device.type == "cpu" for f in a)  # frames come back to the host
    diff = max((fa.image.int() - fb.image.int()).abs().max().item() for fa, fb in zip(a, b))
    assert diff <= 8  # same face: only float rounding differs (TF32/bf16 off in rendering)
    assert max((fa.probs - fb.probs).abs().max().item() for fa, fb in zip(a, b)) < 0.05


def test_direction_edit_and_steering_run_on_the_gpu(engines):
    gpu, _ = engines
    z = gpu.z_from_seed(7)
    edited = gpu.edit_job(z, {"Smiling": 2.0})
    assert edited.image.shape == (3, 64, 64) and not torch.equal(edited.z, z[0])
    smiling = gpu.attribute_index("Smiling")
    outcome = run_inline(gpu.steer_job, z, {smiling: 1.0}, None, SteerConfig(steps=10, until=None, step_size=0.2))
    assert outcome.frames[-1].probs[smiling] > outcome.frames[0].probs[smiling]


def test_photo_inversion_runs_on_the_gpu(engines):
    gpu, _ = engines
    target = gpu.render(gpu.z_from_seed(21))[0].image
    buf = io.BytesIO()
    Image.fromarray(target.permute(1, 2, 0).numpy()).resize((128, 128)).save(buf, format="PNG")
    outcome = run_inline(gpu.invert_job, buf.getvalue(), InvertConfig(steps=20, lr=0.1))
    assert outcome.result.psnr_db > outcome.result.psnr_encoder_db
    assert outcome.frame.image.shape == (3, 64, 64) and outcome.frame.image.device.type == "cpu"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_celeba(tmp_path_factory.mktemp("celeba") / "celeba", n=60, attrs=["Smiling", "Male", "Eyeglasses"])


@pytest.mark.parametrize("extra", [
    [],
    ["--loss", "wgan-gp"],
    ["--arch", "style", "--r1", "0.2", "--r1-every", "2"],
    ["--arch", "style", "--conditional", "--r1", "0.2", "--r1-every", "2"],
], ids=["dcgan", "wgan-gp", "style", "style-conditional"])
def test_gan_training_runs_on_the_gpu_and_its_checkpoint_loads_on_the_cpu(extra, data_dir, tmp_path):
    result = train_gan.main(["--data", str(data_dir), "--out", str(tmp_path / "gan"), "--smoke", "--device", "cuda",
                             "--cache-dir", str(tmp_path / "cache"), *extra])
    ck = load_checkpoint(result["checkpoint"], "generator", "cpu")
    assert "CPU" not in ck.train["hardware"]  # trained on the GPU, loaded here on the CPU
    assert torch.isfinite(ck.model(torch.randn(2, ck.model.z_dim))).all()
    assert all(torch.isfinite(torch.tensor([h["d_loss"], h["g_loss"]])).all() for h in result["history"])


def test_classifier_and_encoder_train_on_the_gpu(data_dir, tmp_path):
    cache = str(tmp_path / "cache")
    gan = train_gan.main(["--data", str(data_dir), "--out", str(tmp_path / "gan"), "--smoke", "--device", "cuda",
                          "--cache-dir", cache])
    cls = train_classifier.main(["--data", str(data_dir), "--out", str(tmp_path / "cls"), "--smoke", "--device",
                                 "cuda", "--cache-dir", cache, "--steps", "20"])
    enc = train_encoder.main(["--data", str(data_dir), "--out", str(tmp_path / "enc"), "--smoke", "--device", "cuda",
                              "--cache-dir", cache, "--generator", gan["checkpoint"], "--classifier",
                              cls["checkpoint"], "--steps", "4"])
    model = load_checkpoint(enc["checkpoint"], "encoder", "cpu").model
    assert model(torch.randn(2, 3, 64, 64)).shape[0] == 2


def test_gan_benchmark_runs_on_the_gpu():
    result = bench_gan.main(["--device", "cuda", "--steps", "3", "--batch-size", "16", "--g-width", "8",
                             "--d-width", "8"])
    assert result["img_per_s"] > 0 and result["batch_size"] == 16 and "cpu" not in result["device"].lower()
