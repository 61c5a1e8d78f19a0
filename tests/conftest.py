"""Shared fixtures: a small CelebA folder written by the tests themselves, so no test needs ../shared."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ATTRS = ["Smiling", "Male", "Eyeglasses", "Young"]


def write_celeba(root: Path, n: int = 60, size: tuple[int, int] = (89, 109), crlf: bool = False,
                 attrs: list[str] = ATTRS, seed: int = 0) -> Path:
    """A CelebA-layout folder whose attribute 0 is visible in the picture (a bright top half).

    Images are smooth colour fields with an ellipse 'face'; attribute 0 brightens the upper half,
    so a classifier can really learn it and a generator has structure to copy.
    """
    rng = np.random.default_rng(seed)
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    face = ((xx - w / 2) / (w * 0.3)) ** 2 + ((yy - h / 2) / (h * 0.35)) ** 2 < 1
    for i in range(1, n + 1):
        labels = rng.integers(0, 2, len(attrs))
        base = rng.uniform(40, 120, 3)
        arr = np.broadcast_to(base, (h, w, 3)).copy()
        arr[face] = rng.uniform(150, 220, 3)
        if labels[0]:
            arr[: h // 2] += 60
        arr += rng.normal(0, 6, arr.shape)
        name = f"{i:06d}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(img_dir / name, quality=90)
        rows.append(name + " " + " ".join("1" if v else "-1" for v in labels))
    nl = "\r\n" if crlf else "\n"
    (root / "list_attr_celeba.txt").write_text(nl.join([str(n), " ".join(attrs)] + rows) + nl, newline="")
    (root / "list_eval_partition.txt").write_text(nl.join(f"{i:06d}.jpg 0" for i in range(1, n + 1)) + nl, newline="")
    return root


@pytest.fixture
def celeba_dir(tmp_path: Path) -> Path:
    return write_celeba(tmp_path / "celeba")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own decoded-dataset cache and autosave folder; nothing is written to the user's home.
    A test that undid them (`monkeypatch.undo()` undoes the whole fixture) fails here, not silently."""
    isolated = {"LATENT_STEER_CACHE": str(tmp_path / "cache"), "LATENT_STEER_DATA": str(tmp_path / "data")}
    for name, value in isolated.items():
        monkeypatch.setenv(name, value)
    yield
    undone = [name for name, value in isolated.items() if os.environ.get(name) != value]
    assert not undone, f"the test undid {undone}: it may have written to the user's home (use monkeypatch.context())"


SETTLE_MS = 60_000  # a generous bound for a busy 2-core machine: a test waits on events, never on a clock


def settle(window, qtbot, timeout: int = SETTLE_MS) -> None:
    """Wait until the window has no job running or waiting and shows its current face."""
    qtbot.waitUntil(window.is_ready, timeout=timeout)


def activate(window, qtbot) -> None:
    """Make the window the active one, so keys typed go to its focused widget."""
    from PySide6.QtWidgets import QApplication

    window.activateWindow()
    window.raise_()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=SETTLE_MS)


def shared_data(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"{path} is absent (real data lives in ../shared/data, not in the repo)")
    return path


CELEBA_40 = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def with_trained_batchnorm(gen, z_dim: int):
    """`gen` (a generator) with BatchNorm scales, shifts and running statistics unlike the init's ones
    and zeros, as after training; seeded. Left in train mode."""
    import torch

    torch.manual_seed(0)
    for m in gen.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
    gen.train()
    with torch.no_grad():
        for _ in range(3):
            gen(torch.randn(16, z_dim))
    return gen


def write_tiny_models(folder: Path, z_dim: int = 16, seed: int = 0) -> Path:
    """A complete, fast models folder (untrained tiny G, C, E, evaluator + fitted directions) for tests."""
    import torch

    from core.checkpoint import save_checkpoint
    from core.directions import FitConfig, fit_directions, save_directions
    from core.models import (Classifier, ClassifierConfig, Encoder, EncoderConfig, Evaluator, EvaluatorConfig,
                             Generator, GeneratorConfig)
    from core.worker import run_inline

    torch.manual_seed(seed)
    gen = Generator(GeneratorConfig(z_dim=z_dim, width=8)).eval()
    cls = Classifier(ClassifierConfig(num_attributes=40, width=8)).eval()
    with torch.no_grad():  # an untrained readout barely varies with z: scale and centre each logit so
        # every attribute is present on about half of the generated faces and moves visibly with z
        logits = cls(gen(torch.randn(512, z_dim)))
        cls.head.weight.mul_((2.0 / logits.std(0).clamp_min(1e-12)).unsqueeze(1))
        cls.head.bias.zero_()
        cls.head.bias.sub_(cls(gen(torch.randn(512, z_dim))).median(0).values)
    enc = Encoder(EncoderConfig(z_dim=z_dim, width=8)).eval()
    evaluator = Evaluator(EvaluatorConfig(num_attributes=40, width=4)).eval()
    with torch.no_grad():  # the same spread for the yardstick, so some faces start on each side
        logits = evaluator(gen(torch.randn(512, z_dim)))
        evaluator.head.weight.mul_((2.0 / logits.std(0).clamp_min(1e-12)).unsqueeze(1))
        evaluator.head.bias.sub_(evaluator(gen(torch.randn(512, z_dim))).median(0).values)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "generator.pt", "generator", gen)
    save_checkpoint(folder / "classifier.pt", "classifier", cls, attributes=CELEBA_40)
    save_checkpoint(folder / "encoder.pt", "encoder", enc)
    save_checkpoint(folder / "evaluator.pt", "evaluator", evaluator, attributes=CELEBA_40)
    directions = run_inline(fit_directions, gen.requires_grad_(False), cls.requires_grad_(False), CELEBA_40,
                            FitConfig(samples=600, batch_size=200))
    save_directions(directions, folder / "directions.pt")
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    return write_tiny_models(tmp_path_factory.mktemp("models") / "tiny")


def models_with_generator(tiny_models: Path, folder: Path, generator) -> Path:
    """A copy of the tiny models folder with another generator in it (its DCGAN directions removed)."""
    import shutil

    from core.checkpoint import save_checkpoint

    shutil.copytree(tiny_models, folder)
    (folder / "directions.pt").unlink()
    save_checkpoint(folder / "generator.pt", "generator", generator)
    return folder


@pytest.fixture
def make_window(qtbot, tiny_models, tmp_path):
    """Build a MainWindow on the tiny models (fast jobs, QSettings in tmp_path), shown and ready.

    `make_window(models=..., settings_file=..., wait=False)`; the window (and so its engine's
    worker) is closed by pytest-qt at teardown. Nothing touches the user's settings or cache.
    """
    from PySide6.QtCore import QSettings

    from core.directions import FitConfig
    from core.engine import Engine
    from core.inversion import InvertConfig
    from core.steering import SteerConfig
    from ui.main_window import MainWindow

    def make(models: Path | None = None, settings_file: Path | None = None, wait: bool = True):
        engine = Engine(models or tiny_models, device="cpu", directions_cache=tmp_path / "directions")
        settings = QSettings(str(settings_file or tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(engine, settings=settings)
        window.steer_config = SteerConfig(steps=6, until=None)
        window.invert_config = InvertConfig(steps=3)
        window.fit_config = FitConfig(samples=400, batch_size=200)
        qtbot.addWidget(window)
        window.show()
        if wait:
            qtbot.waitUntil(window.is_ready, timeout=20_000)
        return window

    return make
