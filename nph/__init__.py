"""nph: guided synthesis of labelled brain MRI with enlarged ventricles, and its benchmark."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
