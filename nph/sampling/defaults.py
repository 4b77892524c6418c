"""The one source of the sampling defaults that ``nph generate`` and ``nph sample-masks`` share.

``configs/sampling/<name>.yaml`` holds the same settings for the commands (a test keeps the two equal);
the choice of :data:`DEFAULT` and its measured cost and fidelity are in docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DDIM_50", "DEFAULT", "PRESETS", "SamplingSettings"]


@dataclass(frozen=True)
class SamplingSettings:
    """Sampler, model calls per sample, mask-model guidance scale and guidance interval (noise levels, or None)."""

    sampler: str
    steps: int
    guidance: float
    guidance_interval: tuple[float, float] | None = None


#: The default before issue 15: DDIM 50 steps, guidance 3 on every step (``sampling=ddim50``).
DDIM_50 = SamplingSettings("ddim", 50, 3.0, None)
#: Chosen by the sampling sweep (docs/performance.md, "Choosing the sampler"): DPM-Solver++(2M) 10 steps,
#: guidance 3 at noise levels ≤ 0.8 — 65.9 TFLOP per thesis-size pair against DDIM 50's 309.8, with the same
#: conditioning fidelity and defect share on the toy models (8 seeds).
DEFAULT = SamplingSettings("dpmpp_2m", 10, 3.0, (0.0, 0.8))
#: ``configs/sampling/<name>.yaml`` → settings.
PRESETS: dict[str, SamplingSettings] = {"default": DEFAULT, "ddim50": DDIM_50}
