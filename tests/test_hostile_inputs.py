"""The hostile-input sweep of issue 15, kept as tests: nothing lost, nothing hangs.

Every input is built here (FIFOs, 1-pixel images, crafted checkpoints, write failures through
RLIMIT_FSIZE); each case asserts a one-line message, a non-zero exit, old files intact, no temp
files left behind and, where memory is the risk, a bounded peak (measured in a subprocess).
"""
from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

import main
from core.data import ImageLoadError, open_image, preprocess
from core.export import save_png, save_png_grid, save_tensor_atomic

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("\r", "note:"))]
    return "Traceback" not in err and len([l for l in lines if l.startswith("error:")]) == 1


def python(code: str, *, fsize: int | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter at the repo root (optionally with `ulimit -f`)."""
    def limits() -> None:
        if fsize is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          preexec_fn=limits, timeout=timeout)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name)


def photo(path: Path, size: tuple[int, int] = (120, 90)) -> Path:
    Image.new("RGB", size, (200, 150, 120)).save(path)
    return path


# --- 1. --save-z goes through the atomic writer ------------------------------------------------


def test_save_z_failed_write_keeps_previous_file(capsys, tiny_models, tmp_path, monkeypatch):
    z_path = tmp_path / "z.pt"
    z_path.write_bytes(b"previous z")

    def disk_full(obj, f, *args, **kwargs):
        (f if hasattr(f, "write") else open(f, "wb")).write(b"PK half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    code, _, err = run(capsys, "invert", str(photo(tmp_path / "p.png")), "--models", str(tiny_models),
                       "--device", "cpu", "--steps", "1", "--size", "64", "--out", str(tmp_path / "inv.png"),
                       "--save-z", str(z_path))
    assert code == 1 and one_line_error(err)
    assert f"cannot write {z_path}: No space left on device" in err
    assert z_path.read_bytes() == b"previous z"
    assert leftovers(tmp_path) == []


def test_tensor_write_past_file_size_limit_keeps_old_file(tmp_path):
    target = tmp_path / "z.pt"
    target.write_bytes(b"old")
    result = python(
        "import torch; from core.export import save_tensor_atomic\n"
        f"save_tensor_atomic({{'z': torch.zeros(10000)}}, {str(target)!r})", fsize=4096)
    assert result.returncode != 0
    assert "cannot write" in result.stderr and str(target) in result.stderr and "iostream" not in result.stderr
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []
    save_tensor_atomic({"z": torch.ones(3)}, target)  # and without the limit it is written
    assert torch.load(target, weights_only=True)["z"].tolist() == [1.0, 1.0, 1.0]


# --- 3. a FIFO (or any non-file) is refused, never read -----------------------------------------


def _without_hanging(fn, *args):
    """Call fn(*args) in a thread; a call still blocked after a minute is a hang (the bug)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), f"{fn.__name__} blocked on {args}"
    return box


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_photo_is_refused_without_blocking(capsys, tiny_models, tmp_path):
    fifo = tmp_path / "f.jpg"
    os.mkfifo(fifo)
    box = _without_hanging(open_image, fifo)
    assert isinstance(box.get("error"), ImageLoadError) and "not a regular file" in str(box["error"])
    code, _, err = run(capsys, "invert", str(fifo), "--models", str(tiny_models), "--device", "cpu",
                       "--out", str(tmp_path / "inv.png"))
    assert code == 1 and one_line_error(err) and "not a regular file" in err
    assert not (tmp_path / "inv.png").exists()


def test_symlink_loop_and_oversized_file_are_named_as_such(tmp_path, monkeypatch):
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    with pytest.raises(ImageLoadError, match="symbolic link loop"):
        open_image(loop)
    big = photo(tmp_path / "big.png")
    monkeypatch.setattr("core.data.MAX_FILE_BYTES", 100)
    with pytest.raises(ImageLoadError, match="MB, more than"):
        open_image(big)


# --- 5. 1-pixel-wide or -tall pictures ----------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 4), (4, 1), (1, 1000), (1000, 1), (1, 1), (3, 5000)])
def test_thin_images_are_refused_in_one_sentence(size):
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buf, format="PNG")
    with pytest.raises(ImageLoadError, match="too thin to hold a face"):
        open_image(buf.getvalue())


