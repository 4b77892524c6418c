"""Phantom anatomy: an analytic SynthSeg-id head, deformed per case, with ventricles that push the brain.

The template is a list of smooth shapes (superellipsoids, in mm, RAS+, origin near the head centre) painted
in order, so later structures win. A case evaluates the template at warped coordinates:

``output voxel → world mm → subject warp (scale + smooth random displacement) → NPH push⁻¹ → template``.

The NPH push is a chain of point "sources" inside the ventricles. Each forward push moves every point
radially away from its source so that an ellipsoidal cavity of a chosen volume opens at the source and is
filled with ventricle; outside the cavity the map is volume-preserving (``r' ** 3 = r ** 3 + a ** 3``), so
ventricles grow while deep grey nuclei and white matter are pushed aside with their volumes kept. The skull
(the intracranial mask) does not move: what is pushed past it — the outer CSF — is squeezed out, as sulci
and the subarachnoid space are effaced in NPH.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Blob", "Coords", "Source", "Space", "Structure", "make_labels", "smooth_field", "take"]

Array = npt.NDArray[np.float32]
Coords = tuple[Array, Array, Array]


def take(q: Coords, index: Any) -> Coords:
    """The same voxels (a box of slices or a mask) of each of the three coordinate arrays."""
    return q[0][index], q[1][index], q[2][index]


@dataclass(frozen=True)
class Blob:
    """A superellipsoid: centre and semi-axes in mm, exponent ``power`` (2 = ellipsoid), ``pitch`` in degrees
    (rotation about the left-right axis; positive lifts the anterior end)."""

    centre: tuple[float, float, float]
    semi: tuple[float, float, float]
    power: float = 2.0
    pitch: float = 0.0

    def mirrored(self) -> Blob:
        """The same blob in the other hemisphere (x → −x)."""
        return Blob((-self.centre[0], self.centre[1], self.centre[2]), self.semi, self.power, self.pitch)

    def level(self, q: Coords) -> Array:
        """``sum |d_i / a_i| ** power``: below 1 inside the blob."""
        dx, dy, dz = (q[i] - np.float32(self.centre[i]) for i in range(3))
        if self.pitch:
            cos, sin = np.float32(np.cos(np.radians(self.pitch))), np.float32(np.sin(np.radians(self.pitch)))
            dy, dz = cos * dy + sin * dz, -sin * dy + cos * dz
        total = np.zeros(dx.shape, dtype=np.float32)
        for d, a in zip((dx, dy, dz), self.semi, strict=True):
            t = np.abs(d * np.float32(1.0 / a))
            if self.power == 2.0:
                total += t * t
            elif self.power == 2.5:  # the head's exponent: t² √t is far cheaper than a general power
                total += t * t * np.sqrt(t)
            else:
                total += t ** np.float32(self.power)
        return total

    def grown(self, mm: float) -> Blob:
        """The blob with every semi-axis longer by ``mm`` (shorter if negative)."""
        semi = (self.semi[0] + mm, self.semi[1] + mm, self.semi[2] + mm)
        return Blob(self.centre, semi, self.power, self.pitch)

    def extent(self) -> tuple[float, float, float]:
        """Half-widths (mm) of a box around the centre that holds the blob, whatever its pitch."""
        if not self.pitch:
            return self.semi
        reach = float(np.hypot(self.semi[1], self.semi[2]))
        return (self.semi[0], reach, reach)

    def inside(self, q: Coords) -> npt.NDArray[np.bool_]:
        return self.level(q) <= 1.0


class Space:
    """Coordinates (mm) of every voxel, with per-slab bounds so a blob is only evaluated on the index box
    that can hold it (a conservative box: it stays right under any warp)."""

    def __init__(self, coords: Coords) -> None:
        self.coords = coords
        self._low = [c.min(axis=tuple(j for j in range(3) if j != i)) for i, c in enumerate(coords)]
        self._high = [c.max(axis=tuple(j for j in range(3) if j != i)) for i, c in enumerate(coords)]

    def box(self, blob: Blob) -> tuple[slice, slice, slice] | None:
        """Index ranges whose coordinates may fall inside ``blob``; None if none can."""
        slices = []
        for i, half in enumerate(blob.extent()):
            hits = np.nonzero((self._high[i] >= blob.centre[i] - half) & (self._low[i] <= blob.centre[i] + half))[0]
            if hits.size == 0:
                return None
            slices.append(slice(int(hits[0]), int(hits[-1]) + 1))
        return slices[0], slices[1], slices[2]

    def paint(self, labels: npt.NDArray[np.int16], blob: Blob, label: int) -> None:
        """Set ``label`` wherever ``blob`` holds, evaluating only its box."""
        box = self.box(blob)
        if box is not None:
            view = labels[box]
            view[blob.inside(take(self.coords, box))] = label


@dataclass(frozen=True)
class Structure:
    """One labelled structure: its left (or midline) id, right id (None for midline), and its blobs,
    given for the left hemisphere (x < 0) and mirrored for the right."""

    left_id: int
    right_id: int | None
    blobs: tuple[Blob, ...]


@dataclass(frozen=True)
class Source:
    """An NPH push source: where it sits (left side for paired ones), its cavity volume at enlargement 1 (mL),
    the cavity's shape (relative semi-axes) and the ventricle ids that fill it."""

    centre: tuple[float, float, float]
    volume_ml: float
    shape: tuple[float, float, float]
    left_id: int
    right_id: int | None


