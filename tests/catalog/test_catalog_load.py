"""The catalogue and the dashboards under a growing catalogue: the number of SQL queries of
a request does not grow with the number of datasets, every list is a page, and text search
is served by the trigram index on PostgreSQL. (Speed itself is measured in bench/portal.py.)"""
from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]

ADDED = 27  # the world's 4 datasets (3 of them the steward's bureau's) become 31
PAGES = {
    "applicant": ["/"],
    "steward": ["/", "/events/"],
    "data_holder": ["/"],
    "auditor": ["/", "/events/"],
    "admin": ["/"],
}
API = ["/api/datasets/", "/api/datasets/?q=管线", "/api/datasets/?data_class=conditional&theme=other"]


def queries(w, client) -> dict[tuple[str, str], int]:
    """The SQL queries of each page for each role, and of the catalogue API."""
    counts = {}
    for role, paths in PAGES.items():
        client.force_login(w.by_role[role])
        for path in paths:
            with CaptureQueriesContext(connection) as ctx:
                status = client.get(path).status_code
            counts[role, path] = len(ctx) if status == 200 else status
    api = api_client(w.applicant)
    for path in API:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(path).status_code == 200
        counts["api", path] = len(ctx)
    return counts


def grow(w, n: int):
    """n more datasets of the steward's bureau, each held by the district and applied for."""
    from access import actions as access_actions
    from catalog import actions as catalog_actions

    for i in range(n):
        data_class = ("conditional", "compute_only")[i % 2]
        dataset = catalog_actions.register_dataset(
            actor=w.steward, slug=f"more-{i:03d}", title=f"更多管线 {i}", data_class=data_class,
            district="浦东新区", keywords=["管线"], holders=[w.district],
        )
        access_actions.submit_application(actor=w.applicant, dataset=dataset, purpose=f"pipe study number {i}")


def test_queries_per_request_do_not_grow_with_the_catalogue_and_lists_are_pages(world, client):
    client.force_login(world.steward)
    client.get("/")  # the first ledger status creates the anchoring state's row: not per request
    small = queries(world, client)
    assert all(isinstance(v, int) and v < 40 for v in small.values()), small
    grow(world, ADDED)
    large = queries(world, client)
    assert large == small
    # The lists are pages: 31 datasets, 25 rows and a pager; the second page has the rest.
    client.force_login(world.applicant)
    html = client.get("/").content.decode()
    catalog = html.split('data-testid="catalog"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr><td><a href=\"/datasets/", catalog)) == 25
    assert 'data-testid="pager"' in html and "?page=2" in html
    catalog = client.get("/?page=2").content.decode().split('data-testid="catalog"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr><td><a href=\"/datasets/", catalog)) == 31 - 25
    client.force_login(world.steward)
    html = client.get("/?queue_page=2").content.decode()  # the queue pages on its own
    queue = html.split('data-testid="review-queue"', 1)[1].split("</table>", 1)[0]
    assert queue.count("<tr><td>") == ADDED + 3 - 25  # 30 waiting, 25 on page 1
    assert client.get("/?page=x&queue_page=999").status_code == 200  # bad numbers: first / last page
    results = api_client(world.applicant).get("/api/datasets/").json()
    assert results["count"] == 31 and len(results["results"]) <= 50


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigram index is PostgreSQL's")
def test_text_search_uses_the_trigram_index(world):
    from discovery import metadata
    from discovery.query import CatalogFilters

    qs = metadata.search(metadata.catalog_queryset(), CatalogFilters(q="pipe管线"))
    with connection.cursor() as cursor:
        # A four-row table is scanned otherwise, or walked in slug order by its unique index; a
        # GIN index is read by a bitmap scan, which stays allowed.
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_indexscan = off")
        try:
            plan = qs.explain()
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_indexscan")
    assert "catalog_dataset_text_trgm" in plan, plan
