"""The hostile-input sweep of issue 15, kept as tests: nothing lost, nothing hangs.

Every input is built here (FIFOs, 1-pixel images, crafted checkpoints, write failures through
RLIMIT_FSIZE); each case asserts a one-line message, a non-zero exit, old files intact, no temp
files left behind and, where memory is the risk, a bounded peak (measured in a subprocess).
"""
from __future__ import annotations

import errno
import io
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

import main
from core.data import ImageLoadError, open_image, preprocess
from core.atomic import save_tensor_atomic
from core.export import save_png, save_png_grid

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
        "import torch; from core.atomic import save_tensor_atomic\n"
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


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_photo_leaves_the_window_worker_free(tiny_models, tmp_path):
    from core.engine import Engine

    fifo = tmp_path / "f.jpg"
    os.mkfifo(fifo)
    engine = Engine(tiny_models, device="cpu", directions_cache=tmp_path / "dirs")
    try:
        with pytest.raises(ImageLoadError, match="not a regular file"):
            engine.submit(engine.invert_job, str(fifo)).result(60)
        assert engine.submit(engine.random_job, 1).result(60) is not None  # the worker is free
    finally:
        assert engine.close()  # and stops when the window closes


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
    from core.checkpoint import save_checkpoint
    from core.models import Classifier, ClassifierConfig, Generator, GeneratorConfig

    g = save_checkpoint(tmp_path / "g.pt", "generator", Generator(GeneratorConfig(z_dim=8, width=4)))
    c = save_checkpoint(tmp_path / "c.pt", "classifier", Classifier(ClassifierConfig(num_attributes=40, width=4)),
                        attributes=[f"a{i}" for i in range(40)])
    with pytest.raises(SystemExit, match="already holds a run"):
        main.main(["train-encoder", "--data", str(celeba_dir), "--out", str(out), "--generator", str(g),
                   "--classifier", str(c)])
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


# --- 6 (checkpoints). deflated archives, giant configs, bytes bounded by kind ------------------


def _tiny_generator_checkpoint(path: Path) -> Path:
    from core.checkpoint import save_checkpoint
    from core.models import Generator, GeneratorConfig

    return save_checkpoint(path, "generator", Generator(GeneratorConfig(z_dim=8, width=4)))


def test_deflated_checkpoint_is_refused_before_it_inflates(tmp_path):
    import zipfile

    from core.checkpoint import CheckpointError, load_checkpoint

    plain = _tiny_generator_checkpoint(tmp_path / "g.pt")
    packed = tmp_path / "deflated.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(CheckpointError, match="compressed entries"):
        load_checkpoint(packed)


def test_config_asking_for_the_largest_model_is_refused_without_building_it(tmp_path):
    from core.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint

    path = tmp_path / "huge.pt"
    torch.save({"format_version": FORMAT_VERSION, "kind": "encoder", "state_dict": {},
                "config": {"z_dim": 1024, "width": 256, "image_size": 256}}, path)
    assert path.stat().st_size < 4096
    result = python(
        "import resource, sys\n"
        "from core.checkpoint import CheckpointError, load_checkpoint\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"try:\n    load_checkpoint({str(path)!r})\nexcept CheckpointError as exc:\n    print(exc)\n"
        "print('grew_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    assert result.returncode == 0, result.stderr
    assert "weights do not match" in result.stdout
    grew_kb = int(result.stdout.split("grew_kb")[1])
    assert grew_kb < 200_000  # building the model took 1.4 GB of weights (+ init work)
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_checkpoint(path)


def test_checkpoint_tensor_bytes_are_bounded_by_its_kind(tmp_path):
    from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from core.models import Generator, GeneratorConfig

    gen = Generator(GeneratorConfig(z_dim=8, width=4))
    save_checkpoint(tmp_path / "fat.pt", "generator", gen, extra={"ballast": torch.zeros(50_000_000, dtype=torch.uint8)})
    with pytest.raises(CheckpointError, match="more than a generator of this config needs"):
        load_checkpoint(tmp_path / "fat.pt")


# --- 7. silent garbage: NaN weights, absurd strengths, contradictions ---------------------------


def test_generator_with_nan_or_inf_weights_is_refused_at_load(capsys, tiny_models, tmp_path):
    import shutil

    from core.checkpoint import load_checkpoint, save_checkpoint

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    gen = load_checkpoint(models / "generator.pt", "generator").model
    for bad in (float("nan"), float("inf")):
        with torch.no_grad():
            next(gen.parameters()).view(-1)[0] = bad
        save_checkpoint(models / "generator.pt", "generator", gen)
        out = tmp_path / "faces.png"
        code, _, err = run(capsys, "generate", "--models", str(models), "--device", "cpu", "--n", "1",
                           "--size", "64", "--out", str(out))
        assert code == 1 and one_line_error(err) and "NaN or infinite" in err and not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["edit", "--set", "Smiling=1e6"], "must be within"),
    (["edit", "--set", "Smiling=nan"], "must be within"),
    (["walk", "--direction", "Smiling", "--max-alpha", "1e9"], "must be within"),
    (["steer", "--more", "Smiling", "--less", "Smiling"], "both name Smiling"),
])
def test_contradictory_or_unbounded_edits_are_refused(capsys, tiny_models, tmp_path, argv, message):
    out = tmp_path / ("x.gif" if argv[0] != "edit" else "x.png")
    code, _, err = run(capsys, argv[0], "--models", str(tiny_models), "--device", "cpu", *argv[1:],
                       "--out", str(out))
    assert code == 1 and one_line_error(err) and message in err and not out.exists()


