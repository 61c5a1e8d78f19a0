"""The FastGAN-style generator (skip-layer excitation) and the self-supervised discriminator."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import models_with_generator, write_celeba
from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.data import to_uint8
from core.engine import Engine
from core.models import (Discriminator, DiscriminatorConfig, FastGenerator, FastGeneratorConfig, SkipExcitation,
                         prepare_for_inference)
from core.steering import SteerConfig
from core.worker import run_inline
from training import train_gan


def small(**kw) -> FastGenerator:
    torch.manual_seed(0)
    return FastGenerator(FastGeneratorConfig(**{"z_dim": 16, "width": 8, **kw})).eval()


@pytest.mark.parametrize("size", [32, 64, 128])
def test_images_have_the_asked_size_and_range_and_the_skips_span_eight_times(size):
    gen = small(image_size=size)
    x = gen(torch.randn(3, 16))
    assert x.shape == (3, 3, size, size) and x.abs().max() <= 1
    # 4×4 excites image_size/2 and 8×8 excites image_size (one skip only at 32 px, whose 64 stage is absent)
    assert sorted(gen.excite) == (["3"] if size == 32 else ["3", "4"])


def test_config_rejects_what_it_cannot_build():
    for bad in (dict(image_size=16), dict(image_size=96), dict(width=2), dict(arch="style")):
        with pytest.raises(ValueError):
            FastGenerator(FastGeneratorConfig(**bad))


def _high_share(x: torch.Tensor) -> float:
    """Share of the images' power in the upper half of the frequencies (either axis)."""
    power = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    fy, fx = (torch.fft.fftfreq(n).abs() for n in x.shape[-2:])
    high = (fy[:, None] >= 0.25) | (fx[None, :] >= 0.25)
    return float(power[..., high].sum() / power.sum())


def test_bilinear_upsampling_keeps_the_weights_and_removes_the_nearest_checkerboard():
    torch.manual_seed(3)
    nearest = small()
    bilinear = FastGenerator(FastGeneratorConfig(**{**vars(nearest.config), "upsample": "bilinear"}))
    bilinear.load_state_dict(nearest.state_dict())  # the same parameter shapes: the difference is the upsampling alone
    nearest.eval(), bilinear.eval()
    # drive the last up-block with a smooth map: nearest doubling turns it into 2×2 blocks, bilinear does not
    grid = torch.arange(32.0) * 2 * torch.pi / 32
    phase = torch.rand(4, nearest.ups[-1][1].in_channels, 1, 1) * 6.3
    smooth = torch.cos(grid[:, None] * 2 + phase) + torch.sin(grid[None, :] * 3 + 2 * phase)  # 2-3 cycles per map
    up_n, up_b = nearest.ups[-1][0](smooth), bilinear.ups[-1][0](smooth)
    assert _high_share(up_b) < 0.3 * _high_share(up_n)
    z = torch.randn(2, 16)
    assert not torch.allclose(nearest(z), bilinear(z))
    with pytest.raises(ValueError, match="upsample"):
        FastGenerator(FastGeneratorConfig(upsample="transposed"))


def test_train_gan_offers_each_arch_only_its_own_upsampling(capsys):
    assert train_gan.parse_args(["--data", "x", "--arch", "fast", "--upsample", "bilinear"]).upsample == "bilinear"
    for arch, bad in (("fast", "transposed"), ("dcgan", "bilinear")):
        with pytest.raises(SystemExit):
            train_gan.parse_args(["--data", "x", "--arch", arch, "--upsample", bad])
        assert f"--upsample {bad} is not an option of --arch {arch}" in capsys.readouterr().err


