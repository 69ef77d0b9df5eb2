"""staticreg: publish container images as a static Docker Registry v2 tree."""

from __future__ import annotations

__version__ = "0.1.0"
