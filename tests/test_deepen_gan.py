"""Residual blocks at the FastGAN G's coarse stages, and training.deepen_gan: a deeper G that draws
what the shallow one drew, and a run that resumes on it."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conftest import with_trained_batchnorm, write_celeba
from core.checkpoint import load_checkpoint
from core.models import FastGenerator, FastGeneratorConfig, ResidualGluBlock, prepare_for_inference
from training import train_gan
from training.deepen_gan import deepen_adam, deepen_run, deepen_state

CONFIG = FastGeneratorConfig(z_dim=16, width=8)


def _trained_like(config: FastGeneratorConfig = CONFIG) -> FastGenerator:
    """A G with non-trivial weights and BatchNorm statistics (not the init's ones and zeros)."""
    torch.manual_seed(0)
    gen = FastGenerator(config)
    for m in gen.modules():
        if isinstance(m, ResidualGluBlock):  # as after training: the block no longer adds zero
            m.body[-1].weight.data.normal_(0, 0.3)
    return with_trained_batchnorm(gen, config.z_dim).eval()


def test_blocks_sit_at_the_three_coarse_stages_and_change_the_faces_once_trained():
    shallow, deep = _trained_like(), _trained_like(replace(CONFIG, coarse_blocks=2))
    assert sorted(deep.blocks) == ["0", "1", "2"] and all(len(b) == 2 for b in deep.blocks.values())
    assert [deep.blocks[k][0].body[0].in_channels for k in ("0", "1", "2")] == [64, 32, 16]  # 4×4, 8×8, 16×16
    assert len(shallow.blocks) == 0 and "blocks" not in str(list(shallow.state_dict()))  # old checkpoints fit
    deep.load_state_dict({**deep.state_dict(), **shallow.state_dict()})  # same weights but for the blocks
    z = torch.randn(4, 16)
    with torch.no_grad():
        a, b = deep(z), shallow(z)
    assert (a - b).abs().mean() > 0.1 * b.std()
    with pytest.raises(ValueError, match="coarse_blocks"):
        FastGenerator(replace(CONFIG, coarse_blocks=-1))


def test_a_fresh_block_is_the_identity_even_after_the_dcgan_init():
    gen = FastGenerator(replace(CONFIG, coarse_blocks=1))
    gen.apply(train_gan.dcgan_init)
    x = torch.randn(3, 32, 8, 8)
    block = gen.blocks["1"][0]
    assert torch.equal(block(x), x)
    assert block.body[0].weight.std() > 0.01  # the first conv is initialised, only the output is zero
    # the zero conv still gets a gradient, so the block can leave the identity
    block(x).square().sum().backward()
    assert block.body[-1].weight.grad.abs().max() > 0


def test_the_deeper_g_draws_the_same_faces_in_eval_and_train_mode():
    gen = _trained_like()
    deep, state = deepen_state(gen.state_dict(), CONFIG, blocks=1)
    deep.load_state_dict(state)
    z = torch.randn(8, 16)
    for mode in (False, True):
        gen.train(mode), deep.train(mode)
        with torch.no_grad():
            assert torch.allclose(gen(z), deep(z), atol=1e-6), mode
    with pytest.raises(ValueError, match="does not fit"):
        deepen_state(FastGenerator(replace(CONFIG, width=12)).state_dict(), CONFIG, blocks=1)


def test_a_deep_g_folds_for_the_app():
    gen = _trained_like(replace(CONFIG, coarse_blocks=1))
    z = torch.randn(5, 16)
    with torch.no_grad():
        torch.testing.assert_close(prepare_for_inference(gen)(z), gen(z), atol=1e-5, rtol=1e-4)


def test_adam_keeps_each_old_parameter_s_moments_by_name():
    old_names = [n for n, _ in FastGenerator(CONFIG).named_parameters()]
    opt_state = {"state": {i: {"step": torch.tensor(7.0), "exp_avg": torch.full((2,), float(i))}
                           for i in range(len(old_names))},
                 "param_groups": [{"lr": 1e-4, "params": list(range(len(old_names)))}]}
    mapped = deepen_adam(opt_state, CONFIG, blocks=1)
    new_names = [n for n, _ in FastGenerator(replace(CONFIG, coarse_blocks=1)).named_parameters()]
    assert mapped["param_groups"][0]["params"] == list(range(len(new_names))) and mapped["param_groups"][0]["lr"] == 1e-4
    for i, name in enumerate(old_names):
        assert mapped["state"][new_names.index(name)]["exp_avg"][0] == i
    fresh = [i for i, n in enumerate(new_names) if n.startswith("blocks.")]
    assert fresh and not set(fresh) & set(mapped["state"])  # new parameters start without moments


def test_only_fast_gan_runs_take_g_blocks(capsys):
    assert train_gan.parse_args(["--data", "x", "--arch", "fast", "--g-blocks", "1"]).g_blocks == 1
    with pytest.raises(SystemExit):
        train_gan.parse_args(["--data", "x", "--arch", "dcgan", "--g-blocks", "1"])
    assert "--g-blocks is an option of --arch fast" in capsys.readouterr().err


@pytest.mark.slow
def test_a_deepened_run_resumes_at_its_step(tmp_path):
    data = write_celeba(tmp_path / "celeba", n=40)
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--smoke", "--arch", "fast",
              "--threads", "1", "--fd-samples", "16", "--sample-every", "1000"]
    first = train_gan.main([*common, "--out", str(tmp_path / "shallow"), "--steps", "4"])
    deepen_run(tmp_path / "shallow", tmp_path / "deep", blocks=1)
    ck = load_checkpoint(tmp_path / "deep" / "generator.pt", "generator")
    assert ck.model.config.coarse_blocks == 1 and ck.train["deepened_from"] == {"coarse_blocks": 0, "step": 4}
    shallow = load_checkpoint(first["checkpoint"], "generator").model
    z = torch.randn(4, shallow.z_dim)
    with torch.no_grad():
        assert torch.allclose(shallow(z), ck.model(z), atol=1e-6)  # the EMA G, exact
    with pytest.raises(SystemExit, match="does not fit"):  # the shallow G's options cannot load it
        train_gan.main([*common, "--out", str(tmp_path / "deep"), "--steps", "6", "--resume"])
    result = train_gan.main([*common, "--out", str(tmp_path / "deep"), "--g-blocks", "1", "--steps", "7", "--resume"])
    assert result["steps"] == 7 and [h["step"] for h in result["history"]] == list(range(1, 8))
    moved = load_checkpoint(tmp_path / "deep" / "generator.pt", "generator").extra["resume"]["generator_raw"]
    assert moved["blocks.1.0.body.3.weight"].abs().max() > 0  # the new blocks trained
    with pytest.raises(SystemExit, match="already has 1"):
        deepen_run(tmp_path / "deep", tmp_path / "again", blocks=1)
    train_gan.main([*common, "--arch", "dcgan", "--out", str(tmp_path / "dcgan"), "--steps", "2"])
    with pytest.raises(SystemExit, match="only the FastGAN"):
        deepen_run(tmp_path / "dcgan", tmp_path / "nope", blocks=1)
