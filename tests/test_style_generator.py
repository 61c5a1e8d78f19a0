"""The style-based generator: shapes and range, z -> w -> image, checkpoints, the engine on it, training."""
from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from conftest import models_with_generator, write_celeba
from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.engine import Engine
from core.data import to_uint8
from core.directions import FitConfig
from core.history import EditState, SeedPoint
from core.align import FaceCrop
from core.inversion import InvertConfig
from core.jobs import mix_face
from core.latent import on_sphere
from core.models import Encoder, EncoderConfig, Generator, StyleGenerator, StyleGeneratorConfig, WSpaceGenerator
from core.steering import SteerConfig
from core.worker import run_inline
from training import train_gan
from training.common import BatchSampler

SMALL = dict(z_dim=16, w_dim=32, mapping_layers=2, width=8, max_channels=32)


def small(**kw) -> StyleGenerator:
    torch.manual_seed(0)
    return StyleGenerator(StyleGeneratorConfig(**{**SMALL, **kw})).eval()


@pytest.mark.parametrize("kw, size", [({}, 64), ({"image_size": 128, "convs_per_block": 1, "noise": False}, 128)])
def test_images_have_the_asked_size_and_range(kw, size):
    gen = small(**kw)
    z = torch.randn(3, 16)
    with torch.no_grad():
        x = gen(z)
    assert x.shape == (3, 3, size, size) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.05
    assert torch.equal(x, gen(z))  # eval mode: fixed noise maps, so a code always gives the same face
    assert not torch.equal(x[0], x[1])


def test_forward_is_mapping_then_synthesis_and_truncation_pulls_to_w_avg():
    gen = small()
    z = torch.randn(4, 16)
    w = gen.mapping(z)
    assert w.shape == (4, 32)
    torch.testing.assert_close(gen(z), gen.synthesis(w))
    torch.testing.assert_close(gen.synthesis(w.unsqueeze(1).repeat(1, gen.num_ws, 1)), gen(z))  # one w per layer
    with pytest.raises(ValueError, match="synthesis takes w"):
        gen.synthesis(torch.randn(4, gen.num_ws + 1, 32))
    gen.train()
    gen.mapping(torch.randn(64, 16))  # training tracks the mean w
    gen.eval()
    assert gen.w_avg.abs().sum() > 0
    flat = gen.mapping(z, truncation=0.0)
    torch.testing.assert_close(flat, gen.w_avg.expand(4, -1))
    half = gen.mapping(z, truncation=0.5)
    torch.testing.assert_close(half, gen.w_avg + 0.5 * (w - gen.w_avg))


def test_training_mode_draws_noise_and_mixes_styles():
    gen = small().train()
    z = torch.randn(2, 16)
    torch.manual_seed(1)
    a = gen(z, mixing=1.0)
    with torch.no_grad():
        for m in gen.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.5)
    torch.manual_seed(1)
    b = gen(z, mixing=1.0)
    assert not torch.equal(a, b)  # the noise inputs reach the image
    (b.square().mean()).backward()
    assert all(p.grad is not None for p in gen.parameters())


def test_checkpoint_rebuilds_the_same_style_generator_from_its_metadata(tmp_path):
    gen = small(truncation=0.7)
    gen.train()
    gen.mapping(torch.randn(32, 16))
    gen.eval()
    path = save_checkpoint(tmp_path / "g.pt", "generator", gen)
    blob = torch.load(path, weights_only=True)
    assert blob["config"]["arch"] == "style" and blob["config"]["truncation"] == 0.7
    ck = load_checkpoint(path, "generator")
    assert isinstance(ck.model, StyleGenerator) and ck.model.config == gen.config
    z = torch.randn(5, 16)
    torch.testing.assert_close(ck.model(z), gen(z))
    # DCGAN checkpoints (no arch in their config) load as before; an unknown arch is one clear sentence
    dcgan = save_checkpoint(tmp_path / "d.pt", "generator", Generator())
    assert type(load_checkpoint(dcgan).model) is Generator
    blob["config"]["arch"] = "transformer"
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="unknown generator arch 'transformer'"):
        load_checkpoint(tmp_path / "bad.pt")
    blob["config"].update(arch="style", noise="yes")
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="noise must be true or false"):
        load_checkpoint(tmp_path / "bad.pt")


