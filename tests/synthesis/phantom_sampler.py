"""A sampler for testing the synthesis machinery without trained models: pairs from the phantom generator.

It is a real nph component (the phantoms) used as a PairSampler: request i's condition sets the ventricle
enlargement and its noise seed the anatomy, so outputs depend on (seed, i) exactly as the LDM sampler's do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nph.data.phantoms import grid_affine, make_phantom
from nph.synthesis.generate import SampleRequest, SyntheticPair

TINY_SHAPE = (32, 48, 32)
TINY_SPACING = (5.0, 4.667, 5.0)


class PhantomPairSampler:
    """PairSampler over phantoms; counts the samples it made so tests can check what a resume redid."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.affine = grid_affine(TINY_SHAPE, TINY_SPACING)
        self.made: list[int] = []
        self.fail_after = fail_after

    def sample(self, requests: Sequence[SampleRequest]) -> list[SyntheticPair]:
        pairs = []
        for request in requests:
            if self.fail_after is not None and len(self.made) >= self.fail_after:
                raise KeyboardInterrupt("simulated kill")
            phantom = make_phantom(request.noise_seed % 2**32, shape=TINY_SHAPE, spacing=TINY_SPACING,
                                   enlargement=request.condition)
            self.made.append(request.index)
            pairs.append(SyntheticPair(phantom.label_ids, phantom.image, {"sampler": "phantom"}))
        return pairs


def label_bytes(root, case_id: str) -> bytes:
    return (root / "labelsTr" / f"{case_id}.nii.gz").read_bytes()


def image_array(root, case_id: str) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(str(root / "imagesTr" / f"{case_id}_0000.nii.gz")).dataobj)
