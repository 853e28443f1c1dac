"""The landmark attacker on the release's own layout: k true landmarks near a target and a
fitted shift. The residuals a release report prints (``report["attacks"]["landmarks"]``)
must be those an attacker written apart from the pipeline measures on the release's units,
and they are smaller than the uniform-point figure that the shift alone gives, because real
units cluster."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from relocation_support import Metres, basemap, landmark_attack, release, true_room_geometry

pytestmark = pytest.mark.release

TRIALS = 60


def layout(released):
    """Distinct true and released positions (centroids, metres) of the released rooms."""
    metres = Metres(basemap()[0])
    truth = true_room_geometry(released)
    _, first = np.unique(shapely.to_wkb(truth), return_index=True)
    first.sort()
    seen = shapely.from_wkb(released.column("geometry").to_numpy(zero_copy_only=False))[first]
    return (shapely.get_coordinates(shapely.centroid(metres(truth[first]))),
            shapely.get_coordinates(shapely.centroid(metres(seen))))


@pytest.mark.parametrize("shift", [{"mode": "smooth", "max_offset_m": 100.0, "wavelength_m": 4000.0},
                                   {"mode": "cell"}], ids=["smooth", "cell"])
def test_report_prints_the_landmark_residuals_an_attacker_measures_on_the_layout(shift):
    from releases.pipeline import build_shift, subkey
    from releases.shift import attack_residuals

    report, released = release(shift=shift)
    printed = {int(k): v for k, v in report["attacks"]["landmarks"]["residual_m"].items()}
    true, seen = layout(released)
    ours = {k: landmark_attack(true, seen, k, trials=TRIALS, seed=k) for k in (1, 5, 20)}
    print(shift["mode"], "landmark residuals (m): independent", ours, "report", printed)
    for k in (1, 5, 20):  # medians over random discs: agree to sampling error
        assert printed[k] == pytest.approx(ours[k], rel=0.5, abs=0.5)
    mode = build_shift(shift, subkey(bytes(range(32)), "shift"))
    lon, lat = shapely.get_coordinates(shapely.centroid(basemap()[0])).mean(axis=0)
    uniform = attack_residuals(mode, centre_lon=lon, centre_lat=lat)
    print("on uniform points:", uniform)
    if shift["mode"] == "smooth":
        assert printed[20] < printed[5] < printed[1]
        assert printed[5] < uniform[5] and printed[20] < uniform[20]  # clustered units give more away


def test_a_public_shift_needs_no_landmark():
    report, _ = release(shift={"mode": "gcj02"})
    residual = report["attacks"]["landmarks"]["residual_m"]
    assert max(residual.values()) < 1.0  # inverted by its published formula, to the rounding
    assert report["attacks"]["relocation"]["within_1m"] > 0.95
