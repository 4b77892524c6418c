"""NIfTI/MGZ reading into RAS+, validation of pairs, and atomic writes."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from nph.errors import InputError
from nph.io.atomic import atomic_path
from nph.io.nifti import Volume, check_pair, load_volume, save_volume, spacing_of


def _marked_volume() -> np.ndarray:
    data = np.zeros((10, 12, 8), dtype=np.float32)
    data[1, 6, 4] = 1.0  # marker near array index 0 along axis 0
    return data


def test_non_ras_file_is_reoriented_with_world_position_kept(tmp_path) -> None:
    # LPS-like affine: axis 0 runs right→left, axis 1 anterior→posterior.
    affine = np.array([[-2.0, 0, 0, 20], [0, -1.5, 0, 10], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    path = tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(_marked_volume(), affine), str(path))
    vol = load_volume(path)
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert vol.spacing == pytest.approx((2.0, 1.5, 3.0))
    world_before = affine @ np.array([1, 6, 4, 1])
    index_after = np.argwhere(vol.data == 1.0)[0]
    world_after = vol.affine @ np.array([*index_after, 1])
    assert np.allclose(world_before, world_after)
    assert index_after[0] == 10 - 1 - 1  # was the second voxel from the right edge; now counted from the left


def test_mgz_is_read(tmp_path) -> None:
    path = tmp_path / "aseg.mgz"
    data = np.zeros((6, 6, 6), dtype=np.int32)
    data[2:4, 2:4, 2:4] = 4
    nib.save(nib.MGHImage(data, np.eye(4)), str(path))
    vol = load_volume(path, integer=True)
    assert vol.data.dtype == np.int32 and int((vol.data == 4).sum()) == 8


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"not a nifti at all", "cannot read"), (gzip.compress(b"\x00" * 100), "cannot read")],
)
def test_corrupt_file_is_one_clear_error(tmp_path, payload, message) -> None:
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(payload)
    with pytest.raises(InputError, match=message) as err:
        load_volume(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_nan_and_non_integer_labels_are_refused(tmp_path) -> None:
    data = np.ones((4, 4, 4), dtype=np.float32)
    data[0, 0, 0] = np.nan
    save_volume(tmp_path / "nan.nii.gz", data, np.eye(4))
    with pytest.raises(InputError, match="1 NaN"):
        load_volume(tmp_path / "nan.nii.gz")
    save_volume(tmp_path / "frac.nii.gz", np.full((4, 4, 4), 2.5, dtype=np.float32), np.eye(4))
    with pytest.raises(InputError, match="non-integer"):
        load_volume(tmp_path / "frac.nii.gz", integer=True)
    with pytest.raises(InputError, match="no such file"):
        load_volume(tmp_path / "missing.nii.gz")


def test_save_round_trip_and_dtypes(tmp_path) -> None:
    affine = np.diag([1.667, 1.75, 1.667, 1.0])
    labels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    save_volume(tmp_path / "l.nii.gz", labels, affine)
    back = load_volume(tmp_path / "l.nii.gz", integer=True)
    assert np.array_equal(back.data, labels) and np.allclose(back.affine, affine)
    save_volume(tmp_path / "i.nii", np.ones((2, 2, 2), dtype=np.float64), affine)
    assert nib.load(str(tmp_path / "i.nii")).get_data_dtype() == np.float32
    assert spacing_of(affine) == pytest.approx((1.667, 1.75, 1.667))


def test_pair_check_names_the_mismatch() -> None:
    image = Volume(np.zeros((4, 4, 4)), np.eye(4))
    with pytest.raises(InputError, match="shape"):
        check_pair(image, Volume(np.zeros((4, 4, 5)), np.eye(4)), image_path="i", label_path="l")
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    with pytest.raises(InputError, match="affine"):
        check_pair(image, Volume(np.zeros((4, 4, 4)), shifted), image_path="i", label_path="l")
    check_pair(image, Volume(np.zeros((4, 4, 4)), np.eye(4) + 1e-6), image_path="i", label_path="l")


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path) -> None:
    dest = tmp_path / "keep.nii.gz"
    save_volume(dest, np.ones((2, 2, 2)), np.eye(4))
    before = dest.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.nii.gz"]


def test_same_data_gives_identical_bytes(tmp_path) -> None:
    data = np.random.default_rng(1).random((5, 5, 5)).astype(np.float32)
    save_volume(tmp_path / "a.nii.gz", data, np.eye(4))
    save_volume(tmp_path / "b.nii.gz", data, np.eye(4))
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()


def test_written_files_get_the_usual_mode_not_mkstemps_0600(tmp_path) -> None:
    import os

    previous = os.umask(0o022)
    try:
        save_volume(tmp_path / "m.nii.gz", np.ones((2, 2, 2)), np.eye(4))
    finally:
        os.umask(previous)
    assert (tmp_path / "m.nii.gz").stat().st_mode & 0o777 == 0o644