# --- 8 (CLI). bad numbers, names and files are one line --------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["generate", "--seed", str(2**64)], "--seed: must be from 0"),
    (["generate", "--seed", "-1"], "--seed: must be from 0"),
    (["generate", "--n", "0"], "--n: must be from 1"),
    (["generate", "--n", "-3"], "--n: must be from 1"),
    (["directions", "--samples", "0"], "--samples: must be from 100"),
    (["walk", "--to-seed", "3", "--frames", "0"], "--frames: must be from 2"),
])
def test_out_of_range_numbers_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("out, message", [("", "give a file name ending in .png"),
                                           ("faces.txt", "give a file name ending in .png")])
def test_generate_out_must_name_a_png(capsys, tiny_models, tmp_path, out, message):
    code, _, err = run(capsys, "generate", "--models", str(tiny_models), "--device", "cpu", "--n", "1",
                       "--out", str(tmp_path / out) if out else out)
    assert code == 1 and one_line_error(err) and message in err
    assert list(tmp_path.iterdir()) == []


def test_out_folder_is_named_not_its_temp_file(capsys, tiny_models, tmp_path):
    folder = tmp_path / "already.png"
    folder.mkdir()
    code, _, err = run(capsys, "generate", "--models", str(tiny_models), "--device", "cpu", "--n", "1",
                       "--out", str(folder))
    assert code == 1 and one_line_error(err) and f"{folder}: it is a folder" in err and ".tmp" not in err


def test_info_on_checkpoint_with_odd_train_field(capsys, tmp_path):
    from core.checkpoint import FORMAT_VERSION

    path = tmp_path / "odd.pt"
    torch.save({"format_version": FORMAT_VERSION, "kind": "directions", "state_dict": {}, "train": [1, 2]}, path)
    code, text, err = run(capsys, "info", str(path))
    assert code == 0 and '"train": [' in text and err == ""


# --- 9. limits on how much one command makes -----------------------------------------------------


def test_huge_counts_are_refused_up_front(capsys, tiny_models, tmp_path):
    with pytest.raises(SystemExit):
        main.main(["generate", "--n", "100000"])
    assert "--n: must be from 1 to 1,024" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main.main(["walk", "--to-seed", "2", "--frames", "100000"])
    assert "--frames: must be from 2 to 2,000" in capsys.readouterr().err
    seeds = [arg for s in range(2, 6) for arg in ("--to-seed", str(s))]  # 4 segments × 600 frames
    code, _, err = run(capsys, "walk", "--models", str(tiny_models), "--device", "cpu", *seeds, "--frames", "600",
                       "--out", str(tmp_path / "w.gif"))
    assert code == 1 and one_line_error(err) and "at most 2,000" in err


# --- 11. --size is pixels per face ------------------------------------------------------------------


def test_generate_size_is_pixels_per_face(capsys, tiny_models, tmp_path):
    out = tmp_path / "one.png"
    code, _, _ = run(capsys, "generate", "--models", str(tiny_models), "--device", "cpu", "--n", "1",
                     "--size", "96", "--out", str(out))
    assert code == 0
    with Image.open(out) as img:
        assert img.size == (96 + 2 * 2, 96 + 2 * 2)  # one 96-px tile in a 2-px frame


# --- 4. the dataset cache never leaves temp files behind ---------------------------------------


