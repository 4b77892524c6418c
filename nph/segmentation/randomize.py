"""SynthSeg-style domain randomisation as a data source: random images painted on a dataset's label maps.

The baseline beside the LDM images in the benchmark, from the *same* label maps: random affine and elastic
deformation (labels deformed with nearest neighbour, the image generated afterwards so pairs stay exact),
GMM intensities per tissue group with means and spreads drawn per sample, bias field, random resolution,
blur and noise (Billot et al., SynthSeg, MedIA 2023), all with TorchIO's transforms.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torchio as tio

from nph.data.dataset import DatasetPaths, LabelledDataset, finalize, write_case
from nph.data.grid import scale_intensity
from nph.data.labels import LABELS, TissueGroup, contiguous_to_ids
from nph.data.measures import measure
from nph.errors import InputError
from nph.io.nifti import load_volume
from nph.progress import progress

__all__ = ["RandomizeSettings", "build_transform", "randomize_case", "randomize_dataset", "settings_from"]

log = logging.getLogger(__name__)
_GROUPS = list(TissueGroup)
_GROUP_OF_ID = np.zeros(max(label.id for label in LABELS) + 1, dtype=np.int64)
for _label in LABELS:
    _GROUP_OF_ID[_label.id] = _GROUPS.index(_label.group)


@dataclass(frozen=True)
class RandomizeSettings:
    """Ranges of the random draws (SynthSeg's recipe scaled to intensities in [0, 1]; lengths in mm)."""

    scales: float = 0.15
    degrees: float = 15.0
    translation_mm: float = 10.0
    elastic_control_points: int = 7
    max_displacement_mm: float = 10.0
    mean_range: tuple[float, float] = (0.0, 1.0)
    std_range: tuple[float, float] = (0.0, 0.1)
    bias_coefficients: float = 0.5
    anisotropy_downsampling: tuple[float, float] = (1.0, 3.0)
    blur_std_mm: tuple[float, float] = (0.0, 1.0)
    noise_std: tuple[float, float] = (0.0, 0.05)


def build_transform(s: RandomizeSettings) -> tio.Compose:
    """Deform labels (``label`` and its tissue-group map ``groups``), then paint and corrupt the image.

    Intensities are scaled afterwards by :func:`randomize_case` the way ingest scales real scans.
    """
    return tio.Compose(
        [
            tio.RandomAffine(
                scales=s.scales,
                degrees=s.degrees,
                translation=s.translation_mm,
                default_pad_label=0,
                label_interpolation="nearest",
            ),
            tio.RandomElasticDeformation(
                num_control_points=s.elastic_control_points,
                max_displacement=s.max_displacement_mm,
                label_interpolation="nearest",
            ),
            tio.RandomLabelsToImage(
                label_key="groups", image_key="image", default_mean=s.mean_range, default_std=s.std_range
            ),
            tio.RandomBiasField(coefficients=s.bias_coefficients),
            tio.RandomAnisotropy(downsampling=s.anisotropy_downsampling),
            tio.RandomBlur(std=s.blur_std_mm),
            tio.RandomNoise(std=s.noise_std),
        ]
    )


def randomize_case(
    label_ids: npt.NDArray[np.integer], affine: npt.NDArray, transform: tio.Compose, seed: int
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.float32]]:
    """One randomised (deformed label map, image) pair on the input's grid; the same seed gives the same pair."""
    ids = torch.as_tensor(np.asarray(label_ids, dtype=np.int64))[None]
    groups = torch.as_tensor(_GROUP_OF_ID[np.asarray(label_ids, dtype=np.int64)])[None]
    subject = tio.Subject(
        label=tio.LabelMap(tensor=ids, affine=affine), groups=tio.LabelMap(tensor=groups, affine=affine)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        out = transform(subject)
    assert isinstance(out, tio.Subject)
    label, image = out.get_image("label").data[0].numpy(), out.get_image("image").data[0].numpy()
    # Percentiles over the head as ingest scales a real scan, and zero outside it as the phantoms and the LDM images
    # look (an ingested scan's air falls below the head's 0.5th percentile and clips to 0 too). Scaling over the whole
    # field of view with a painted background left the head at another intensity scale and gave nnU-Net a dataset
    # without zero background, so it planned another normalisation than the test images got.
    return label.astype(np.int16), scale_intensity(image, label != 0, source="randomised image", zero_outside=True)


def _case_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def randomize_dataset(
    data: Path, out: Path, n: int, seed: int, settings: RandomizeSettings, *, modality: str = "randomized"
) -> list[dict[str, Any]]:
    """Write ``n`` randomised pairs from ``data``'s label maps (cycled in case order) as a labelled dataset folder.

    Case ``rand<index>`` draws from seed ``SeedSequence([seed, index])``; finished cases are kept on a rerun.
    """
    if n < 1:
        raise InputError(f"n={n}: must be at least 1")
    if out.resolve() == data.resolve():
        raise InputError(f"out={out}: must differ from data= (the source dataset is read, never written)")
    source = LabelledDataset(data)
    paths = DatasetPaths(out)
    try:
        transform = build_transform(settings)
    except (ValueError, TypeError) as err:
        raise InputError(f"randomize settings: {err}") from err
    rows = []
    for index in progress(range(n), desc="randomize", unit="sample"):
        case_src = source.case_ids[index % len(source)]
        case_id = f"rand{index:06d}"
        provenance = {
            "source": "randomize",
            "seed": int(seed),
            "index": index,
            "case_seed": _case_seed(seed, index),
            "source_case": case_src,
            "source_dataset": str(data.resolve()),
        }
        if paths.image(case_id).is_file() and paths.label(case_id).is_file():
            rows.append(_existing_row(paths, case_id, provenance))
            continue
        label = source.label(case_src)
        ids, image = randomize_case(label.data, label.affine, transform, provenance["case_seed"])
        rows.append(write_case(paths, case_id, ids, label.affine, image, provenance))
    finalize(
        paths,
        rows,
        modality=modality,
        description=f"SynthSeg-style randomised images from {data}",
        extra={"randomize": {"seed": int(seed), "n": n, "source_dataset": str(data.resolve())}},
    )
    log.info("wrote %d randomised cases to %s", n, out)
    return rows


def _existing_row(paths: DatasetPaths, case_id: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """The manifest row of a case a previous run finished (resume)."""
    label = load_volume(paths.label(case_id), integer=True)
    ids = contiguous_to_ids(label.data)
    return {
        "case_id": case_id,
        "image": str(paths.image(case_id).relative_to(paths.root)),
        "label": str(paths.label(case_id).relative_to(paths.root)),
        **asdict(measure(ids, label.affine)),
        **provenance,
    }


def settings_from(
    mapping: dict[str, Any], keys: Sequence[str] = tuple(RandomizeSettings.__dataclass_fields__)
) -> RandomizeSettings:
    """Settings from the command's config section; lists become tuples."""
    chosen: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items() if k in keys}
    return RandomizeSettings(**chosen)
