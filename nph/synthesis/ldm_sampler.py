"""nph's pair sampler: the mask LDM makes a label map with the requested ventricle size, the image LDM paints it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nph.data.labels import contiguous_to_ids, ids_to_contiguous
from nph.data.orientation import RAS, axis_codes, reorient_axes
from nph.errors import InputError
from nph.sampling.defaults import DEFAULT
from nph.sampling.diffusion import Interval, check_guidance_interval, interval_text
from nph.sampling.masks import load_mask_model, sample_mask_batch
from nph.sampling.pairing import load_image_model, paint_images
from nph.seeds import image_seed
from nph.synthesis.generate import SampleRequest, SyntheticPair

__all__ = ["LdmPairSampler"]

log = logging.getLogger(__name__)


class LdmPairSampler:
    """Mask LDM → image LDM on the grid both were trained on; ``provenance`` carries the four bundle digests.

    Pairs come out in the mask model's array layout and affine; the image model paints in its own layout.
    """

    def __init__(
        self,
        models: str | Path,
        *,
        seed: int,
        guidance: float = DEFAULT.guidance,
        sampler: str = DEFAULT.sampler,
        steps: int = DEFAULT.steps,
        guidance_interval: Interval = DEFAULT.guidance_interval,
        device: torch.device | None = None,
    ) -> None:
        self.guidance_interval = check_guidance_interval(guidance_interval)
        device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.masks = load_mask_model(models, device)
        self.images = load_image_model(models, device)
        # The mask model's arrays go to the image model in its own axis order (imported thesis models: IPL → IAR).
        self.orientation = axis_codes(self.masks.meta.get("orientation", RAS), f"{models}/mask_dm: orientation")
        mask_shape = tuple(int(s) for s in self.masks.meta["shape"])
        expected = reorient_axes(mask_shape, self.orientation, self.images.orientation)
        if self.images.shape is not None and tuple(self.images.shape) != expected:
            layout = "" if expected == mask_shape else f" ({expected} as {self.images.orientation} arrays)"
            raise InputError(
                f"{models}: the image model's grid {self.images.shape} differs from the mask model's "
                f"{mask_shape}{layout}; train both on the same experiment"
            )
        self.affine = np.asarray(self.masks.meta["affine"], dtype=np.float64)
        self.seed, self.guidance, self.sampler, self.steps = seed, guidance, sampler, steps
        self.provenance: dict[str, Any] = {**self.masks.digests, **self.images.digests}

    def sample(self, requests: Sequence[SampleRequest]) -> list[SyntheticPair]:
        conditions = [r.condition for r in requests]
        contiguous = sample_mask_batch(
            self.masks,
            [r.noise_seed for r in requests],
            conditions,
            guidance=self.guidance,
            sampler=self.sampler,
            steps=self.steps,
            guidance_interval=self.guidance_interval,
        )
        label_ids = [contiguous_to_ids(volume) for volume in contiguous]
        # Decoded masks are already contiguous; the round trip through ids validates the label set.
        indices = np.stack([ids_to_contiguous(ids) for ids in label_ids])
        images = paint_images(
            self.images,
            indices,
            [image_seed(self.seed, r.index) for r in requests],
            sampler=self.sampler,
            steps=self.steps,
            batch_size=len(requests),
            orientation=self.orientation,
        )
        extra = {
            "guidance": self.guidance,
            "sampler": self.sampler,
            "steps": self.steps,
            "guidance_interval": interval_text(self.guidance_interval),
        }
        return [
            SyntheticPair(ids, image, {**extra, "requested_fraction": self.masks.fraction_of(r.condition)})
            for ids, image, r in zip(label_ids, images, requests, strict=True)
        ]
