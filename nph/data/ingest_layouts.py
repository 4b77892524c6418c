"""Finding cases on disk for ``nph ingest``: paired globs, images only, FreeSurfer subjects, or LDM100k.

Each layout is a small reader that yields :class:`CaseSource` records with a case id that is unique and safe
as a file name; ``label`` is ``None`` for an image-only case.
"""

from __future__ import annotations

import glob
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from nph.errors import InputError

__all__ = [
    "DEFAULT_CASE_SUFFIX",
    "FREESURFER_IMAGES",
    "VOLUME_SUFFIXES",
    "CaseSource",
    "case_id_from",
    "freesurfer_cases",
    "image_only_cases",
    "ldm100k_cases",
    "paired_cases",
    "sanitise_case_id",
    "strip_volume_suffix",
]

log = logging.getLogger(__name__)

#: File endings nph reads as volumes; stripped before deriving a case id.
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh")
#: Modality / label-map tags removed from the end of a file name (repeatedly) to find the shared case id.
DEFAULT_CASE_SUFFIX = r"_(T1w|T2w|FLAIR|flair|T1|T2|synthseg|SynthSeg|seg|aseg|label|labels|mask|dseg)$"
#: The image of a FreeSurfer subject, first found wins: the conformed input, then the intensity-normalised T1.
FREESURFER_IMAGES = ("orig.mgz", "T1.mgz")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: A case id with a number in it names a particular case (sub-01, p7); two different ones conflict.
_NUMBERED = re.compile(r"\d")
_MAX_LISTED = 5


@dataclass(frozen=True)
class CaseSource:
    """One case to ingest: its id, the image, and the label map it comes from (``None``: image only)."""

    case_id: str
    image: Path
    label: Path | None = None


def strip_volume_suffix(name: str) -> str:
    """``sub-01_T1w.nii.gz`` → ``sub-01_T1w``."""
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def sanitise_case_id(raw: str, source: str) -> str:
    """Replace characters outside ``[A-Za-z0-9._-]`` with ``_`` (a case id names files in the dataset)."""
    safe = _UNSAFE.sub("_", raw).strip("._-")
    if not safe:
        raise InputError(f"{source}: cannot derive a case id from {raw!r}")
    return safe


def case_id_from(path: Path, suffix_pattern: re.Pattern[str]) -> str:
    """The case id of a file: its name minus the volume suffix and minus every trailing tag that matches.

    A file inside a FreeSurfer subject's ``mri/`` folder is named by its subject (``<subject>/mri/T1.mgz``).
    """
    if path.parent.name == "mri" and path.parent.parent.name:
        return sanitise_case_id(path.parent.parent.name, str(path))
    stem = strip_volume_suffix(path.name)
    while True:
        shorter = suffix_pattern.sub("", stem, count=1)
        if shorter == stem or not shorter:
            break
        stem = shorter
    return sanitise_case_id(stem, str(path))


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise InputError(f"case_suffix: {pattern!r} is not a valid regular expression ({err})") from err


def _expand(pattern: str, key: str) -> list[Path]:
    files = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser()), recursive=True))
    files = [p for p in files if p.is_file()]
    if not files:
        raise InputError(f"{key}={pattern}: no files match")
    return files


