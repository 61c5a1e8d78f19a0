"""The headless subcommands of main.py write what they say, and fail with one clear line."""
from __future__ import annotations

import io

import pytest
from PIL import Image

import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for cmd in ("generate", "steer", "edit", "invert", "walk", "directions", "bench", "eval-control", "info"):
        assert cmd in text


def test_generate_writes_grid(capsys, tiny_models, tmp_path):
    out = tmp_path / "faces.png"
    code, text, _ = run(capsys, "generate", "--models", str(tiny_models), "--device", "cpu", "--n", "4",
                        "--size", "64", "--out", str(out))
    assert code == 0 and "wrote 4 faces" in text
    with Image.open(out) as img:
        assert img.size == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2)  # 2×2 tiles of --size px with 2-px padding


def test_steer_writes_gif_with_one_frame_per_step(capsys, tiny_models, tmp_path):
    out = tmp_path / "s.gif"
    code, text, _ = run(capsys, "steer", "--models", str(tiny_models), "--device", "cpu", "--seed", "2",
                        "--more", "Smiling", "--steps", "5", "--until", "0", "--lambda", "0",
                        "--size", "64", "--captions", "--out", str(out))
    assert code == 0 and "Smiling" in text and "->" in text
    with Image.open(out) as gif:
        assert gif.n_frames == 6 and gif.size[0] == 64 and gif.size[1] > 64  # a caption strip below


def test_edit_writes_before_after(capsys, tiny_models, tmp_path):
    out = tmp_path / "e.png"
    code, text, _ = run(capsys, "edit", "--models", str(tiny_models), "--device", "cpu", "--set", "Smiling=2",
                        "--lock", "Male", "--size", "64", "--out", str(out))
    assert code == 0 and "Smiling" in text
    with Image.open(out) as img:
        assert img.size == (2 * 64 + 3 * 2, 64 + 2 * 2)


def test_walks_write_gifs(capsys, tiny_models, tmp_path):
    keys = tmp_path / "k.gif"
    code, _, _ = run(capsys, "walk", "--models", str(tiny_models), "--device", "cpu", "--to-seed", "5",
                     "--to-seed", "6", "--frames", "4", "--loop", "--size", "64", "--out", str(keys))
    assert code == 0
    with Image.open(keys) as gif:
        assert gif.n_frames == 3 * 4  # three keyframes, looped
    walk = tmp_path / "w.gif"
    code, _, _ = run(capsys, "walk", "--models", str(tiny_models), "--device", "cpu", "--direction", "Blond_Hair",
                     "--frames", "8", "--size", "64", "--out", str(walk))
    assert code == 0
    with Image.open(walk) as gif:
        assert gif.n_frames == 8


def test_invert_writes_result_crop_and_paste(capsys, tiny_models, tmp_path):
    photo = tmp_path / "p.png"
    Image.new("RGB", (120, 90), (200, 150, 120)).save(photo)
    out, crop, paste = tmp_path / "inv.png", tmp_path / "crop.png", tmp_path / "paste.png"
    code, text, _ = run(capsys, "invert", str(photo), "--models", str(tiny_models), "--device", "cpu",
                        "--steps", "3", "--tune-steps", "4", "--size", "64", "--out", str(out), "--crop-out", str(crop),
                        "--paste-out", str(paste), "--save-z", str(tmp_path / "z.pt"))
    assert code == 0 and "not found (centre crop)" in text and "PSNR" in text and "tuned" in text
    for path in (out, crop):  # the reconstruction and the aligned crop, same framing and size
        with Image.open(path) as img:
            assert img.size == (64, 64)
    with Image.open(paste) as img:
        assert img.size == (120, 90)  # the result pasted back into the photo at its place
    import torch

    saved = torch.load(tmp_path / "z.pt", weights_only=True)
    assert saved["z"].shape == (1, 16)
    assert all(t.dtype == torch.float16 for t in saved["generator_delta"]["tensors"].values())


def test_directions_fit_and_cache(capsys, tiny_models, tmp_path):
    out = tmp_path / "d.pt"
    code, text, _ = run(capsys, "directions", "--models", str(tiny_models), "--device", "cpu", "--samples", "400",
                        "--out", str(out))
    assert code == 0 and out.exists() and "validation accuracy" in text


@pytest.mark.parametrize("argv, message", [
    (["invert", "nope.jpg"], "does not exist"),
    (["steer"], "--more"),
    (["edit", "--set", "Smiling"], "ATTR=NUMBER"),
    (["edit", "--set", "Wings=2"], "unknown attribute"),
    (["walk"], "--to-seed"),
])
def test_errors_are_one_clear_line(capsys, tiny_models, argv, message):
    code, _, err = run(capsys, *argv[:1], "--models", str(tiny_models), "--device", "cpu", *argv[1:])
    assert code == 1 and message in err and "Traceback" not in err


def test_info_and_bad_checkpoint(capsys, tiny_models, tmp_path):
    code, text, _ = run(capsys, "info", str(tiny_models / "classifier.pt"))
    assert code == 0 and '"kind": "classifier"' in text
    bad = tmp_path / "bad.pt"
    bad.write_bytes(io.BytesIO(b"junk").getvalue())
    code, _, err = run(capsys, "info", str(bad))
    assert code == 1 and "not a PyTorch archive" in err


def test_a_direction_walk_reaches_as_far_as_the_window_slider(capsys, tiny_models, tmp_path, monkeypatch):
    """One policy for the CLI and the window: the walk's default reach is a slider's end."""
    import core.jobs
    from core.policy import SLIDER_MAX_ALPHA

    asked: list[float] = []
    real = core.jobs.alpha_range  # the walk is made by core.jobs, for the window and the CLI alike
    monkeypatch.setattr(core.jobs, "alpha_range", lambda a, *rest, **kw: asked.append(a) or real(a, *rest, **kw))
    code, _, _ = run(capsys, "walk", "--models", str(tiny_models), "--device", "cpu", "--direction", "Smiling",
                     "--frames", "4", "--size", "64", "--out", str(tmp_path / "w.gif"))
    assert code == 0 and asked == [SLIDER_MAX_ALPHA]
