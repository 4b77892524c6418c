"""End to end on phantoms: perturbed predictions give the right numbers, statistics, figures and report."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from nph.data.labels import VENTRICLE_IDS
from nph.evaluation import figures as figs
from nph.evaluation.benchmark import BenchmarkPaths, run_benchmark
from nph.evaluation.report import SUMMARY_HEADER, bland_altman_table, fmt, summary_table
from nph.evaluation.schemes import WHOLE

VOXEL_ML = 3.333 * 3.5 * 3.333 / 1000


@pytest.fixture(scope="module")
def result(benchmark_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("result")
    summary = run_benchmark(
        benchmark_inputs.reference,
        benchmark_inputs.predictions,
        out,
        n_boot=400,
        seed=5,
        command=["nph", "evaluate", "reference=R"],
    )
    per_case = pd.read_csv(BenchmarkPaths(out).per_case, keep_default_na=False, na_values=[""])
    return summary, per_case, BenchmarkPaths(out)


def _row(per_case, case, method, structure=WHOLE):
    rows = per_case[(per_case.case_id == case) & (per_case.method == method) & (per_case.structure == structure)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_per_case_numbers_follow_the_perturbations(benchmark_inputs, result) -> None:
    _, per_case, _ = result
    cases = sorted(benchmark_inputs.ref_ids)
    exact = _row(per_case, cases[0], "nnunet")
    assert (exact.dice, exact.hd95_mm, exact.assd_mm, exact.nsd, exact.abs_volume_error_ml) == (1, 0, 0, 1, 0)
    for case in cases:  # every number recomputed independently from the arrays
        ref = np.isin(benchmark_inputs.ref_ids[case], VENTRICLE_IDS)
        for method, maps in benchmark_inputs.pred_ids.items():
            pred = (
                np.isin(maps[case], VENTRICLE_IDS)
                if case in maps and method != "binary"
                else (maps[case] == 1 if case in maps else np.zeros_like(ref))
            )
            row = _row(per_case, case, method)
            assert row.reference_ml == pytest.approx(ref.sum() * VOXEL_ML)
            assert row.predicted_ml == pytest.approx(pred.sum() * VOXEL_ML)
            assert row.dice == pytest.approx(2 * (ref & pred).sum() / (ref.sum() + pred.sum()))
    eroded, dilated = _row(per_case, cases[1], "nnunet"), _row(per_case, cases[2], "nnunet")
    assert eroded.volume_error_ml < 0 < dilated.volume_error_ml
    shifted = _row(per_case, cases[4], "nnunet")  # one voxel along x: surfaces move by 3.333 mm at most
    assert shifted.abs_volume_error_ml == 0 and shifted.hd95_mm == pytest.approx(3.333)
    missing = _row(per_case, cases[3], "nnunet")
    diagonal = float(np.linalg.norm(np.multiply((48, 64, 48), (3.333, 3.5, 3.333))))  # field of view, mm
    assert missing.flag == "missing,prediction_empty,worst_case_distance" and missing.dice == 0
    assert (missing.hd95_mm, missing.assd_mm) == (pytest.approx(diagonal), pytest.approx(diagonal))
    assert missing.abs_volume_error_ml == pytest.approx(missing.reference_ml)
    assert set(per_case[per_case.method == "synthseg"].flag) == {"resampled"}  # 1 mm grid → reference grid
    assert _row(per_case, cases[0], "synthseg").dice == 1.0  # nearest-neighbour round trip is exact
    assert set(per_case[per_case.method == "binary"].structure) == {WHOLE}
    lateral = _row(per_case, cases[1], "nnunet", "left lateral ventricle")
    ref_l = benchmark_inputs.ref_ids[cases[1]] == 4
    pred_l = benchmark_inputs.pred_ids["nnunet"][cases[1]] == 4
    assert lateral.dice == pytest.approx(2 * (ref_l & pred_l).sum() / (ref_l.sum() + pred_l.sum()))
    inferior = _row(per_case, cases[0], "nnunet", "left inferior lateral ventricle")
    assert inferior.dice == 1.0 or inferior.flag == "both_empty"


def test_summary_statistics(benchmark_inputs, result) -> None:
    summary, per_case, _ = result
    whole = per_case[per_case.structure == WHOLE]
    nnunet = summary["structures"][WHOLE]["nnunet"]
    values = whole[whole.method == "nnunet"]
    assert nnunet["n_cases"] == 6 and nnunet["n_missing"] == 1
    assert nnunet["metrics"]["dice"]["mean"] == pytest.approx(values.dice.mean())
    assert nnunet["metrics"]["hd95_mm"]["n_nan"] == 0  # the missing case has the worst-case distance
    assert nnunet["metrics"]["hd95_mm"]["mean"] == pytest.approx(values.hd95_mm.mean())
    assert nnunet["metrics"]["hd95_mm"]["mean"] > values.hd95_mm.max() / 6  # dominated by the missing case
    assert nnunet["volume_mae_ml"]["mean"] == pytest.approx(values.abs_volume_error_ml.mean())
    diff = values.predicted_ml - values.reference_ml
    assert nnunet["bland_altman_ml"]["bias"] == pytest.approx(diff.mean())
    assert nnunet["bland_altman_ml"]["loa_high"] == pytest.approx(diff.mean() + 1.96 * diff.std(ddof=1))
    half = stats.t.ppf(0.975, 5) * diff.std(ddof=1) * np.sqrt(3 / 6)  # 6 cases: the limit's CI half-width
    assert nnunet["bland_altman_ml"]["loa_high_ci_high"] == pytest.approx(nnunet["bland_altman_ml"]["loa_high"] + half)
    evans_diff = values.evans_predicted - values.evans_reference
    assert nnunet["bland_altman_evans"]["n"] == 6 and nnunet["bland_altman_evans"]["bias"] == pytest.approx(
        evans_diff.mean()
    )
    assert "bland_altman_evans" not in summary["structures"]["left lateral ventricle"]["nnunet"]
    # SynthSeg's error grows with the ventricles (eroded only in the three largest): a proportional bias
    synthseg_ba = summary["structures"][WHOLE]["synthseg"]["bland_altman_ml"]
    assert synthseg_ba["slope"] < 0 and synthseg_ba["slope_ci_high"] < 0 and synthseg_ba["proportional_bias"]
    # SynthSeg fails on the three largest ventricles: every one of its volumes there is too small
    synthseg = whole[whole.method == "synthseg"].sort_values("reference_ml")
    assert (synthseg.volume_error_ml.iloc[-3:] < 0).all() and (synthseg.dice.iloc[:3] == 1).all()
    compared = {(c["metric"], c["method"]) for c in summary["comparisons"] if c["structure"] == WHOLE}
    assert ("dice", "nnunet") in compared and ("dice", "binary") in compared
    assert all(c["baseline"] == "synthseg" for c in summary["comparisons"])
    dice_binary = next(
        c
        for c in summary["comparisons"]
        if c["structure"] == WHOLE and c["metric"] == "dice" and c["method"] == "binary"
    )
    assert dice_binary["p_holm"] >= dice_binary["p_value"] and dice_binary["ci_low"] <= dice_binary["ci_high"]
    assert summary["provenance"]["command"] == "nph evaluate reference=R"
    assert {"nph", "torch", "monai", "numpy", "python"} <= set(summary["provenance"]["versions"])


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("link", "script") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs.get("href") or attrs.get("src"))
        if tag == "table":
            self._table = attrs["id"]
            self.tables[self._table] = []
        if tag == "tr" and self._table:
            self.tables[self._table].append([])
        if tag == "td":
            self._cell = []

    def handle_data(self, data) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag) -> None:
        if tag == "td" and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        if tag == "table":
            self._table = None


def test_html_is_self_contained_and_its_numbers_are_summary_json(result) -> None:
    _, _, paths = result
    parser = _Collector()
    parser.feed(paths.html.read_text())
    assert parser.links == []  # nothing fetched from elsewhere
    assert len(parser.images) == 4 + 3 * 3  # four plots + best/median/worst overlays of three methods
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels[..., :3].std() > 0.05
    summary = json.loads(paths.summary.read_text())
    rows = [r for r in parser.tables["summary-ventricles"] if r]
    assert rows == summary_table(summary)
    agreement = [r for r in parser.tables["bland-altman-ventricles"] if r]
    assert agreement == bland_altman_table(summary) and [r[:2] for r in agreement[:2]] == [
        ["nnunet", "volume (mL)"],
        ["nnunet", "Evans index"],
    ]
    nnunet = dict(zip(SUMMARY_HEADER, next(r for r in rows if r[0] == "nnunet"), strict=True))
    entry = summary["structures"][WHOLE]["nnunet"]
    assert float(nnunet["Dice mean"]) == pytest.approx(entry["metrics"]["dice"]["mean"], rel=1e-3)
    assert float(nnunet["volume MAE (mL)"]) == pytest.approx(entry["volume_mae_ml"]["mean"], rel=1e-3)
    assert nnunet["missing"] == "1" and fmt(float("nan")) == "n/a"
    markdown = paths.markdown.read_text()
    assert "HD95 = ASSD = the diagonal of the reference's field of view" in markdown
    assert "nph evaluate reference=R" in markdown and "| nnunet | 6 | 1 |" in markdown
    for name in ("box_plots", "bland_altman", "volume_scatter", "dice_vs_volume", "overlay_nnunet_worst"):
        assert f"(figures/{name}.png)" in markdown and (paths.root / "figures" / f"{name}.png").is_file()


def test_figures_show_what_they_claim(result) -> None:
    _, per_case, _ = result
    whole = per_case[per_case.structure == WHOLE]
    scatter = figs.volume_scatter_figure(whole)
    ax = scatter.axes[0]
    for collection, method in zip(ax.collections, ("nnunet", "synthseg", "binary"), strict=True):
        rows = whole[whole.method == method]
        assert np.allclose(collection.get_offsets(), rows[["reference_ml", "predicted_ml"]].to_numpy())
    figs.png_bytes(scatter)
    dice_fig = figs.dice_vs_volume_figure(whole)
    line = dice_fig.axes[0].lines[1]  # synthseg
    assert line.get_label() == "synthseg" and np.all(np.diff(line.get_xdata()) >= 0)
    figs.png_bytes(dice_fig)
    ba = figs.bland_altman_figure(whole)
    rows = whole[whole.method == "nnunet"]
    assert ba.axes[0].lines[0].get_ydata()[0] == pytest.approx((rows.predicted_ml - rows.reference_ml).mean())
    evans_axes = ba.axes[3]  # second row (Evans index), first method
    assert evans_axes.get_title().startswith("nnunet: Evans index")
    assert evans_axes.lines[0].get_ydata()[0] == pytest.approx((rows.evans_predicted - rows.evans_reference).mean())
    assert len(evans_axes.patches) == 3  # CI bands of the bias and of both limits
    figs.png_bytes(ba)
    picks = figs.pick_cases(whole, "nnunet")
    ranked = whole[whole.method == "nnunet"].sort_values("dice")
    assert picks["worst"] == ranked.case_id.iloc[0] and ranked[ranked.case_id == picks["best"]].dice.item() == 1.0


def test_overlay_draws_both_contours_on_the_centroid_slices() -> None:
    ref = np.zeros((20, 20, 20), bool)
    ref[5:12, 6:14, 8:12] = True
    pred = ndimage.binary_dilation(ref)
    figure = figs.overlay_figure(ref.astype(float), ref, pred, "t", (1.0, 1.0, 2.0))
    assert [ax.get_title() for ax in figure.axes] == ["axial", "coronal"]
    assert all(len(ax.collections) == 2 for ax in figure.axes)  # reference and prediction contours
    assert figure.axes[1].images[0].get_array().shape == (20, 20)
    figs.png_bytes(figure)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (CI installs it: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(result, tmp_path) -> None:
    _, _, paths = result
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1200,4000",
            paths.html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    # a rendered report: text, tables and the first figures cover a good part of the page
    assert (pixels[..., :3].mean(axis=2) < 0.9).mean() > 0.02


def test_evans_index_of_the_reference_is_the_manifests_in_every_method_row(benchmark_inputs, result) -> None:
    _, per_case, _ = result
    manifest = pd.read_csv(benchmark_inputs.reference / "manifest.csv", dtype={"case_id": str}).set_index("case_id")
    whole = per_case[per_case.structure == WHOLE]
    for case, rows in whole.groupby("case_id"):
        assert len(rows) == 3 and rows.evans_reference.nunique() == 1
        assert rows.evans_reference.iloc[0] == pytest.approx(manifest.loc[case, "evans_index"])
        assert rows.evans_predicted.notna().all()  # the binary method is measured over the reference's skull
    missing = _row(per_case, sorted(benchmark_inputs.ref_ids)[3], "nnunet")
    assert missing.evans_predicted == 0 and missing.abs_evans_error == pytest.approx(missing.evans_reference)
    exact = whole[(whole.method == "nnunet") & (whole.dice == 1)]
    assert len(exact) == 2 and (exact.evans_predicted == exact.evans_reference).all()