# Template in mm (RAS+, left hemisphere for paired structures). Sizes follow adult anatomy at ~1 mm,
# simplified: lateral ventricle = frontal horn + body + atrium, hippocampus tilted along the temporal lobe.
HEAD = Blob((0.0, -4.0, 6.0), (63.0, 82.0, 57.0), 2.5)
CSF_MM = 3.5  # extracerebral CSF between skull and cortex
CEREBRUM = HEAD.grown(-CSF_MM)
WM_LEVEL = 0.82  # cerebral WM inside this fraction of the cerebrum's radius; the rest is cortex
GYRI_MM = 2.5  # how much the cortex thickness varies (the gyri)
CEREBELLUM = Blob((0.0, -56.0, -32.0), (50.0, 26.0, 20.0))
CEREBELLUM_WM = Structure(7, 46, (Blob((-18.0, -52.0, -30.0), (13.0, 13.0, 9.0)),))
BRAINSTEM = Blob((0.0, -27.0, -34.0), (11.0, 12.0, 34.0), 2.0, -12.0)
#: Where the hemispheres meet in the middle (corpus callosum, diencephalon); elsewhere the midline is the
#: medial cortex of each hemisphere with the interhemispheric fissure between them.
MIDLINE_CORE = Blob((0.0, -8.0, 2.0), (12.0, 40.0, 22.0))
MEDIAL_MM = 4.0
FISSURE_MM = 1.0

DEEP_GREY: tuple[Structure, ...] = (
    Structure(28, 60, (Blob((-9.0, -14.0, -10.0), (6.0, 9.0, 5.0)),)),  # ventral DC
    Structure(10, 49, (Blob((-11.0, -14.0, 6.0), (8.0, 15.0, 10.0)),)),  # thalamus
    Structure(11, 50, (Blob((-16.0, 14.0, 12.0), (5.0, 12.0, 8.0)), Blob((-18.0, -6.0, 19.0), (3.0, 12.0, 3.5)))),
    Structure(12, 51, (Blob((-25.0, 4.0, 2.0), (6.0, 15.0, 10.0)),)),  # putamen
    Structure(13, 52, (Blob((-19.5, 2.0, 0.0), (4.0, 8.0, 5.5)),)),  # pallidum
    Structure(17, 53, (Blob((-27.0, -22.0, -17.0), (5.5, 18.0, 5.5), 2.0, 20.0),)),  # hippocampus
    Structure(18, 54, (Blob((-23.0, 3.0, -20.0), (6.5, 7.0, 6.5)),)),  # amygdala
    Structure(26, 58, (Blob((-9.0, 18.0, -3.0), (4.5, 5.5, 4.5)),)),  # accumbens area
)
VENTRICLES: tuple[Structure, ...] = (
    Structure(4, 43, (
        Blob((-9.5, 20.0, 12.0), (5.0, 14.0, 8.0), 2.0, 10.0),  # frontal horn
        Blob((-10.0, -6.0, 18.0), (5.0, 20.0, 6.0)),  # body
        Blob((-17.0, -34.0, 10.0), (6.0, 12.0, 9.0)),  # atrium and occipital horn
    )),
    Structure(5, 44, (Blob((-29.0, -14.0, -10.0), (3.0, 12.0, 3.5), 2.0, 15.0),)),  # temporal horn
    Structure(14, None, (Blob((0.0, -10.0, 2.0), (2.5, 14.0, 9.0)),)),  # 3rd ventricle
    Structure(15, None, (Blob((0.0, -40.0, -32.0), (7.0, 5.0, 7.0)),)),  # 4th ventricle
)
SOURCES: tuple[Source, ...] = (
    Source((-10.0, 20.0, 13.0), 11.0, (0.85, 1.4, 1.0), 4, 43),  # frontal horn
    Source((-10.0, -6.0, 18.0), 21.0, (0.75, 1.8, 1.0), 4, 43),  # body
    Source((-17.0, -32.0, 10.0), 19.0, (1.0, 1.2, 1.0), 4, 43),  # atrium
    Source((-29.0, -14.0, -10.0), 4.0, (0.6, 1.5, 0.7), 5, 44),  # temporal horn
    Source((0.0, -10.0, 2.0), 4.0, (0.6, 1.6, 1.3), 14, None),  # 3rd ventricle
    Source((0.0, -40.0, -32.0), 1.5, (1.0, 1.0, 1.0), 15, None),  # 4th ventricle
)