def test_engine_edits_a_style_generator_in_w(tiny_models, tmp_path):
    style = small()
    folder = models_with_generator(tiny_models, tmp_path / "models", style)
    # the tiny encoder predicts 16-number z; a style G is edited in its 32-number w
    with pytest.raises(CheckpointError, match="train the encoder"):
        Engine(folder, device="cpu", start_worker=False, directions_cache=tmp_path / "dirs")
    save_checkpoint(folder / "encoder.pt", "encoder", Encoder(EncoderConfig(z_dim=32, width=8)).eval())
    engine = Engine(folder, device="cpu", start_worker=False, directions_cache=tmp_path / "dirs")
    try:
        assert isinstance(engine.generator, WSpaceGenerator) and not on_sphere(engine.generator)
        assert engine.z_dim == 32
        # a seed's code is the mapped prior z, and renders as G(z) would
        w = engine.z_from_seed(3)
        z = torch.randn(1, 16, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            assert torch.allclose(w, style.mapping(z), atol=1e-5)
            expected = to_uint8(style(z))[0]
        frame = engine.random_job(3)
        assert frame.image.shape == (3, 64, 64) and frame.probs.shape == (40,)
        assert (frame.image.int() - expected.int()).abs().max() <= 1
        # steering moves w and does not put it on z's sphere (√32 ≈ 5.7)
        outcome = run_inline(engine.steer_job, w, {"Smiling": 1.0}, None, SteerConfig(steps=4, until=None, step_size=0.5))
        moved = outcome.frames[-1].z
        assert len(outcome.frames) == 5 and not torch.equal(moved, outcome.frames[0].z)
        assert abs(float(moved.norm()) - 32 ** 0.5) > 0.5
        # paths between faces run straight in w (lerp), not along z's sphere: the mix's midpoint is the mean
        assert engine.interpolation == "lerp"
        a, b = EditState(base=SeedPoint(1)), EditState(base=SeedPoint(2))
        mixed = mix_face(engine, a, b, 0.5).state.z
        assert torch.allclose(mixed, (engine.z_from_seed(1)[0] + engine.z_from_seed(2)[0]) / 2, atol=1e-6)
        # directions are fitted in w, and a photo inverts to a w (and its own tuned generator)
        directions = run_inline(engine.fit_directions_job, FitConfig(samples=400, batch_size=200))
        assert directions.vectors.shape == (40, 32)
        crop = FaceCrop(image=frame.image, box=(0, 0, 64, 64), face=None)
        config = InvertConfig(steps=2)
        config.tune.steps = 2
        inverted = run_inline(engine.invert_job, crop, config)
        assert inverted.frame.z.shape == (32,) and inverted.delta is not None
        assert all(name.startswith("style.") for name in inverted.delta.tensors)
    finally:
        engine.close()


def test_style_smoke_training_writes_a_loadable_checkpoint_and_resumes(tmp_path):
    data = write_celeba(tmp_path / "celeba", n=60)
    out, cache = tmp_path / "run", str(tmp_path / "cache")
    common = ["--data", str(data), "--out", str(out), "--smoke", "--arch", "style", "--cache-dir", cache,
              "--threads", "1"]
    result = train_gan.main(common + ["--steps", "4", "--r1", "0.2", "--r1-every", "2"])
    ck = load_checkpoint(result["checkpoint"], "generator")
    assert isinstance(ck.model, StyleGenerator) and ck.config["width"] == 8
    assert ck.model.w_avg.abs().sum() > 0  # the EMA copy carries the tracked mean w
    assert ck.model(torch.randn(2, ck.model.z_dim)).shape == (2, 3, 64, 64)
    assert ck.train["args"]["arch"] == "style" and ck.train["args"]["lr_g"] == 2e-3
    resumed = train_gan.main(common + ["--resume", "--steps", "50", "--max-minutes", "1e-6"])
    assert resumed["steps"] == 5  # one step, then the time budget stopped it (and it saved)
    assert load_checkpoint(Path(out) / "generator.pt").train["steps"] == 5


def test_conditional_generator_maps_the_attributes_into_w_and_draws_them_from_real_faces():
    g = small(num_attributes=5, label_bank=8)
    g.labels.copy_(torch.tensor([[1, 0, 0, 1, 0]] * 4 + [[0, 1, 1, 0, 0]] * 4, dtype=torch.float))
    z = torch.randn(3, 16)
    with torch.no_grad():
        a, b = torch.zeros(3, 5), torch.ones(3, 5)
        assert not torch.allclose(g.mapping(z, c=a), g.mapping(z, c=b))  # the condition moves w
        assert torch.equal(g.mapping(z, c=a), g.mapping(z, c=a))
        drawn = g.draw_conditions(200, torch.Generator().manual_seed(0))
        rows = {tuple(r.tolist()) for r in drawn}
        assert rows == {(1.0, 0.0, 0.0, 1.0, 0.0), (0.0, 1.0, 1.0, 0.0, 0.0)}  # joint vectors, never mixed
        assert g(z, c=a).shape == (3, 3, 64, 64) and g(z).shape == (3, 3, 64, 64)
    # in the app's w space, a seed's code is reproducible (its condition drawn by the same generator)
    space = WSpaceGenerator(g)
    one, two = (space.sample_codes(4, torch.Generator().manual_seed(9)) for _ in range(2))
    assert torch.equal(one, two)
    with pytest.raises(ValueError, match="no attribute condition"):
        small().mapping(z, c=a)


def test_projection_discriminator_needs_and_uses_the_condition():
    from core.models import Discriminator, DiscriminatorConfig

    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(width=8, norm="spectral", num_attributes=5)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(d(x, torch.zeros(2, 5)), d(x, torch.ones(2, 5)))
    with pytest.raises(ValueError, match="pass the attributes"):
        d(x)


def test_conditional_smoke_training_saves_a_generator_with_real_label_bank(tmp_path):
    data = write_celeba(tmp_path / "celeba", n=60)
    out = tmp_path / "run"
    result = train_gan.main(["--data", str(data), "--out", str(out), "--smoke", "--arch", "style", "--conditional",
                             "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--steps", "3",
                             "--r1", "0.2", "--r1-every", "1"])
    ck = load_checkpoint(result["checkpoint"], "generator")
    assert ck.config["num_attributes"] == len(ck.attributes) > 0 and ck.model.conditional
    bank = ck.model.labels
    assert set(bank.unique().tolist()) <= {0.0, 1.0} and bank.sum() > 0  # real 0/1 attribute vectors
    d = load_checkpoint(out / "discriminator.pt", "discriminator")
    assert d.config["num_attributes"] == len(ck.attributes)
    with pytest.raises(SystemExit):
        train_gan.main(["--data", str(data), "--out", str(tmp_path / "bad"), "--smoke", "--conditional"])


def test_a_conditional_generator_s_directions_come_from_its_condition():
    from core.directions import FitConfig, condition_directions, fit_directions
    from core.models import Classifier, ClassifierConfig

    g = small(num_attributes=5, label_bank=16)
    g.labels.copy_((torch.rand(16, 5, generator=torch.Generator().manual_seed(1)) < 0.5).float())
    space = WSpaceGenerator(g).requires_grad_(False)
    cls = Classifier(ClassifierConfig(num_attributes=5, width=8)).eval().requires_grad_(False)
    names = ["A", "B", "C", "D", "E"]
    dirs = run_inline(fit_directions, space, cls, names, FitConfig(samples=200, batch_size=100))
    by_condition = condition_directions(space)
    assert dirs.vectors.shape == (5, 32)
    cos = torch.nn.functional.cosine_similarity(dirs.vectors, by_condition, dim=1)
    assert bool((cos > 0.999).all())  # the condition's own flip, not the classifier's correlations
    # flipping attribute 0 of the condition moves w along its direction, the same z kept
    z, c = torch.randn(1, 16), g.labels[:1].clone()
    on, off = c.clone(), c.clone()
    on[0, 0], off[0, 0] = 1.0, 0.0
    with torch.no_grad():
        step = g.mapping(z, c=on) - g.mapping(z, c=off)
    assert float(torch.nn.functional.cosine_similarity(step, by_condition[:1])) > 0.5
    with pytest.raises(ValueError, match="conditioned on 5 attributes"):
        run_inline(fit_directions, space, Classifier(ClassifierConfig(num_attributes=4, width=8)).eval(),
                   names[:4], FitConfig(samples=200, batch_size=100))


class _TopHalf(torch.nn.Module):
    """A stand-in classifier: reads attribute 0 as 'the top half is brighter than the bottom half'."""

    config = types.SimpleNamespace(image_size=64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = 20 * (x[:, :, :32].mean((1, 2, 3)) - x[:, :, 32:].mean((1, 2, 3)))
        return torch.cat([lead[:, None], torch.zeros(len(x), 2, dtype=x.dtype)], 1)


def _condition_gap(weight: float, steps: int = 30) -> float:
    """Train a tiny conditional G for `steps` with --cond-cls `weight`; how much more the reader sees
    attribute 0 when the condition turns it on than off (same z, rest of c kept)."""
    torch.manual_seed(0)
    args = train_gan.parse_args(["--data", "x", "--arch", "style", "--conditional", "--g-width", "8",
                                 "--d-width", "8", "--batch-size", "8", "--mixing", "0", "--classifier", "c.pt",
                                 "--cond-cls", str(weight)])
    labels = torch.randint(0, 2, (64, 3)).float()
    images = torch.randint(0, 256, (64, 3, 64, 64), dtype=torch.uint8)
    trainer = train_gan.GanTrainer(args, torch.device("cpu"), labels=labels,
                                   cond_classifier=_TopHalf() if weight else None)
    sampler = BatchSampler(images, 8, labels=labels)
    for i in range(steps):
        trainer.step(i, sampler)
    g = trainer.gen.eval()
    z = torch.randn(32, g.z_dim, generator=torch.Generator().manual_seed(1))
    on, off = labels[:32].clone(), labels[:32].clone()
    on[:, 0], off[:, 0] = 1, 0
    with torch.no_grad():
        return float((_TopHalf()(g(z, c=on))[:, 0] - _TopHalf()(g(z, c=off))[:, 0]).mean())


def test_the_auxiliary_classifier_loss_makes_the_condition_show_on_the_face():
    with_aux, without = _condition_gap(5.0), _condition_gap(0.0)
    assert with_aux > 3.0 and with_aux > without + 3.0


def test_auxiliary_loss_needs_a_conditional_g_and_a_classifier_and_reads_by_name(tmp_path):
    for argv in (["--arch", "style", "--cond-cls", "1", "--classifier", "c.pt"],
                 ["--arch", "style", "--conditional", "--cond-cls", "1"]):
        with pytest.raises(SystemExit):
            train_gan.parse_args(["--data", "x", *argv])
    from core.models import Classifier, ClassifierConfig

    torch.manual_seed(0)
    cls = Classifier(ClassifierConfig(num_attributes=3, width=8)).eval()
    save_checkpoint(tmp_path / "c.pt", "classifier", cls, attributes=["A", "B", "C"])
    ck = load_checkpoint(tmp_path / "c.pt", "classifier")
    reader = train_gan.condition_reader(ck, ["C", "A"])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(reader(x), cls(x)[:, [2, 0]])
    with pytest.raises(SystemExit, match="does not read D"):
        train_gan.condition_reader(ck, ["A", "D"])
