"""The shipped files, found beside this package whether it runs from a checkout or is installed:
the trained models, the app icon and the Linux launcher entry."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
MODELS_DIR = ROOT / "models"
ICON = ROOT / "icons" / "latent-steer.png"
DESKTOP_ENTRY = ROOT / "latent-steer.desktop"