def _interpolation_matrix(n: int, c: int) -> npt.NDArray[np.float64]:
    """(n, c) weights of linear interpolation from ``c`` coarse points (cell centres) to ``n`` fine ones."""
    position = np.clip((np.arange(n) + 0.5) * c / n - 0.5, 0.0, c - 1.0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, c - 1)
    weight = position - low
    matrix = np.zeros((n, c))
    np.add.at(matrix, (np.arange(n), low), 1.0 - weight)
    np.add.at(matrix, (np.arange(n), high), weight)
    return matrix


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], control: tuple[int, ...]) -> Array:
    """A smooth random field of unit-ish amplitude: standard normals on a coarse ``control`` grid, upsampled
    (separable linear interpolation: three small matrix products instead of a per-voxel zoom)."""
    coarse = rng.standard_normal(control)
    mx, my, mz = (_interpolation_matrix(n, c) for n, c in zip(shape, control, strict=True))
    field = (mx @ coarse.reshape(control[0], -1)).reshape(shape[0], control[1], control[2])
    field = np.einsum("bj,ajk->abk", my, field)
    return (field @ mz.T).astype(np.float32)


def _jitter(blob: Blob, rng: np.random.Generator, shift_mm: float, scale: float, spread: float = 0.06) -> Blob:
    """Per-case variation of one blob: its centre moves up to ``shift_mm``, its semi-axes scale by ``scale``
    times a log-normal factor of sd ``spread``."""
    shift = rng.uniform(-shift_mm, shift_mm, 3)
    factor = scale * np.exp(rng.normal(0.0, spread, 3))
    centre = (float(blob.centre[0] + shift[0]), float(blob.centre[1] + shift[1]), float(blob.centre[2] + shift[2]))
    semi = (float(blob.semi[0] * factor[0]), float(blob.semi[1] * factor[1]), float(blob.semi[2] * factor[2]))
    return Blob(centre, semi, blob.power, blob.pitch)


def _paint(
    labels: npt.NDArray[np.int16], space: Space, structure: Structure, rng: np.random.Generator,
    shift_mm: float, scale: float = 1.0, spread: float = 0.06,
) -> None:
    """Paint a structure: its left blobs and, for paired structures, the mirrored right blobs, each side
    jittered on its own (a subject is not symmetric)."""
    for blob in structure.blobs:
        space.paint(labels, _jitter(blob, rng, shift_mm, scale, spread), structure.left_id)
        if structure.right_id is not None:
            space.paint(labels, _jitter(blob.mirrored(), rng, shift_mm, scale, spread), structure.right_id)


def _cerebrum(labels: npt.NDArray[np.int16], q: Coords, gyri: Array) -> None:
    """Cortex and white matter of both hemispheres, a gyral pattern, and the interhemispheric fissure."""
    x = q[0]
    left = x < 0
    level = CEREBRUM.level(q)
    brain = level <= 1.0
    labels[brain] = np.where(left[brain], 3, 42)
    # WM inside radius WM_LEVEL + δ (δ from the gyri field); level is radius ** power, linearised in δ
    radius = np.float32(WM_LEVEL)
    power = np.float32(CEREBRUM.power)
    delta = gyri * np.float32(GYRI_MM / min(CEREBRUM.semi))
    white = level <= radius**power + power * radius ** (power - 1) * delta
    apart = ~MIDLINE_CORE.inside(q)
    white &= ~((np.abs(x) < MEDIAL_MM) & apart)
    labels[white] = np.where(left[white], 2, 41)
    labels[brain & (np.abs(x) < FISSURE_MM) & apart] = 24