def test_skip_excitation_scales_each_channel_of_the_high_map_by_a_gate_the_low_map_sets():
    torch.manual_seed(1)
    skip = SkipExcitation(6, 5)
    low, high = torch.randn(2, 6, 8, 8), torch.randn(2, 5, 16, 16).abs() + 0.1
    ratio = skip(low, high) / high
    # one gate per image and channel, the same at every pixel, strictly between 0 and 1
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-6)
    assert 0 < ratio.min() and ratio.max() < 1
    # the coarse map decides the gates: another low map, other gates on the same high map
    assert not torch.allclose(skip(-low, high) / high, ratio, atol=1e-3)


def test_the_generator_folds_for_the_app_and_its_checkpoint_rebuilds_it(tmp_path):
    gen = small()
    gen.train()
    gen(torch.randn(64, 16))  # running BN statistics that differ from the defaults
    gen.eval()
    z = torch.randn(5, 16)
    torch.testing.assert_close(prepare_for_inference(gen)(z), gen(z), atol=1e-5, rtol=1e-4)
    path = save_checkpoint(tmp_path / "g.pt", "generator", gen)
    ck = load_checkpoint(path, "generator")
    assert isinstance(ck.model, FastGenerator) and ck.model.config == gen.config
    torch.testing.assert_close(ck.model(z), gen(z))
    for change, message in (({"image_size": 16}, "at least 32"), ({"width": 10 ** 6}, "width must be")):
        blob = torch.load(path, weights_only=True)
        torch.save({**blob, "config": {**blob["config"], **change}}, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=message):  # hostile metadata cannot build a giant model
            load_checkpoint(tmp_path / "bad.pt")


def test_engine_draws_and_steers_with_a_fast_generator(tiny_models, tmp_path):
    gen = small()
    folder = models_with_generator(tiny_models, tmp_path / "models", gen)
    engine = Engine(folder, device="cpu", start_worker=False, directions_cache=tmp_path / "dirs")
    try:
        z = engine.z_from_seed(3)
        with torch.no_grad():
            expected = to_uint8(gen(z))[0]
        frame = engine.random_job(3)
        assert (frame.image.int() - expected.int()).abs().max() <= 1
        outcome = run_inline(engine.steer_job, z, {"Smiling": 1.0}, None, SteerConfig(steps=3, until=None, step_size=0.5))
        assert len(outcome.frames) == 4 and not torch.equal(outcome.frames[-1].z, outcome.frames[0].z)
    finally:
        engine.close()


def tiny_d(**kw) -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(DiscriminatorConfig(**{"width": 8, "norm": "batch", "reconstruct": True, **kw}))


def test_reconstruction_leaves_the_logit_unchanged_and_needs_decoders():
    d = tiny_d().eval()
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    logit, loss = d(x, reconstruct=True)
    torch.testing.assert_close(logit, d(x))
    assert loss.ndim == 0 and loss > 0
    with pytest.raises(ValueError, match="no decoders"):
        tiny_d(reconstruct=False)(x, reconstruct=True)
    with pytest.raises(ValueError):
        tiny_d(reconstruct="yes")


@pytest.mark.parametrize("size, downsample", [(64, "strided"), (128, "pool"), (32, "strided")])
def test_the_part_decoder_reads_the_quadrant_of_the_features_that_matches_the_image_quadrant(size, downsample,
                                                                                             monkeypatch):
    d = tiny_d(image_size=size, downsample=downsample).eval()
    x = torch.zeros(2, 3, size, size)
    half = size // 2
    values = {0: 0.1, 1: 0.3, 2: 0.5, 3: 0.7}  # top-left, top-right, bottom-left, bottom-right
    for q, v in values.items():
        r, c = divmod(q, 2)
        x[..., r * half:(r + 1) * half, c * half:(c + 1) * half] = v
    taps, seen = {}, {}
    part_tap = [i for i, name in d.tap.items() if name == "part"][0]
    relus = [m for m in d.features if isinstance(m, torch.nn.LeakyReLU)]
    relus[part_tap].register_forward_hook(lambda m, i, o: taps.__setitem__("part", o.detach().clone()))
    for name in ("whole", "part"):  # decoders that draw grey and remember what they were given
        def zero(module, inputs, output, name=name):
            seen[name] = inputs[0].detach().clone()
            return torch.zeros_like(output)
        d.decoders[name].register_forward_hook(zero)
    whole_error = x.abs().mean()  # a grey image against the whole face
    for q, v in values.items():
        monkeypatch.setattr(torch, "randint", lambda *a, q=q, **k: torch.tensor(q))
        _, loss = d(x, reconstruct=True)
        assert float(loss) == pytest.approx(float(whole_error) + v, abs=1e-5)  # grey against that quadrant
        assert seen["whole"].shape[-1] == 8 and seen["part"].shape[-1] == 8
        f, r, c = taps["part"], *divmod(q, 2)
        torch.testing.assert_close(seen["part"], f[..., r * 8:(r + 1) * 8, c * 8:(c + 1) * 8])


