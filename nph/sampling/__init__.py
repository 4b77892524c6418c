"""Sampling from trained diffusion models: the shared denoising loop and the mask generator."""

from __future__ import annotations

__all__: list[str] = []
