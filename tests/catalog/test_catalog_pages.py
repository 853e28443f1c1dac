"""Dataset pages per class: metadata for every logged-in user, real sample rows and a map
only from a published open release, and otherwise the schema with synthetic mock rows, so
that a compute-only page never shows a real unit."""
from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from catalog_support import add_corpus, describe
from conftest import add_release

pytestmark = [pytest.mark.access, pytest.mark.django_db]

MOCK = "合成示例数据"


def page(client, user, slug):
    client.force_login(user)
    response = client.get(f"/datasets/{slug}/")
    assert response.status_code == 200
    return response.content.decode()


def corpus_table(corpus):
    from django.conf import settings

    return pq.read_table(Path(settings.STATE_DIR) / corpus.path).drop(["geometry"]).to_pydict()


def sample_cells(html: str) -> list[str]:
    section = html.split('data-testid="sample-rows"', 1)[1].split("</table>", 1)[0]
    return [unescape(c).strip() for c in re.findall(r"<td>(.*?)</td>", section, re.S)]


def real_values(corpus) -> dict[str, set[str]]:
    """What a leak would look like: the corpus's identifiers and personal values."""
    from corpora.generator import HARMLESS_NOTES

    units = corpus_table(corpus)
    values = lambda name: {v for v in units[name] if v}  # noqa: E731
    names = values("owner_name") | values("occupant_name")
    return {
        "ids": values("unit_id") | values("building_id"),
        "long_names": {n for n in names if len(n) >= 3},
        "names": names,
        "numbers": values("owner_id_number") | values("occupant_id_number") | values("owner_phone"),
        "addresses": values("address"),
        "notes": values("notes") - set(HARMLESS_NOTES.to_pylist()),
    }


def test_a_compute_only_page_never_shows_a_real_unit(world, client):
    world.rooms_corpus = add_corpus(world, world.rooms, seed=7, rooms=800)
    leaks = real_values(world.rooms_corpus)
    assert len(leaks["ids"]) > 800 and len(leaks["names"]) > 300 and len(leaks["long_names"]) > 100
    for user in [world.applicant, world.steward, world.auditor, world.data_holder, world.admin]:
        html = page(client, user, world.rooms.slug)
        assert MOCK in html and 'data-testid="sample-map"' not in html
        for kind in ("ids", "long_names", "numbers", "addresses", "notes"):
            shown = sorted(v for v in leaks[kind] if v in html)
            assert shown == [], f"{kind} of the real corpus on the page: {shown[:3]}"
        cells = sample_cells(html)
        assert len(cells) > 8 and not set(cells) & leaks["names"]  # no real name in any sample cell
        assert "SYN-R0001" in cells and "张三" in cells


def test_the_compute_only_page_shows_the_schema_and_says_why(world, client):
    add_corpus(world, world.rooms, seed=7)
    html = page(client, world.applicant, world.rooms.slug)
    for field in ("unit_id", "monthly_rent", "owner_id_number", "grid_code"):
        assert f"<code>{field}</code>" in html
    assert "可用不可见数据从不离开平台" in html
    assert 'data-testid="policy-form"' not in html  # an applicant reads, never manages


def test_an_open_page_shows_real_rows_of_its_published_release_and_a_map(release_world, client):
    from releases import actions as release_actions
    from releases.actions import release_dir

    w = release_world
    published = pq.read_table(release_dir(w.release) / w.release.outputs["geoparquet"]["path"])
    first_id = published.column("unit_id")[0].as_py()

    html = page(client, w.applicant, w.roads.slug)  # built, not yet published: a mock only
    assert MOCK in html and first_id not in html

    release_actions.publish_release(actor=w.steward, release=w.release)
    html = page(client, w.applicant, w.roads.slug)
    cells = sample_cells(html)
    assert first_id in cells and MOCK not in html
    assert f"#{w.release.pk}" in html and 'data-testid="sample-map"' in html
    assert f'data-map-src="/releases/{w.release.pk}/map.geojson"' in html  # the map of the release
    # Attribute columns only: the geometry is named by its type, never dumped.
    assert not re.search(r"(POLYGON|LINESTRING) ?\(", html)
    assert "Polygon" in cells or "LineString" in cells


def test_a_conditional_page_shows_mock_rows_and_the_covered_cells(world, client):
    corpus = add_corpus(world, world.pipes, seed=6)
    leaks = real_values(corpus)
    html = page(client, world.applicant, world.pipes.slug)
    assert MOCK in html and "有条件开放数据须经许可" in html
    assert 'data-testid="sample-map"' in html  # where the data lies, to the grid cell
    assert sorted(v for v in leaks["ids"] | leaks["long_names"] if v in html) == []
    from discovery.metadata import public_extent

    assert corpus.cells[0] in html and str(public_extent(corpus.extent, 16)[0]) in html
    assert str(corpus.extent[0]) not in html  # the corpus's own bounds are true positions


def test_metadata_on_the_page(release_world, client):
    w = describe(release_world)
    html = page(client, w.data_holder, w.roads.slug)
    assert "Road centre lines" in html and "黄浦区" in html and "roads" in html
    assert 'data-testid="theme">交通<' in html
    assert str(w.corpus.units) in html and "v1" in html
    assert 'href="/api/datasets/huangpu-roads/dcat/"' in html


def test_pages_for_every_role_and_management_for_the_owning_steward(world, client):
    for user in world.by_role.values():
        html = page(client, user, world.pipes.slug)
        assert ('data-testid="policy-form"' in html) == (user == world.steward)
        assert MOCK in html
    client.force_login(world.other_steward)
    assert 'data-testid="policy-form"' not in client.get(f"/datasets/{world.pipes.slug}/").content.decode()
    assert client.post(f"/datasets/{world.pipes.slug}/", {"do": "save"}).status_code == 403
    client.logout()  # anonymous visitors read open datasets' pages only: the others are absent
    assert client.get(f"/datasets/{world.pipes.slug}/").status_code == 404
    assert client.get(f"/datasets/{world.roads.slug}/").status_code == 200
    client.force_login(world.applicant)
    assert client.get("/datasets/no-such-dataset/").status_code == 404


def test_the_applicant_catalogue_links_to_the_pages(world, client):
    client.force_login(world.applicant)
    assert f'href="/datasets/{world.rooms.slug}/"' in client.get("/").content.decode()