def test_the_reconstruction_loss_trains_d_s_own_features_and_falls():
    d = tiny_d().train()
    torch.manual_seed(2)  # smooth images, as faces are at this scale (white noise cannot be rebuilt from 8×8)
    x = torch.nn.functional.interpolate(torch.rand(16, 3, 4, 4) * 2 - 1, size=64, mode="bilinear")
    _, loss = d(x, reconstruct=True)
    loss.backward()
    first_conv = d.features[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0  # not only the decoders learn
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    torch.manual_seed(0)
    with torch.no_grad():
        start = float(d(x, reconstruct=True)[1])
    for _ in range(60):
        opt.zero_grad()
        d(x, reconstruct=True)[1].backward()
        opt.step()
    with torch.no_grad():
        assert float(d(x, reconstruct=True)[1]) < 0.5 * start


def test_smoke_training_of_the_fast_gan_with_a_self_supervised_d_saves_and_resumes(tmp_path):
    data = write_celeba(tmp_path / "celeba", n=60)
    out, cache = tmp_path / "run", str(tmp_path / "cache")
    common = ["--data", str(data), "--out", str(out), "--smoke", "--arch", "fast", "--d-recon", "1",
              "--cache-dir", cache, "--threads", "1"]
    result = train_gan.main(common + ["--steps", "4"])
    ck = load_checkpoint(result["checkpoint"], "generator")
    assert isinstance(ck.model, FastGenerator) and ck.config["width"] == 8
    assert ck.model(torch.randn(2, ck.model.z_dim)).shape == (2, 3, 64, 64)
    d_ck = load_checkpoint(Path(out) / "discriminator.pt", "discriminator")
    assert d_ck.model.config.reconstruct and d_ck.model.decoders is not None
    before = {k: v.clone() for k, v in d_ck.model.decoders.state_dict().items()}
    resumed = train_gan.main(common + ["--resume", "--steps", "50", "--max-minutes", "1e-6"])
    assert resumed["steps"] == 5
    after = load_checkpoint(Path(out) / "discriminator.pt", "discriminator").model.decoders.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(after[k], v)]
    assert any(k.endswith("weight") for k in changed)  # the resumed step updated the decoders too
    with pytest.raises(SystemExit):
        train_gan.main(common + ["--d-recon", "-1"])


@pytest.mark.parametrize("flags, parts", [(["--d-recon", "1"], ["decoders"]), (["--d-attr", "1"], ["reader"]),
                                          (["--d-recon", "1", "--d-attr", "0.5"], ["decoders", "reader"])])
