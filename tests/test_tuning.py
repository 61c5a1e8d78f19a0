"""Pivotal tuning: it fits one face better than z alone, stores only an fp16 change, leaves the
shared generator alone, and the engine renders a photo's face with its own bounded-cache G."""
from __future__ import annotations

import pytest
import torch

from core.checkpoint import state_hash
from core.engine import TUNED_CACHE, Engine
from core.align import FaceCrop
from core.inversion import InvertConfig
from core.metrics import psnr
from core.models import Generator, GeneratorConfig, prepare_for_inference
from core.tuning import GeneratorDelta, TuneConfig, make_delta, tune_generator
from core.worker import run_inline


@pytest.fixture(scope="module")
def tiny_g() -> torch.nn.Module:
    torch.manual_seed(0)
    return prepare_for_inference(Generator(GeneratorConfig(z_dim=16, width=8)).eval())


def _target(g: torch.nn.Module) -> torch.Tensor:
    """A face G cannot draw exactly: another code's face, shifted and with a bright patch."""
    with torch.no_grad():
        x = g(torch.randn(1, 16, generator=torch.Generator().manual_seed(5))).roll(3, dims=-1)
    x[..., 20:30, 20:40] = 0.8
    return x


def test_tuning_lowers_reconstruction_error_and_keeps_the_base(tiny_g):
    x, z = _target(tiny_g), torch.randn(1, 16, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in tiny_g.state_dict().items()}
    result = run_inline(tune_generator, tiny_g, None, z, x, TuneConfig(steps=40, lr=3e-3))
    with torch.no_grad():
        untuned = float(psnr(tiny_g(z), x)[0])
    assert result.psnr_before_db == pytest.approx(untuned, abs=1e-4)
    assert result.psnr_db > untuned + 3  # the face's own G draws it much closer
    assert all(torch.equal(before[k], v) for k, v in tiny_g.state_dict().items())  # shared G untouched
    # the stored (fp16) change reproduces the tuned face
    with torch.no_grad():
        again = result.delta.apply(tiny_g)(z)
    assert float(psnr(again, result.image)[0]) > 40


def test_delta_is_fp16_on_the_cpu_and_holds_only_what_changed(tiny_g):
    x, z = _target(tiny_g), torch.randn(1, 16, generator=torch.Generator().manual_seed(1))
    result = run_inline(tune_generator, tiny_g, None, z, x, TuneConfig(steps=5, tune=("to_rgb",)))
    delta = result.delta
    assert delta.tensors and all(name.startswith("to_rgb") for name in delta.tensors)
    assert all(t.dtype == torch.float16 and t.device.type == "cpu" for t in delta.tensors.values())
    params = dict(tiny_g.named_parameters())
    assert delta.nbytes == sum(params[n].numel() * 2 for n in delta.tensors)
    assert delta.nbytes < sum(p.numel() * 4 for p in params.values()) / 10
    # an unchanged generator gives an empty change; a round trip through a dict keeps it
    assert make_delta(tiny_g, tiny_g, "h").tensors == {}
    back = GeneratorDelta.from_dict(delta.to_dict())
    assert back.key == delta.key and all(torch.equal(back.tensors[n], delta.tensors[n]) for n in delta.tensors)


def test_locality_term_keeps_far_codes_closer_to_the_original(tiny_g):
    x, z = _target(tiny_g), torch.randn(1, 16, generator=torch.Generator().manual_seed(1))
    far = torch.randn(64, 16, generator=torch.Generator().manual_seed(9))
    changes = []
    for w in (0.0, 10.0):
        cfg = TuneConfig(steps=30, lr=3e-3, w_locality=w, locality_codes=4, locality_prior=4, locality_radius=4.0)
        delta = run_inline(tune_generator, tiny_g, None, z, x, cfg).delta
        with torch.no_grad():
            changes.append(float((delta.apply(tiny_g)(far) - tiny_g(far)).square().mean()))
    assert changes[1] < changes[0]


def test_engine_inverts_with_its_own_generator_and_bounds_the_cache(tiny_models):
    engine = Engine(tiny_models, device="cpu", start_worker=False)
    target = engine.render(engine.z_from_seed(3))[0].image.roll(4, dims=-1)
    crop = FaceCrop(image=target, box=(0, 0, 64, 64), face=None)
    plain = run_inline(engine.invert_job, crop, InvertConfig(steps=10, tune=TuneConfig(steps=0)))
    assert plain.delta is None
    events: list = []
    tuned = run_inline(engine.invert_job, crop, InvertConfig(steps=10, tune=TuneConfig(steps=20, lr=3e-3)),
                       on_progress=events.append)
    steps = [e for e in events if hasattr(e, "step")]
    # step 0 is the encoder's guess (the first preview), then 10 refining and 20 tuning steps
    assert [e.step for e in steps] == list(range(0, 31)) and all(e.total == 30 for e in steps)
    assert [e.stage for e in steps] == ["encode"] + ["refine"] * 10 + ["tune"] * 20
    assert any(e.message.startswith("tuning") for e in steps)
    assert tuned.delta is not None and tuned.delta.base_hash == engine.generator_hash
    x = target.float().div(127.5).sub(1).unsqueeze(0)
    err = lambda frame: float(psnr(frame.image.float().div(127.5).sub(1).unsqueeze(0), x)[0])  # noqa: E731
    assert err(tuned.frame) > err(plain.frame)  # closer than z refinement alone
    # the face keeps its generator through renders and edits; the shared G is unchanged
    again = engine.render(tuned.result.z, tuned.delta)[0]
    assert torch.equal(again.image, tuned.frame.image)
    assert not torch.equal(engine.render(tuned.result.z)[0].image, tuned.frame.image)
    edited = engine.edit_job(tuned.result.z, {"Smiling": 1.0}, delta=tuned.delta)
    assert edited.image.shape == (3, 64, 64)
    # many photos: deltas stay on the CPU, at most TUNED_CACHE generators are built
    deltas = [GeneratorDelta(base_hash=engine.generator_hash, tensors=dict(tuned.delta.tensors)) for _ in range(5)]
    for d in deltas:
        engine.render(tuned.result.z, d)
    assert len(engine._tuned) == TUNED_CACHE
    with pytest.raises(ValueError, match="another generator"):
        engine.render(tuned.result.z, GeneratorDelta(base_hash="0" * 16, tensors={}))
    assert engine.generator_hash == state_hash(engine.generator)