def test_thin_photo_to_invert_is_one_line_error(capsys, tiny_models, tmp_path):
    code, _, err = run(capsys, "invert", str(photo(tmp_path / "thin.png", (1, 1000))), "--models",
                       str(tiny_models), "--device", "cpu", "--out", str(tmp_path / "inv.png"))
    assert code == 1 and one_line_error(err) and "too thin" in err


def test_preprocess_handles_extreme_aspect_and_refuses_empty():
    for size in [(8, 5000), (5000, 8), (2, 3), (1, 1)]:
        assert preprocess(Image.new("RGB", size, (10, 20, 30))).shape == (3, 64, 64)
    with pytest.raises(ValueError, match="no pixels"):
        preprocess(Image.new("RGB", (0, 10)))


# --- 10. long output names ----------------------------------------------------------------------


def test_output_names_up_to_255_bytes_are_written(tmp_path):
    img = Image.new("RGB", (16, 16), (1, 2, 3))
    for name in ["a" * 251 + ".png", "é" * 125 + ".png"]:  # 255 and 254 bytes
        assert len(name.encode()) <= 255
        save_png(img, tmp_path / name)
        with Image.open(tmp_path / name) as back:
            assert back.size == (16, 16)
    save_tensor_atomic({"z": torch.zeros(2)}, tmp_path / ("z" * 252 + ".pt"))
    assert leftovers(tmp_path) == []


# --- 8 (export part). a folder or an impossible place as --out ----------------------------------


def test_out_that_cannot_be_written_names_the_target_not_the_temp_file(tmp_path):
    img = Image.new("RGB", (16, 16))
    folder = tmp_path / "existing"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder") as exc:
        save_png(img, folder)
    assert ".tmp" not in str(exc.value)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OSError) as exc:
        save_png_grid([img], tmp_path / "file" / "out.png")
    assert f"cannot write {tmp_path / 'file' / 'out.png'}" in str(exc.value) and ".tmp" not in str(exc.value)
    with pytest.raises(ValueError, match="not a file name"):
        save_png(img, "")
    assert leftovers(tmp_path) == []


# --- 2. a training run never silently replaces an earlier one ----------------------------------


def _gan(data: Path, out: Path, *extra: str) -> dict:
    from training import train_gan

    return train_gan.main(["--data", str(data), "--out", str(out), "--smoke", "--steps", "2",
                           "--sample-every", "1000", *extra])


def test_training_refuses_to_reuse_a_run_folder_without_resume_or_overwrite(celeba_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "generator.pt").write_bytes(b"earlier weights")
    with pytest.raises(SystemExit, match="already holds a run .*--resume.*--overwrite"):
        _gan(celeba_dir, out)
    with pytest.raises(SystemExit, match="already holds a run"):
        main.main(["train-encoder", "--data", str(celeba_dir), "--out", str(out), "--generator", "g.pt",
                   "--classifier", "c.pt"])
    assert (out / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert (out / "generator.pt").read_bytes() == b"earlier weights"
    result = _gan(celeba_dir, out, "--overwrite")  # asked for: replaced
    assert result["steps"] == 2 and '"step": 1,' in (out / "metrics.jsonl").read_text()
    assert _gan(celeba_dir, tmp_path / "fresh")["steps"] == 2  # a new folder needs neither flag


def test_resume_from_an_unfit_checkpoint_is_one_sentence(celeba_dir, tmp_path):
    from core.checkpoint import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    _gan(celeba_dir, out)
    with pytest.raises(SystemExit, match="does not fit this run's options"):
        _gan(celeba_dir, out, "--resume", "--preset", "plain")  # another architecture
    shipped = load_checkpoint(out / "generator.pt", "generator")
    save_checkpoint(out / "generator.pt", "generator", shipped.model)  # no resume state, like a shipped G
    with pytest.raises(SystemExit, match="holds no resume state"):
        _gan(celeba_dir, out, "--resume")


def test_training_commands_report_bad_data_and_checkpoints_in_one_line(celeba_dir, tmp_path, capsys):
    code, _, err = run(capsys, "train-gan", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a"),
                       "--smoke")
    assert code == 1 and one_line_error(err) and "img_align_celeba" in err
    code, _, err = run(capsys, "train-encoder", "--data", str(celeba_dir), "--out", str(tmp_path / "b"), "--smoke",
                       "--generator", str(tmp_path), "--classifier", str(tmp_path))
    assert code == 1 and one_line_error(err) and str(tmp_path) in err
