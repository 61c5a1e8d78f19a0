"""`pip install .` gives a `latent-steer` command that opens the window, with the models found from
the installed package; `latent-steer install-desktop` adds it to a Linux desktop's menu."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import main
import resources
from core.engine import MODELS_DIR

ROOT = Path(__file__).resolve().parents[1]


def test_the_latent_steer_command_is_mains_entry():
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "latent-steer"]
    assert ep.value == "main:entry" and ep.load() is main.entry


def test_shipped_files_come_from_the_resources_package():
    assert MODELS_DIR == resources.MODELS_DIR and (MODELS_DIR / "generator.pt").is_file()
    assert resources.ICON.is_file() and resources.DESKTOP_ENTRY.is_file()
    text = (ROOT / "pyproject.toml").read_text()
    for pattern in ("models/*.pt", "icons/*.png", "*.desktop"):  # what a wheel carries
        assert pattern in text
        assert list(resources.ROOT.glob(pattern)), pattern


def test_the_command_runs_the_cli_like_main_py(tmp_path, tiny_models):
    out = tmp_path / "g.png"
    script = Path(sys.executable).with_name("latent-steer")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "import main; main.entry()"]
    done = subprocess.run([*cmd, "generate", "--models", str(tiny_models), "--device", "cpu", "--n", "1",
                           "--size", "64", "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.is_file() and "wrote 1 faces" in done.stdout


def test_install_desktop_writes_the_launcher_and_icon(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main.main(["install-desktop"]) == 0
    entry = (tmp_path / "applications" / "latent-steer.desktop").read_text()
    assert "Name=Latent Steer" in entry and "Icon=latent-steer" in entry and "Exec=" in entry
    assert (tmp_path / "icons" / "hicolor" / "256x256" / "apps" / "latent-steer.png").read_bytes() == \
        resources.ICON.read_bytes()