def test_failed_cache_write_leaves_nothing_and_says_where_and_how_much(tmp_path):
    from conftest import write_celeba

    data = write_celeba(tmp_path / "celeba", n=20)
    cache = tmp_path / "cache"
    code = ("import warnings; from core.data import load_celeba\n"
            f"ds = load_celeba({str(data)!r}, cache_dir={str(cache)!r}, workers=1)\n"
            "print('images', tuple(ds.images.shape))")
    for _ in range(2):  # a retry must not add another temp file either
        result = python(code, fsize=64 * 1024)  # 20 decoded images are 240 KB
        assert result.returncode == 0, result.stderr
        assert "images (20, 3, 64, 64)" in result.stdout
        assert f"could not cache the decoded dataset in {cache}" in result.stderr and "MB free" in result.stderr
        assert list(cache.iterdir()) == []
    assert "images (20, 3, 64, 64)" in python(code).stdout  # with room, the cache is written
    assert [p.name for p in cache.iterdir()][0].startswith("celeba-64px-")


# --- 6 (images). huge photos open downscaled while decoding; deep images in bounded memory -------


def giant_grey_jpeg(width: int, height: int) -> bytes:
    """A valid baseline JPEG of uniform grey at any size, a few MB: every 8×8 block is 'DC diff 0,
    end of block' (6 bits with the standard tables), so 4 blocks are the same 3 bytes."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="JPEG", quality=75)
    data = buf.getvalue()
    sof, sos = data.index(b"\xff\xc0"), data.index(b"\xff\xda")
    scan = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    assert data[scan:data.rindex(b"\xff\xd9")] == b"\x2b"  # one block: 001010 + padding 11
    header = bytearray(data[:scan])
    header[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    blocks = (width // 8) * (height // 8)
    assert width % 8 == 0 and height % 8 == 0 and blocks % 4 == 0
    return bytes(header) + bytes.fromhex("28a28a") * (blocks // 4) + b"\xff\xd9"


def grey16_png(width: int, height: int, value: int = 0x1234) -> bytes:
    """A 16-bit greyscale PNG, streamed row by row (never the whole image in memory)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    comp = zlib.compressobj(6)
    row = b"\x00" + value.to_bytes(2, "big") * width
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _open_in_subprocess(path: Path) -> tuple[str, float]:
    """open_image(path) in a fresh interpreter: (what it printed, how many MB its peak grew)."""
    result = python(
        "import resource\n"
        "from core.data import open_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"img = open_image({str(path)!r})\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(img.mode, img.size, img.getpixel((5, 5)), 'grew_kb', grew)")
    assert result.returncode == 0, result.stderr
    text, grew_kb = result.stdout.split("grew_kb")
    return text.strip(), int(grew_kb) / 1024


def test_200_megapixel_jpeg_opens_downscaled_in_bounded_memory(tmp_path):
    path = tmp_path / "phone.jpg"
    path.write_bytes(giant_grey_jpeg(16000, 12504))  # 200 MP: 600 MB as RGB at full size
    text, grew_mb = _open_in_subprocess(path)
    assert text == "RGB (2048, 1601) (128, 128, 128)"
    assert grew_mb < 300  # decoded at 1/4 scale (draft), not at full size


def test_16_bit_png_is_downscaled_in_its_own_depth(tmp_path):
    path = tmp_path / "deep.png"
    path.write_bytes(grey16_png(8000, 5000))  # 40 MP, ~90 KB; float64 conversion peaked at 1 GB
    assert path.stat().st_size < 200_000
    text, grew_mb = _open_in_subprocess(path)
    assert text == "RGB (2048, 1280) (255, 255, 255)"
    assert grew_mb < 300


def test_bombs_are_still_refused(tmp_path):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(giant_grey_jpeg(24000, 24000))  # 576 MP: beyond what even drafting allows
    with pytest.raises(ImageLoadError, match="too large"):
        open_image(path)


# --- 8 (engine). any bad directions file falls back to refitting -------------------------------


@pytest.mark.parametrize("field, value", [
    ("attributes", 42), ("attributes", [1, 2]), ("image_size", "big"), ("extra", "not a dict"),
    ("extra.vectors", "not a tensor"), ("extra.vectors", torch.full((40, 16), float("nan"))),
    ("extra.offsets", torch.zeros(3)), ("train", [1]),
])
def test_bad_directions_file_falls_back_to_refitting(tiny_models, tmp_path, field, value):
    import shutil

    from core.engine import Engine

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    blob = torch.load(models / "directions.pt", weights_only=True)
    if field.startswith("extra."):
        blob["extra"][field.split(".")[1]] = value
    else:
        blob[field] = value
    torch.save(blob, models / "directions.pt")
    engine = Engine(models, device="cpu", directions_cache=tmp_path / "dirs", start_worker=False)
    bad_train_only = field == "train"  # an odd train block is ignored, the directions still load
    assert (engine.directions is not None) == bad_train_only
