"""Conditioning fidelity: correlation, error, per-bin means and the extrapolation range."""

from __future__ import annotations

import numpy as np
import pytest

from nph.evaluation.fidelity import conditioning_fidelity


def test_perfect_and_biased_conditioning() -> None:
    requested = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4])
    perfect = conditioning_fidelity(requested, requested)
    assert perfect["pearson_r"] == pytest.approx(1.0) and perfect["mae"] == 0.0 and perfect["n"] == 13
    biased = conditioning_fidelity(requested, requested * 0.5)
    assert biased["pearson_r"] == pytest.approx(1.0)
    assert biased["mae"] == pytest.approx(np.mean(requested * 0.5)) and biased["bias"] < 0
    # bins over [0, 1]: .1, .2 | .3, .4 | .6, .7 | .8, .9, 1.0 (the last bin is closed)
    assert [b["n"] for b in biased["bins"]] == [2, 2, 2, 3]
    assert biased["bins"][3]["mean_requested"] == pytest.approx(0.9)
    assert biased["bins"][3]["mean_realised"] == pytest.approx(0.45)
    beyond = biased["extrapolation"]
    assert beyond["n"] == 4 and beyond["mean_requested"] == pytest.approx(1.25)
    assert beyond["mean_realised"] == pytest.approx(0.625) and beyond["pearson_r"] == pytest.approx(1.0)


def test_saturating_model_and_dropped_pairs() -> None:
    requested = np.array([0.2, 0.6, 1.0, 1.2, 1.5, 2.0, np.nan])
    realised = np.array([0.2, 0.6, 1.0, 1.0, 1.0, 1.0, 0.5])  # cannot go beyond the training range
    result = conditioning_fidelity(requested, realised)
    assert result["n_dropped"] == 1 and result["n"] == 6
    assert result["extrapolation"]["pearson_r"] is None  # flat response: correlation undefined
    assert result["extrapolation"]["mae"] == pytest.approx(np.mean([0.2, 0.5, 1.0]))
    with pytest.raises(ValueError, match="one length"):
        conditioning_fidelity([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="increasing"):
        conditioning_fidelity([0.1], [0.1], bins=[0.5, 0.2])
