"""The package version, in one place (the root and the CLI read it)."""

from __future__ import annotations

__version__ = "0.1.0"
