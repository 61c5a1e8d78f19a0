"""Each training script's --smoke run, end to end on a folder the test writes."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import write_celeba
from core.checkpoint import load_checkpoint
from training import bench_gan, train_classifier, train_encoder, train_gan
from training.common import BatchSampler, balance_weights, parse_balance, stream_shifts
from training.diffaug import diff_augment, parse_policy

pytestmark = pytest.mark.slow  # trains real (tiny) models: `pytest -m "not slow"` skips them


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_celeba(tmp_path_factory.mktemp("celeba") / "celeba", n=60)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory) -> dict:
    """GAN and classifier smoke runs, shared by the tests below (they take seconds)."""
    out = tmp_path_factory.mktemp("runs")
    cache = str(out / "cache")
    gan = train_gan.main(["--data", str(data_dir), "--out", str(out / "gan"), "--smoke", "--cache-dir", cache])
    cls = train_classifier.main(["--data", str(data_dir), "--out", str(out / "cls"), "--smoke", "--cache-dir", cache,
                                 "--steps", "60"])
    return {"out": out, "cache": cache, "gan": gan, "cls": cls}


def _losses(history: list[dict], key: str) -> list[float]:
    return [h[key] for h in history]


def test_gan_smoke_writes_loadable_generator_and_losses_move(trained):
    ck = load_checkpoint(trained["gan"]["checkpoint"], "generator")
    assert ck.model(torch.randn(2, ck.model.z_dim)).shape == (2, 3, 64, 64)
    d_losses = _losses(trained["gan"]["history"], "d_loss")
    assert len(d_losses) == 6 and len(set(d_losses)) > 1
    assert (trained["out"] / "gan" / "samples").glob("*.png")
    disc = load_checkpoint(trained["out"] / "gan" / "discriminator.pt", "discriminator")
    assert disc.model(torch.randn(2, 3, 64, 64)).shape == (2,)
    lines = (trained["out"] / "gan" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 6


def test_gan_resume_continues_from_saved_step(trained, data_dir):
    out = trained["out"] / "gan"
    before = load_checkpoint(out / "generator.pt").train["steps"]
    result = train_gan.main(["--data", str(data_dir), "--out", str(out), "--smoke", "--cache-dir", trained["cache"],
                             "--resume", "--steps", "9", "--lr-d", "5e-5"])
    assert before == 6 and result["steps"] == 9
    assert [h["step"] for h in result["history"]] == list(range(1, 10))  # history continued, not restarted
    # the rate asked for on resume is the one trained with, not the saved optimiser's 2e-4
    d_state = load_checkpoint(out / "discriminator.pt", "discriminator").extra["resume"]["opt_d"]
    g_state = load_checkpoint(out / "generator.pt", "generator").extra["resume"]["opt_g"]
    assert {g["lr"] for g in d_state["param_groups"]} == {5e-5}
    assert {g["lr"] for g in g_state["param_groups"]} == {2e-4}


def test_balance_weights_raise_a_rare_attribute_to_about_the_asked_share():
    names = ["Bald", "Male", "Smiling"]
    labels = torch.zeros(1000, 3)
    labels[:20, 0] = 1  # 2 % bald
    labels[:400, 1] = 1
    weights = balance_weights(labels, names, {"Bald": 0.2})
    assert weights[:20].eq(10).all() and weights[20:].eq(1).all()  # 0.2 / 0.02
    images = torch.arange(1000, dtype=torch.uint8).view(1000, 1, 1, 1).expand(1000, 3, 2, 2).contiguous()
    torch.manual_seed(0)
    sampler = BatchSampler(images, 100, labels=labels, flip=False, weights=weights)
    drawn = torch.cat([sampler.next()[1][:, 0] for _ in range(200)])
    share = drawn.mean().item()
    assert 0.14 < share < 0.22  # 200 / 1180 ≈ 0.17 expected, vs 0.02 unweighted
    assert balance_weights(labels, names, {"Male": 0.2}).eq(1).all()  # already common: untouched
    with pytest.raises(ValueError, match="unknown attribute"):
        balance_weights(labels, names, {"Baldness": 0.2})
    assert parse_balance("Bald:0.3, Mustache", 0.15) == {"Bald": 0.3, "Mustache": 0.15}
    with pytest.raises(ValueError, match="ATTRIBUTE:RATE"):
        parse_balance("Bald:lots", 0.15)
    with pytest.raises(ValueError, match="between 0 and 1"):
        balance_weights(labels, names, {"Bald": 2.0})
    with pytest.raises(ValueError, match="finite"):
        BatchSampler(images, 10, weights=torch.full((1000,), float("nan")))


def test_stream_shifts_names_what_a_balance_drags_along():
    names = ["Bald", "Male", "Smiling"]
    labels = torch.zeros(1000, 3)
    labels[:20, :2] = 1  # 2 % bald, all of them male
    labels[20:400, 1] = 1  # 40 % male in all
    labels[::2, 2] = 1  # half smile, evenly
    line = stream_shifts(labels, names, balance_weights(labels, names, {"Bald": 0.2}), top=2)
    # 20 bald faces weigh 10 each: 200 / 1180 bald, (200 + 380) / 1180 male; smiling barely moves
    assert line == "balanced stream: Bald 16.9 % (data 2.0 %), Male 49.2 % (data 40.0 %)"  # largest shift first


def test_gan_balance_option_trains_and_rejects_unknown_attribute(trained, data_dir):
    result = train_gan.main(["--data", str(data_dir), "--out", str(trained["out"] / "bal"), "--smoke",
                             "--cache-dir", trained["cache"], "--steps", "2", "--balance", "Smiling", "--balance-rate", "0.9"])
    assert result["steps"] == 2
    assert load_checkpoint(result["checkpoint"], "generator").train["args"]["balance"] == "Smiling"
    with pytest.raises(SystemExit, match="unknown attribute"):
        train_gan.main(["--data", str(data_dir), "--out", str(trained["out"] / "bal2"), "--smoke",
                        "--cache-dir", trained["cache"], "--steps", "2", "--balance", "Smilingg"])


def test_gan_wgan_gp_and_plain_preset_run(trained, data_dir):
    for extra in (["--loss", "wgan-gp", "--n-critic", "2"], ["--preset", "plain"], ["--loss", "hinge", "--r1", "1"]):
        name = extra[1]
        result = train_gan.main(["--data", str(data_dir), "--out", str(trained["out"] / name), "--smoke",
                                 "--cache-dir", trained["cache"], "--steps", "3", *extra])
        ck = load_checkpoint(result["checkpoint"], "generator")
        assert all(torch.isfinite(torch.tensor(h["d_loss"])) for h in result["history"])
        if name == "plain":
            assert ck.config["upsample"] == "transposed" and ck.train["args"]["ema"] == 0.0


def test_classifier_smoke_learns_visible_attribute(trained):
    hist = _losses(trained["cls"]["history"], "loss")
    assert hist[-1] < hist[0]  # loss goes down
    ck = load_checkpoint(trained["cls"]["checkpoint"], "classifier")
    assert ck.attributes == ["Smiling", "Male", "Eyeglasses", "Young"]
    # attribute 0 is drawn into the fixture images (bright top half); the others are noise
    assert ck.train["heldout"]["per_attribute"]["Smiling"] >= 0.9


def test_adversarial_images_stay_within_eps_and_raise_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x, y = torch.rand(16, 3, 8, 8) * 2 - 1, (torch.rand(16, 4) > 0.5).float()
    adv = train_classifier.adversarial_images(model, x, y, 0.05, contextlib.nullcontext)
    assert (adv - x).abs().max() <= 0.05 + 1e-6 and adv.min() >= -1 and adv.max() <= 1
    loss = lambda images: F.binary_cross_entropy_with_logits(model(images), y)  # noqa: E731
    assert loss(adv) > loss(x) + 0.01  # a linear model's loss rises along the signed gradient


def test_classifier_fine_tune_starts_from_init_weights_and_trains_adversarially(trained, data_dir, capsys):
    result = train_classifier.main(["--data", str(data_dir), "--out", str(trained["out"] / "cls_adv"), "--smoke",
                                    "--cache-dir", trained["cache"], "--steps", "10",
                                    "--init", trained["cls"]["checkpoint"], "--adversarial", "0.03"])
    # it began where the trained classifier ended, not at random: after 10 steps its weights are still
    # near the init's, far nearer than a freshly initialised classifier's (its first loss, on adversarial
    # images, sits too close to a fresh run's first loss to tell the two apart on every CPU)
    init = load_checkpoint(trained["cls"]["checkpoint"], "classifier").model
    tuned = load_checkpoint(result["checkpoint"], "classifier").model
    torch.manual_seed(0)
    random = type(init)(init.config)

    def distance(model: torch.nn.Module) -> float:
        return sum(float((a - b).square().sum()) for a, b in zip(model.parameters(), init.parameters())) ** 0.5

    assert distance(tuned) < 0.6 * distance(random)  # measured: 3.3 against 7.8
    assert result["history"][-1]["loss"] < 0.69  # and it trained: better than chance on the visible attribute
    assert load_checkpoint(result["checkpoint"], "classifier").train["args"]["adversarial"] == 0.03
    with pytest.raises(SystemExit, match="--init .*generator checkpoint, expected a classifier"):
        train_classifier.main(["--data", str(data_dir), "--out", str(trained["out"] / "cls_bad"), "--smoke",
                               "--cache-dir", trained["cache"], "--init", trained["gan"]["checkpoint"]])
    with pytest.raises(SystemExit):
        train_classifier.parse_args(["--data", str(data_dir), "--adversarial", "nan"])
    assert "--adversarial must be in [0, 0.5]" in capsys.readouterr().err


def test_encoder_smoke_writes_checkpoint_and_loss_moves(trained, data_dir):
    result = train_encoder.main([
        "--data", str(data_dir), "--out", str(trained["out"] / "enc"), "--smoke", "--cache-dir", trained["cache"],
        "--generator", trained["gan"]["checkpoint"], "--classifier", trained["cls"]["checkpoint"], "--steps", "12"])
    ck = load_checkpoint(result["checkpoint"], "encoder")
    assert ck.model(torch.randn(2, 3, 64, 64)).shape == (2, ck.config["z_dim"])
    losses = _losses(result["history"], "loss")
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert "heldout_psnr_db" in ck.train["heldout"] and "generator_hash" in ck.train
    # --init starts from those weights: its first loss is the trained one, not a fresh encoder's
    again = train_encoder.main([
        "--data", str(data_dir), "--out", str(trained["out"] / "enc_init"), "--smoke", "--cache-dir", trained["cache"],
        "--generator", trained["gan"]["checkpoint"], "--classifier", trained["cls"]["checkpoint"], "--steps", "2",
        "--init", result["checkpoint"]])
    assert _losses(again["history"], "loss")[0] < losses[0]


def test_bench_reports_configured_batch():
    result = bench_gan.main(["--device", "cpu", "--steps", "1", "--batch-size", "8", "--g-width", "8", "--d-width", "8"])
    assert result["batch_size"] == 8 and result["steps"] == 1 and result["img_per_s"] > 0


def test_diffaugment_is_differentiable_and_shared_policy_parses():
    assert parse_policy("none") == () and parse_policy("color,cutout") == ("color", "cutout")
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        parse_policy("rotate")
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, parse_policy("color,translation,cutout"))
    y.sum().backward()
    assert y.shape == x.shape and x.grad.abs().sum() > 0
    torch.manual_seed(0)
    cut = diff_augment(torch.ones(8, 3, 16, 16), ("cutout",))
    zero_frac = (cut == 0).float().mean().item()
    assert 0.1 < zero_frac < 0.4  # a half-side square (a quarter of the area, less at the borders)


def test_positive_share_counts_what_the_classifier_calls_present():
    from training.evaluate import positive_share

    class Brightness(torch.nn.Module):  # attribute 0: a bright image; attribute 1: never
        def forward(self, x):
            return torch.stack([x.mean((1, 2, 3)), torch.full((len(x),), -1.0)], 1)

    images = torch.zeros(30, 3, 4, 4, dtype=torch.uint8)
    images[:12] = 255
    assert positive_share(Brightness(), images, batch=7).tolist() == pytest.approx([0.4, 0.0])
    assert positive_share(Brightness(), torch.ones(5, 3, 4, 4)).tolist() == [1.0, 0.0]  # model-range floats as given


def test_ship_then_evaluate_prints_card_table(trained, data_dir, tmp_path):
    from training import evaluate, ship

    enc = train_encoder.main([
        "--data", str(data_dir), "--out", str(tmp_path / "enc"), "--smoke", "--cache-dir", trained["cache"],
        "--generator", trained["gan"]["checkpoint"], "--classifier", trained["cls"]["checkpoint"], "--steps", "2"])
    models = tmp_path / "models"
    paths = ship.main(["--generator", trained["gan"]["checkpoint"], "--classifier", trained["cls"]["checkpoint"],
                       "--encoder", enc["checkpoint"], "--baseline", trained["gan"]["checkpoint"], "--out", str(models)])
    assert {p.name for p in paths} == {"generator.pt", "classifier.pt", "encoder.pt"}
    shipped = load_checkpoint(models / "generator.pt")
    source = load_checkpoint(trained["gan"]["checkpoint"])
    assert source.extra and shipped.extra == {}  # resume state dropped
    assert shipped.train["steps"] == source.train["steps"]  # the training summary kept
    results = evaluate.evaluate(evaluate.parse_args(["--data", str(data_dir), "--models", str(models),
                                                     "--cache-dir", trained["cache"], "--device", "cpu",
                                                     "--grids", str(tmp_path / "grids")]))
    from PIL import Image

    with Image.open(tmp_path / "grids" / "generated_64.png") as grid:
        assert grid.size == (8 * 66 + 2, 8 * 66 + 2)
    with Image.open(tmp_path / "grids" / "heldout_reconstructions.png") as grid:  # 12 held out: 8 per row
        assert grid.size == (8 * 66 + 2, 2 * 66 + 2)  # one row of real faces over their reconstructions
    # an almost untrained generator is much farther from real faces than real faces are from each other
    assert results["fd_generator"] > results["fd_real_floor"]
    assert results["fd_baseline"] == pytest.approx(results["fd_generator"], rel=1e-3)  # same model, same seed
    shares = results["coverage"]["per_attribute"]
    assert set(shares) == set(load_checkpoint(models / "classifier.pt").attributes)
    assert all(0.0 <= r <= 1.0 and 0.0 <= g <= 1.0 for r, g in shares.values())
    assert 0.0 <= results["classifier"]["mean_accuracy"] <= 1.0
    table = evaluate.markdown(results)
    assert "| Smiling |" in table and "generated share" in table
    for row in ("classifier mean accuracy", "FD_cls generator", "shipped / baseline", "real vs real", "encoder PSNR"):
        assert row in table


def test_encoder_for_a_style_generator_predicts_w(trained, data_dir, tmp_path):
    from core.checkpoint import save_checkpoint
    from core.models import StyleGenerator, StyleGeneratorConfig

    torch.manual_seed(0)
    style = StyleGenerator(StyleGeneratorConfig(z_dim=16, w_dim=24, mapping_layers=2, width=8, max_channels=32)).eval()
    save_checkpoint(tmp_path / "style.pt", "generator", style)
    result = train_encoder.main([
        "--data", str(data_dir), "--out", str(tmp_path / "enc"), "--smoke", "--cache-dir", trained["cache"],
        "--generator", str(tmp_path / "style.pt"), "--classifier", trained["cls"]["checkpoint"], "--steps", "4"])
    ck = load_checkpoint(result["checkpoint"], "encoder")
    assert ck.config["z_dim"] == 24  # w's size, not z's 16: the engine edits a style G in w
    assert ck.model(torch.randn(2, 3, 64, 64)).shape == (2, 24)


def test_reference_dcgan_recipe_has_the_examples_shapes_and_times_real_batches(data_dir):
    from training import bench_reference

    gen, disc = bench_reference.reference_generator(), bench_reference.reference_discriminator()
    fake = gen(torch.randn(3, 100, 1, 1))
    assert fake.shape == (3, 3, 64, 64) and fake.abs().max() <= 1.0
    p = disc(fake)
    assert p.shape == (3, 1, 1, 1) and ((p > 0) & (p < 1)).all()
    result = bench_reference.main(["--data", str(data_dir), "--device", "cpu", "--workers", "0", "--batch-size", "8",
                                   "--steps", "2", "--warmup", "1"])
    assert result["batch_size"] == 8 and result["img_per_s"] > 0
