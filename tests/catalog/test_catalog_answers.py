"""The catalogue's kept answers (discovery.answers): the dataset list and the DCAT pages are
computed once per audience and reused, and no reader ever gets an answer from before a change
it can see, nor one made for another audience.

The attacker here is an anonymous reader of the open catalogue who asks for the same pages
logged-in members just read: a restricted dataset must never reach them from a kept answer."""
from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from catalog_support import add_corpus, describe
from conftest import add_release, api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]


def titles(client, path="/api/datasets/"):
    answer = client.get(path)
    assert answer.status_code == 200, answer.content
    return {d["slug"]: d["title"] for d in answer.json()["results"]}


def dcat_ids(client, path="/api/datasets/dcat/"):
    answer = client.get(path, HTTP_ACCEPT="application/ld+json")
    assert answer.status_code == 200, answer.content
    return sorted(d["dct:identifier"] for d in answer.json()["dcat:dataset"])


def test_a_kept_list_is_reused_and_costs_no_catalogue_query(world):
    api = api_client(world.applicant)
    first = titles(api)
    with CaptureQueriesContext(connection) as ctx:
        again = titles(api)
    assert again == first
    # The token's user and the generation: nothing of the catalogue itself.
    assert len(ctx) == 2, [q["sql"] for q in ctx.captured_queries]
    with CaptureQueriesContext(connection) as ctx:
        titles(api, "/api/datasets/?q=roads")  # another query string is another answer
    assert len(ctx) > 2


def test_every_change_to_what_a_record_shows_is_seen_at_once(world):
    from accounts.models import Organisation
    from catalog.actions import register_dataset, update_dataset_metadata

    api = api_client(world.applicant)
    before = api.get("/api/datasets/").json()["results"]
    assert {d["slug"] for d in before} == {world.rooms.slug, world.roads.slug, world.pipes.slug, world.foreign.slug}

    update_dataset_metadata(actor=world.steward, dataset=world.roads, title="道路中心线（新）")
    assert titles(api)[world.roads.slug] == "道路中心线（新）"

    register_dataset(actor=world.steward, slug="wells", title="水井", data_class="open")
    assert "wells" in titles(api)

    bureau = Organisation.objects.get(pk=world.roads.owner_id)  # renamed in the admin, as a person would
    bureau.name = "上海市规划资源局（改名）"
    bureau.save()
    owners = {d["slug"]: d["owner_name"]["zh"] for d in api.get("/api/datasets/").json()["results"]}
    assert owners[world.roads.slug] == "上海市规划资源局（改名）"

    world.pipes.holders.add(world.district)  # the holders' table changes without the dataset's row
    holders = {d["slug"]: d["holders"] for d in api.get("/api/datasets/").json()["results"]}
    assert world.district.code in holders[world.pipes.slug]

    versions = {d["slug"]: d["latest_version"] for d in api.get("/api/datasets/").json()["results"]}
    assert versions[world.rooms.slug] is None
    add_corpus(world, world.rooms, seed=5)  # a new corpus version, as the ingest task records it
    versions = {d["slug"]: d["latest_version"] for d in api.get("/api/datasets/").json()["results"]}
    assert versions[world.rooms.slug]["version"] == 1


def test_a_release_published_after_a_dcat_page_was_kept_is_in_the_next_page(world):
    from releases.actions import publish_release

    w = describe(add_release(world))
    api = api_client(w.applicant)

    def distributions():
        document = api.get("/api/datasets/dcat/", HTTP_ACCEPT="application/ld+json").json()
        roads = next(d for d in document["dcat:dataset"] if d["dct:identifier"] == w.roads.slug)
        return roads.get("dcat:distribution", [])

    assert distributions() == []
    publish_release(actor=w.steward, release=w.release)
    assert distributions()


@pytest.mark.parametrize("first", ["member", "anonymous"])
def test_an_anonymous_reader_never_gets_the_members_catalogue(world, first):
    member, anonymous = api_client(world.applicant), api_client()
    open_ones = sorted(d.slug for d in (world.rooms, world.roads, world.pipes, world.foreign) if d.data_class == "open")
    assert open_ones and len(open_ones) < 4
    for path in ("/api/datasets/dcat/", "/api/datasets/dcat/?theme=other", "/api/datasets/dcat/?page=1"):
        if first == "member":
            assert len(dcat_ids(member, path)) >= len(dcat_ids(anonymous, path))
            assert set(dcat_ids(anonymous, path)) <= set(open_ones)
        else:
            assert set(dcat_ids(anonymous, path)) <= set(open_ones)
            dcat_ids(member, path)
        assert set(dcat_ids(anonymous, path)) <= set(open_ones)
    restricted = next(d for d in (world.rooms, world.roads, world.pipes, world.foreign) if d.data_class != "open")
    assert member.get(f"/api/datasets/{restricted.slug}/dcat/").status_code == 200
    assert anonymous.get(f"/api/datasets/{restricted.slug}/dcat/").status_code == 404


def test_an_answer_kept_inside_a_rolled_back_change_is_never_served(world):
    """The generation is a fresh random number per change: a counter would hand the rolled-back
    change's number, and the answer kept under it, to the next change."""
    from catalog.actions import update_dataset_metadata
    from catalog.models import Dataset

    class RolledBack(Exception):
        pass

    api = api_client(world.applicant)
    original = titles(api)[world.roads.slug]
    with pytest.raises(RolledBack), transaction.atomic():
        roads = Dataset.objects.get(pk=world.roads.pk)
        roads.title = "从未发生"
        roads.save()
        assert titles(api)[world.roads.slug] == "从未发生"  # kept, inside the transaction
        raise RolledBack
    assert titles(api)[world.roads.slug] == original
    world.roads.refresh_from_db()
    update_dataset_metadata(actor=world.steward, dataset=world.roads, title="真的改了")
    assert titles(api)[world.roads.slug] == "真的改了"


def test_the_browsable_api_page_is_rendered_for_each_reader(world):
    """Its HTML names the reader and carries their CSRF token: it is never kept."""
    from django.test import Client

    pages = {}
    for user in (world.applicant, world.steward):
        client = Client()
        client.force_login(user)
        answer = client.get("/api/datasets/", HTTP_ACCEPT="text/html")
        assert answer.status_code == 200 and answer["Content-Type"].startswith("text/html")
        pages[user.username] = answer.content.decode()
    assert world.applicant.username in pages[world.applicant.username]
    assert world.steward.username in pages[world.steward.username]
    assert world.applicant.username not in pages[world.steward.username].replace(world.steward.username, "")