def _template(q: Coords, rng: np.random.Generator, gyri: Array, ventricle_scale: float) -> npt.NDArray[np.int16]:
    """Evaluate the (per-case jittered) template at coordinates ``q``: SynthSeg ids, int16; CSF where no
    structure is (the caller masks the outside of the skull)."""
    labels = np.full(q[0].shape, 24, dtype=np.int16)
    _cerebrum(labels, q, gyri)
    space = Space(q)
    cerebellum = _jitter(CEREBELLUM, rng, 2.0, 1.0)
    box = space.box(cerebellum)
    if box is not None:
        inside = cerebellum.inside(take(q, box))
        view = labels[box]
        view[inside] = np.where(q[0][box][inside] < 0, 8, 47)
    _paint(labels, space, CEREBELLUM_WM, rng, 1.5)
    space.paint(labels, _jitter(BRAINSTEM, rng, 1.5, 1.0), 16)
    for structure in DEEP_GREY:
        _paint(labels, space, structure, rng, 1.5)
    for structure in VENTRICLES:
        _paint(labels, space, structure, rng, 1.0, ventricle_scale, 0.04)
    return labels


def _sources(rng: np.random.Generator) -> list[tuple[np.ndarray, float, np.ndarray, int]]:
    """Every push source, both hemispheres: (centre, cavity volume at e=1 in mm³, metric, ventricle id)."""
    out = []
    for source in SOURCES:
        sides = [(1.0, source.left_id)] + ([(-1.0, source.right_id)] if source.right_id is not None else [])
        for sign, label in sides:
            centre = np.array([sign * source.centre[0], source.centre[1], source.centre[2]])
            volume = source.volume_ml * 1000.0 * float(np.exp(rng.normal(0.0, 0.1)))
            metric = np.asarray(source.shape) / np.prod(source.shape) ** (1.0 / 3.0)  # det 1: volume-preserving
            out.append((centre + rng.uniform(-1.0, 1.0, 3), volume, metric, int(label)))
    return out


def _pull_back(q: Coords, enlargement: float, rng: np.random.Generator) -> tuple[Coords, npt.NDArray[np.int16]]:
    """Invert the chain of NPH pushes: template coordinates of each point, and the cavity label where a
    point lies inside a cavity (0 elsewhere).

    Push ``j`` maps a point at metric radius ``r`` from its source to ``(r³ + a³)^(1/3)`` along the same ray;
    its inverse scales the offset by ``((r³ − a³) / r³)^(1/3)``, and ``r³ ≤ a³`` is the cavity.
    """
    sources = _sources(rng)
    cavity = np.zeros(q[0].shape, dtype=np.int16)
    if enlargement <= 0.0:
        return q, cavity
    x, y, z = (c.copy() for c in q)
    for centre, volume, metric, label in reversed(sources):  # the last push applied is undone first
        a3 = np.float32(3.0 * enlargement * volume / (4.0 * np.pi))
        r2 = np.zeros(x.shape, dtype=np.float32)
        for coord, m, n in zip((x, y, z), centre, metric, strict=True):
            coord -= np.float32(m)
            r2 += np.square(coord * np.float32(1.0 / n))
        r3 = r2 * np.sqrt(r2)
        cavity[(r3 <= a3) & (cavity == 0)] = label
        ratio = np.cbrt(np.maximum(r3 - a3, 0.0) / np.maximum(r3, np.float32(1e-12)))
        for coord, m in zip((x, y, z), centre, strict=True):
            coord *= ratio
            coord += np.float32(m)
    return (x, y, z), cavity


def make_labels(
    coords: Coords, rng: np.random.Generator, enlargement: float, *, gyri: Array, ventricle_scale: float
) -> npt.NDArray[np.int16]:
    """SynthSeg-id label map at subject coordinates ``coords`` (mm), with ventricles enlarged by ``enlargement``.

    Args:
        coords: three float32 arrays (X, Y, Z) of template-space mm, one per voxel (the subject warp applied).
        rng: the case's generator: draws the per-case jitter of every structure and source (same draws
            whatever ``enlargement`` is, so one seed gives one subject at every enlargement).
        enlargement: 0 healthy, 1 NPH-like; larger values extrapolate.
        gyri: a smooth random field on the same grid that makes the cortex thickness vary.
        ventricle_scale: the subject's baseline ventricle size factor (linear).
    """
    skull = np.zeros(coords[0].shape, dtype=np.int16)
    space = Space(coords)
    for blob in (HEAD, CEREBELLUM.grown(CSF_MM), BRAINSTEM.grown(CSF_MM)):
        space.paint(skull, blob, 1)
    template_rng, source_rng = rng.spawn(2)
    head = skull != 0
    pulled_head, cavity_head = _pull_back(take(coords, head), enlargement, source_rng)
    pulled = (coords[0].copy(), coords[1].copy(), coords[2].copy())
    for full, part in zip(pulled, pulled_head, strict=True):
        full[head] = part  # outside the skull the coordinates stay unpulled: those voxels end up background
    labels = _template(pulled, template_rng, gyri, ventricle_scale)
    view = labels[head]
    view[cavity_head != 0] = cavity_head[cavity_head != 0]
    labels[head] = view
    labels[~head] = 0
    return labels
