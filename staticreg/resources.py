"""Find the shipped templates/ and site/ folders, installed or in a source checkout."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def folder(name: str) -> Path:
    """The path of 'templates' or 'site'."""
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files(f"staticreg._{name}")))