def test_a_run_s_d_gains_new_parts_when_resumed_with_their_task(tmp_path, flags, parts):
    data = write_celeba(tmp_path / "celeba", n=60)
    out = tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--smoke", "--cache-dir", str(tmp_path / "cache"),
              "--threads", "1"]
    train_gan.main(common + ["--steps", "3"])
    plain = load_checkpoint(out / "discriminator.pt", "discriminator").model
    assert plain.decoders is None and plain.reader is None
    resumed = train_gan.main(common + ["--resume", "--steps", "5", *flags])
    assert resumed["steps"] == 5
    d_ck = load_checkpoint(out / "discriminator.pt", "discriminator")
    for part in parts:
        assert getattr(d_ck.model, part) is not None
    if "reader" in parts:
        attributes = load_checkpoint(out / "generator.pt", "generator").attributes
        assert d_ck.model.config.read_attributes == len(attributes) > 1  # every attribute of the data
    opt_d = d_ck.extra["resume"]["opt_d"]
    assert len(opt_d["param_groups"][0]["params"]) == len(list(d_ck.model.parameters()))
    assert len(d_ck.extra["resume"]["opt_d"]["state"]) == len(list(d_ck.model.parameters()))  # all were stepped
    with pytest.raises(SystemExit, match="resume"):  # a D with new parts cannot go back to a run without them
        train_gan.main(common + ["--resume", "--steps", "6"])


def test_the_attribute_reader_leaves_the_logit_unchanged_and_learns_from_d_s_own_features():
    d = tiny_d(reconstruct=False, read_attributes=2).train()
    torch.manual_seed(3)
    x = torch.nn.functional.interpolate(torch.rand(32, 3, 4, 4) * 2 - 1, size=64, mode="bilinear")
    labels = torch.stack([x[:, 0].mean((1, 2)) > x[:, 0].mean(), x[:, 2, :32].mean((1, 2)) > x[:, 2, 32:].mean((1, 2))],
                         1).float()  # red brighter than the batch's; blue brighter on top than below
    logit, read = d(x, read=True)
    assert read.shape == (32, 2)
    torch.nn.functional.binary_cross_entropy_with_logits(read, labels).backward()
    assert d.features[0].weight.grad.abs().sum() > 0  # D's own features learn from the task, not only the reader
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    for _ in range(80):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(d(x, read=True)[1], labels).backward()
        opt.step()
    d.eval()
    with torch.no_grad():
        logit, read = d(x, read=True)
        torch.testing.assert_close(logit, d(x))
        assert ((read > 0).float() == labels).float().mean() > 0.9
        both = d(x, reconstruct=False, read=True)
        assert len(both) == 2
    with pytest.raises(ValueError, match="reads no attributes"):
        tiny_d(reconstruct=False)(x, read=True)
    with pytest.raises(ValueError):
        tiny_d(read_attributes=-1)
    full = tiny_d(read_attributes=3).eval()
    with torch.no_grad():
        logit, loss, read = full(x, reconstruct=True, read=True)  # the loss first, then the reading
    assert loss.ndim == 0 and read.shape == (32, 3)


def test_new_decoders_join_a_trained_d_without_touching_its_layers_or_moments():
    plain = tiny_d(reconstruct=False)
    opt = torch.optim.Adam(plain.parameters(), lr=1e-2)
    plain(torch.randn(4, 3, 64, 64)).mean().backward()
    opt.step()  # trained weights and non-zero moments
    recon = tiny_d()
    state, opt_state = train_gan.with_new_parts(recon, plain.state_dict(), opt.state_dict())
    recon.load_state_dict(state)
    new_opt = torch.optim.Adam(recon.parameters(), lr=1e-2)
    new_opt.load_state_dict(opt_state)
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(recon.state_dict()[name], value)
    old = list(plain.parameters())
    for p_old, p_new in zip(old, recon.parameters()):  # the saved moments sit on the same parameters
        torch.testing.assert_close(new_opt.state[p_new]["exp_avg"], opt.state[p_old]["exp_avg"])
    decoder_params = list(recon.decoders.parameters())
    assert len(list(recon.parameters())) == len(old) + len(decoder_params)
    assert all(p not in new_opt.state for p in decoder_params)  # empty moments: Adam starts them afresh
    recon(torch.randn(4, 3, 64, 64), reconstruct=True)[1].backward()
    new_opt.step()
    assert all(p in new_opt.state for p in decoder_params)