def test_tune_config_override_replaces_only_the_given_fields_and_still_validates():
    base = TuneConfig()
    changed = base.override(locality_radius=5.0, w_edit=None)
    assert changed.locality_radius == 5.0 and changed.w_edit == base.w_edit and base.locality_radius == 2.5
    with pytest.raises(ValueError, match="lr"):
        base.override(lr=-1.0).validate()


def test_weighted_losses_ignore_what_the_weight_leaves_out():
    from core.losses import maps_distance, pixel_loss

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    ones = torch.ones(8, 8)
    assert pixel_loss(a, b, ones) == pytest.approx(float(pixel_loss(a, b)), rel=1e-5)
    left = torch.zeros(8, 8)
    left[:, :4] = 1
    changed = b.clone()
    changed[..., 4:] += 5  # only where the weight is 0
    assert pixel_loss(a, changed, left) == pytest.approx(float(pixel_loss(a, b, left)), rel=1e-6)
    assert pixel_loss(a, changed) > pixel_loss(a, b)
    maps_a, maps_b, maps_c = ([torch.nn.functional.normalize(m, dim=1)] for m in (a, b, changed))
    assert torch.allclose(maps_distance(maps_a, maps_b, ones), maps_distance(maps_a, maps_b), rtol=1e-5)
    assert torch.allclose(maps_distance(maps_a, maps_c, left), maps_distance(maps_a, maps_b, left), rtol=1e-6)


def test_a_masked_inversion_is_not_pulled_by_the_filled_in_border(tiny_models):
    """With `mask_padding`, the pixels a photo did not have (crop.inside = 0) change nothing."""
    import numpy as np

    engine = Engine(tiny_models, device="cpu", start_worker=False)
    target = engine.render(engine.z_from_seed(3))[0].image.roll(4, dims=-1)
    inside = np.ones((64, 64), np.float32)
    inside[:, 48:] = 0  # a tight crop: its right quarter was filled in
    smeared = target.clone()
    smeared[:, :, 48:] = 255 - smeared[:, :, 48:]
    z0 = engine.z_from_seed(8).reshape(1, -1)
    engine.encoder = lambda x: z0.expand(len(x), -1)  # one start for both (E reads the whole crop)
    tune = TuneConfig(steps=4, lr=3e-3, w_feature=0.0)  # pixels only: a feature's receptive field spans the border
    config = InvertConfig(steps=6, w_encoder=0.0, w_feature=0.0, tune=tune, mask_padding=True)
    runs = [run_inline(engine.invert_job, FaceCrop(image=t, box=(0, 0, 64, 64), face=None, inside=inside), config)
            for t in (target, smeared)]
    assert torch.equal(runs[0].result.z, runs[1].result.z)
    assert torch.allclose(runs[0].frame.image.float(), runs[1].frame.image.float(), atol=1)
    plain = [run_inline(engine.invert_job, FaceCrop(image=t, box=(0, 0, 64, 64), face=None, inside=inside),
                        InvertConfig(steps=6, w_encoder=0.0, w_feature=0.0, tune=tune, mask_padding=False))
             for t in (target, smeared)]
    assert not torch.equal(plain[0].result.z, plain[1].result.z)  # unmasked, the border pulls the result


def test_tuning_in_bf16_fits_the_face_about_as_well_and_keeps_fp32_weights(tiny_g):
    x, z = _target(tiny_g), torch.randn(1, 16, generator=torch.Generator().manual_seed(1))
    fp32 = run_inline(tune_generator, tiny_g, None, z, x, TuneConfig(steps=40, lr=3e-3, precision="fp32"))
    bf16 = run_inline(tune_generator, tiny_g, None, z, x, TuneConfig(steps=40, lr=3e-3, precision="bf16"))
    assert bf16.psnr_db > bf16.psnr_before_db + 3 and abs(bf16.psnr_db - fp32.psnr_db) < 1.5
    assert all(t.dtype == torch.float16 for t in bf16.delta.tensors.values())  # stored as before
    assert not any(torch.equal(bf16.delta.tensors[k], fp32.delta.tensors[k]) for k in fp32.delta.tensors)
    with pytest.raises(ValueError, match="tuning precision"):
        TuneConfig(precision="fp8").validate()
