"""The benchmark stage: metrics, statistics and reports of ventricle segmentations, and generation quality."""

from __future__ import annotations

__all__: list[str] = []