def _by_id(files: list[Path], pattern: re.Pattern[str], key: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        case_id = case_id_from(path, pattern)
        if case_id in found:
            raise InputError(f"{key}: {found[case_id]} and {path} both give case id '{case_id}'")
        found[case_id] = path
    return found


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def paired_cases(images: str, labels: str, case_suffix: str = DEFAULT_CASE_SUFFIX) -> list[CaseSource]:
    """Pair the files of two globs by sorted case id; every image needs exactly one label and vice versa.

    Raises:
        InputError: a glob matches nothing, counts differ, ids collide, or names do not pair up.
    """
    pattern = _compile(case_suffix)
    image_files, label_files = _expand(images, "images"), _expand(labels, "labels")
    if len(image_files) == len(label_files) == 1:  # one pair needs no shared id: it is named by its image
        return [_single_pair(image_files[0], label_files[0], pattern)]
    image_ids = _by_id(image_files, pattern, "images")
    label_ids = _by_id(label_files, pattern, "labels")
    only_images = sorted(set(image_ids) - set(label_ids))
    only_labels = sorted(set(label_ids) - set(image_ids))
    if only_images or only_labels:
        parts = [f"{len(image_ids)} images and {len(label_ids)} labels"]
        if only_images:
            parts.append(f"images without a label: {_listed([str(image_ids[i]) for i in only_images])}")
        if only_labels:
            parts.append(f"labels without an image: {_listed([str(label_ids[i]) for i in only_labels])}")
        raise InputError(f"images={images}, labels={labels}: cannot pair them by case id ({'; '.join(parts)})")
    return [CaseSource(case_id, image_ids[case_id], label_ids[case_id]) for case_id in sorted(image_ids)]


def _single_pair(image: Path, label: Path, pattern: re.Pattern[str]) -> CaseSource:
    """One image and one label map: paired whatever their names, unless both name a (different) numbered case."""
    image_id, label_id = case_id_from(image, pattern), case_id_from(label, pattern)
    if image_id != label_id and _NUMBERED.search(image_id) and _NUMBERED.search(label_id):
        raise InputError(f"images={image}, labels={label}: case ids '{image_id}' and '{label_id}' conflict "
                         "(two different cases?); rename one, or set case_suffix= to the tags to strip")
    return CaseSource(image_id, image, label)


def ldm100k_cases(root: Path) -> list[CaseSource]:
    """``root/rawdata/<sub>/anat/<sub>_T1w.nii.gz`` with its mask at ``root/masks/<sub>/anat/<sub>_T1w.nii.gz``.

    A missing mask is not an error here: that case then fails on its own and the others proceed.
    """
    root = Path(root).expanduser()
    rawdata = root / "rawdata"
    if not rawdata.is_dir():
        raise InputError(f"{rawdata}: no such folder (layout=ldm100k expects root/rawdata and root/masks)")
    cases: list[CaseSource] = []
    seen: dict[str, Path] = {}
    for image in sorted(rawdata.glob("*/anat/*_T1w.nii*")):
        subject = image.parent.parent.name
        case_id = sanitise_case_id(subject, str(image))
        if case_id in seen:
            raise InputError(f"{image}: case id '{case_id}' already taken by {seen[case_id]}")
        seen[case_id] = image
        label = root / "masks" / subject / "anat" / image.name
        cases.append(CaseSource(case_id, image, label))
    if not cases:
        raise InputError(f"{rawdata}: no <sub>/anat/<sub>_T1w.nii.gz images found")
    return cases


def image_only_cases(images: str, case_suffix: str = DEFAULT_CASE_SUFFIX) -> list[CaseSource]:
    """Every file of the ``images`` glob as an unlabelled case (test scans).

    Raises:
        InputError: the glob matches nothing, or two files give one case id.
    """
    found = _by_id(_expand(images, "images"), _compile(case_suffix), "images")
    return [CaseSource(case_id, found[case_id]) for case_id in sorted(found)]


def freesurfer_cases(
    root: Path, label_file: str | None = "aseg.mgz", image_file: str | None = None
) -> list[CaseSource]:
    """FreeSurfer subjects ``root/<subject>/mri/``: the image (``image_file``, else the first of
    :data:`FREESURFER_IMAGES` present) and the label map ``label_file`` (``None``: images only).

    Folders without ``mri/`` and the ``fsaverage*`` templates are not subjects. A subject missing a file is
    not an error here: that case then fails on its own and the others proceed.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: no such folder (layout=freesurfer expects root=SUBJECTS_DIR)")
    cases: list[CaseSource] = []
    seen: dict[str, Path] = {}
    for mri in sorted(p for p in root.glob("*/mri") if p.is_dir()):
        subject = mri.parent.name
        if subject.startswith("fsaverage"):
            log.info("%s: a FreeSurfer template, not a subject; skipped", mri.parent)
            continue
        names = (image_file,) if image_file else FREESURFER_IMAGES
        image = next((mri / n for n in names if (mri / n).is_file()), mri / names[0])
        label = mri / label_file if label_file else None
        case_id = sanitise_case_id(subject, str(mri.parent))
        if case_id in seen:
            raise InputError(f"{mri.parent}: case id '{case_id}' already taken by {seen[case_id]}")
        seen[case_id] = mri.parent
        cases.append(CaseSource(case_id, image, label))
    if not cases:
        raise InputError(f"{root}: no <subject>/mri/ folders (is it a FreeSurfer SUBJECTS_DIR?)")
    return cases
