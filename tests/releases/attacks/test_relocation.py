"""The basemap attacker against whole releases: a person with the release files and a web
map's true building footprints puts the released units back. The figure each release report
prints (``report["attacks"]["relocation"]``) must be the figure an attacker written apart
from the pipeline measures on the same release."""
from __future__ import annotations

import pytest
import shapely

from relocation_support import (
    Metres,
    basemap,
    basemap_attack,
    release,
    true_floor_geometry,
    true_room_geometry,
    within,
)

pytestmark = pytest.mark.release

TOLERANCE = 0.04  # the two attackers differ in their details: a building is about 1 % of the rooms


def measured(report, released, truth):
    """The independent attacker's shares within 1 m and 5 m on a release, and the report's."""
    from releases.shift import ShiftMode

    footprints, _ = basemap()
    metres = Metres(footprints)
    geoms = metres(shapely.from_wkb(released.column("geometry").to_numpy(zero_copy_only=False)))
    published = report["shift"]["mode"]  # the report names the mode and its parameters, not the key
    cell_of = None
    if published["mode"] == "cell_rigid":
        grid = ShiftMode.from_state({**{k: v for k, v in published.items() if k != "key_id"}, "key": "00" * 32})
        cell_of = lambda xy: grid.cell_of(*metres.degrees(xy))
    estimate = basemap_attack(geoms, released.column("building_id").to_numpy(zero_copy_only=False),
                              metres(footprints), published["max_offset_m"], cell_of)
    true = shapely.get_coordinates(shapely.centroid(metres(truth)))
    printed = report["attacks"]["relocation"]
    return (within(estimate, true, 1.0), within(estimate, true, 5.0)), (printed["within_1m"], printed["within_5m"])


def test_a_web_map_puts_the_default_release_back_to_the_metre_as_its_report_says():
    report, released = release()
    ours, printed = measured(report, released, true_room_geometry(released))
    print("default release, within 1 m / 5 m: independent", ours, "report", printed)
    assert ours[0] > 0.9 and ours[1] > 0.95  # the shift protects nothing against a basemap
    assert printed == pytest.approx(ours, abs=TOLERANCE)
    relocation = report["attacks"]["relocation"]
    assert relocation["units"] == released.num_rows  # the whole district is one batch
    assert relocation["buildings"]["share_matched"] > 0.9
    assert relocation["by_kind"]["room"]["within_1m"] == relocation["within_1m"]


def test_the_piecewise_rigid_shift_falls_to_the_basemap_as_its_report_says():
    report, released = release(shift={"mode": "cell"})
    ours, printed = measured(report, released, true_room_geometry(released))
    print("cell release, within 1 m / 5 m: independent", ours, "report", printed)
    assert ours[0] > 0.9  # rigid cells keep shapes exactly
    assert printed[0] >= ours[0] - TOLERANCE  # the report never understates the attack
    assert printed == pytest.approx(ours, abs=TOLERANCE)


def test_floors_are_put_back_too_as_the_report_says():
    report, released = release(lightweight={"level_of_detail": "floor"})
    rooms = release()[1]
    ours, printed = measured(report, released, true_floor_geometry(released, rooms))
    print("floor release, within 1 m / 5 m: independent", ours, "report", printed)
    assert report["attacks"]["relocation"]["level_of_detail"] == "floor"
    assert printed[0] >= ours[0] - TOLERANCE  # the report never understates the attack
    assert printed == pytest.approx(ours, abs=0.05)  # ~300 floors: a building's floors are 1 %
    assert ours[0] > 0.9  # a floor outline is a footprint


def test_grid_cells_are_not_put_back_to_the_metre():
    report, released = release(lightweight={"level_of_detail": "grid"})
    relocation = report["attacks"]["relocation"]
    print("grid release:", {k: relocation[k] for k in ("units", "within_1m", "within_5m", "median_error_m")})
    assert relocation["units"] == released.num_rows
    assert relocation["within_1m"] < 0.1 and relocation["median_error_m"] > 5.0


@pytest.mark.django_db
def test_the_release_page_says_in_plain_words_what_a_web_map_gives_away(release_world, client):
    relocation = release_world.release.report["attacks"]["relocation"]
    one, five = (f"{relocation[f'within_{m}m'] * 100:.1f}%" for m in (1, 5))
    client.force_login(release_world.steward)
    page = f"/releases/{release_world.release.pk}/"
    html = client.get(page).content.decode()
    assert f"有网络地图（公开的建筑轮廓）的人能把 {one} 的发布单元放回真实位置 1 米以内，{five} 放回 5 米以内" in html
    assert "任何保持形状的偏转都挡不住底图；保护来自泛化与脱密。" in html
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    html = client.get(page).content.decode()
    assert f"can put {one} of the released units back within 1 m of where they are, and {five} within 5 m" in html
    assert "No shape-preserving shift withstands a basemap" in html
    residuals = release_world.release.report["attacks"]["landmarks"]["residual_m"]
    assert f"k=1: {residuals['1']:.1f} m" in html
