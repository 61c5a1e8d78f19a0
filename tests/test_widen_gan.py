"""training.widen_gan: a wider G that draws what the narrow one drew, and a run that resumes on it."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conftest import with_trained_batchnorm, write_celeba
from core.checkpoint import load_checkpoint
from core.models import Generator, GeneratorConfig
from training import train_gan
from training.widen_gan import _plan, _widen, channel_maps, widen_adam, widen_run, widen_state

VARIANTS = [GeneratorConfig(width=8), GeneratorConfig(width=8, upsample="transposed"),
            GeneratorConfig(width=8, to_rgb="subpixel"), GeneratorConfig(width=8, z_dim=16)]


def _trained_like(config: GeneratorConfig) -> Generator:
    """A G with non-trivial weights and BatchNorm statistics (not the init's ones and zeros)."""
    torch.manual_seed(0)
    return with_trained_batchnorm(Generator(config), config.z_dim)


def _widened(gen: Generator, width: int, noise: float = 0.0) -> Generator:
    maps = channel_maps(gen.config, width, torch.Generator().manual_seed(1))
    wide = Generator(replace(gen.config, width=width))
    wide.load_state_dict(widen_state(gen.state_dict(), gen.config, maps, noise=noise,
                                     rng=torch.Generator().manual_seed(2)))
    return wide


@pytest.mark.parametrize("config", VARIANTS, ids=["resize", "transposed", "subpixel", "z16"])
def test_the_wider_g_draws_the_same_faces(config):
    gen = _trained_like(config)
    wide = _widened(gen, 13)  # not a multiple: some channels get two copies, some one
    assert sum(p.numel() for p in wide.parameters()) > 1.5 * sum(p.numel() for p in gen.parameters())
    z = torch.randn(8, config.z_dim)
    for mode in ("eval", "train"):  # running statistics, and batch statistics as in training
        gen.train(mode == "train")
        wide.train(mode == "train")
        with torch.no_grad():
            a, b = gen(z), wide(z)
        assert torch.allclose(a, b, atol=1e-5), (mode, (a - b).abs().max())


def test_noise_moves_only_the_copies_and_only_a_little():
    gen = _trained_like(VARIANTS[0])
    exact, noisy = _widened(gen, 12), _widened(gen, 12, noise=0.05)
    z = torch.randn(8, 128)
    with torch.no_grad():
        gen.eval(), exact.eval(), noisy.eval()
        faces = gen(z)
        pixel_change = (noisy(z) - faces).abs().mean()
    assert 0 < pixel_change < 0.05 * faces.abs().mean()
    old_w, new_w = gen.body[0][1].weight, noisy.body[0][1].weight  # 32 -> 48 outputs
    assert torch.equal(new_w[:old_w.shape[0]], exact.body[0][1].weight[:old_w.shape[0]])
    assert not torch.equal(new_w[old_w.shape[0]:], exact.body[0][1].weight[old_w.shape[0]:])


@pytest.mark.parametrize("config", VARIANTS[:2], ids=["resize", "transposed"])
def test_adams_moments_are_mapped_as_the_gradients_are(config):
    """Widened first moments equal the wide G's own gradients, so Adam continues where it was."""
    gen = _trained_like(config)
    wide = _widened(gen, 12)
    z, target = torch.randn(8, config.z_dim), torch.randn(8, 3, 64, 64)
    grads = []
    for model in (gen, wide):
        model.train()
        model.zero_grad()
        (model(z) * target).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    opt_state = {"state": {i: {"step": torch.tensor(5.0), "exp_avg": g, "exp_avg_sq": g * g}
                           for i, g in enumerate(grads[0])}, "param_groups": [{"params": list(range(len(grads[0])))}]}
    maps = channel_maps(config, 12, torch.Generator().manual_seed(1))
    mapped = widen_adam(opt_state, config, maps)["state"]
    for i, g in enumerate(grads[1]):
        assert torch.allclose(mapped[i]["exp_avg"], g, atol=1e-4, rtol=1e-3), i
        assert torch.allclose(mapped[i]["exp_avg_sq"].sqrt(), g.abs(), atol=1e-4, rtol=1e-3), (i, (mapped[i]["exp_avg_sq"].sqrt() - g.abs()).abs().max())
        assert mapped[i]["step"] == 5


def test_plan_reads_and_writes_every_hidden_stage_once():
    plan = _plan(VARIANTS[0])
    writes = [w for w, _, kind in plan.values() if kind != "bn" and w is not None]
    reads = [r for _, r, kind in plan.values() if kind != "bn" and r is not None]
    assert writes == reads == [0, 1, 2, 3]
    assert _widen(torch.tensor(7), "bn", "num_batches_tracked", 0, None, []) == 7


@pytest.mark.slow
def test_a_widened_run_resumes_at_its_step(tmp_path, data_dir_small):
    common = ["--data", str(data_dir_small), "--cache-dir", str(tmp_path / "cache"), "--d-width", "8",
              "--batch-size", "16", "--log-every", "1", "--fd-samples", "16", "--sample-every", "1000"]
    first = train_gan.main([*common, "--out", str(tmp_path / "narrow"), "--g-width", "8", "--steps", "4"])
    widen_run(tmp_path / "narrow", tmp_path / "wide", width=12)
    ck = load_checkpoint(tmp_path / "wide" / "generator.pt", "generator")
    assert ck.model.config.width == 12 and ck.train["widened_from"] == {"width": 8, "step": 4, "noise": 0.01}
    narrow = load_checkpoint(first["checkpoint"], "generator").model
    z = torch.randn(4, 128)
    with torch.no_grad():
        assert torch.allclose(narrow(z), ck.model(z), atol=1e-5)  # the EMA G, exact (no noise on it)
    result = train_gan.main([*common, "--out", str(tmp_path / "wide"), "--g-width", "12", "--steps", "7", "--resume"])
    assert result["steps"] == 7
    assert [h["step"] for h in result["history"]] == list(range(1, 8))
    with pytest.raises(SystemExit, match="already 12 wide"):
        widen_run(tmp_path / "wide", tmp_path / "again", width=12)


@pytest.fixture
def data_dir_small(tmp_path):
    return write_celeba(tmp_path / "celeba", n=40)
