"""Structure that the code relies on: core never imports Qt, core.models and core.checkpoint do not
import each other in a circle, and `python main.py` says what is wrong when the window cannot start."""
from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import core
import main

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=300).stdout.strip()


def test_core_never_imports_qt():
    modules = [m.name for m in pkgutil.iter_modules(core.__path__)]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module('core.' + name)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'PyQt', 'shiboken'))))")
    assert _run(code) == "[]"


def test_models_and_checkpoint_are_not_an_import_circle():
    code = ("import sys, torch\n"
            "import core.models as m\n"
            "fast = m.prepare_for_inference(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)))\n"
            "print('core.checkpoint' in sys.modules, len(fast.source_hash))")
    assert _run(code) == "False 16"  # models works without checkpoint; the hash is stamped
    from core import checkpoint, model_hash

    assert checkpoint.state_hash is model_hash.state_hash  # the one hash, still importable from checkpoint


def test_gui_without_qt_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ui.app", None)  # as if PySide6 could not be imported
    assert main.cmd_gui() == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "pip install" in err and "not built" not in err
