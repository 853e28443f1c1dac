"""Names gone (issue 14): an attacker with every released byte looks for the raw corpus's
person names (owners, occupants, and the contacts that exist only inside its notes, 方 and
于 among them) and finds none, in any output file or on the open dataset page; and the
report's redaction counts are what the files hold."""
from __future__ import annotations

import re
from html import unescape

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import add_release
from corpora.generator import district_units
from corpora.store import write_corpus
from names_support import corpus_names, corpus_places, leaked, names_in, output_strings
from releases.pii import PLACEHOLDERS
from releases.pipeline import OUTPUT_FORMATS, ReleaseSpec, run_release

pytestmark = pytest.mark.release

ROOMS = 20_000


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("names")
    corpus = district_units(seed=7, rooms=ROOMS)
    write_corpus([corpus], tmp / "corpus.parquet")
    report = run_release(tmp / "corpus.parquet", ReleaseSpec(outputs=OUTPUT_FORMATS), b"n" * 32, tmp / "out")
    return corpus, report, tmp / "out", output_strings(tmp / "out")


def test_no_person_name_of_the_corpus_reaches_any_output_file(released):
    corpus, _, out, files = released
    names = corpus_names(corpus)
    assert len(names["owner_name"]) > 10_000 and len(names["notes"]) > 1_500
    assert sum(n[0] in "方于" for n in names["notes"]) > 10  # the surnames the old cue rules missed
    found = leaked(corpus, out, files)
    assert sorted(found) == ["release.geojson", "release.gpkg", "release.parquet", "report.json"]
    assert found == {file: {source: [] for source in names} for file in found}


def test_the_search_would_have_found_them(released):
    """The attack is not blind: in the raw notes it finds every contact it looks for, and
    in the released files it finds the names that are place names too, until those are cut."""
    corpus, _, _, files = released
    names = corpus_names(corpus)
    raw_notes = pc.unique(pc.drop_null(corpus.column("notes"))).to_pylist()
    assert names_in(raw_notes, names["notes"]) == names["notes"]
    every = set().union(*names.values())
    strings = set().union(*files.values())
    inside_places = names_in(strings, every) - names_in(strings, every, corpus_places(corpus))
    assert inside_places <= {"田林"}  # a neighbourhood, 田林街道: no mention of a person


def test_the_report_counts_what_the_files_hold(released):
    corpus, report, out, _ = released
    counts = report["desensitized"]["pii_redacted"]
    assert set(counts) == set(PLACEHOLDERS)
    notes = pc.drop_null(pq.read_table(out / "release.parquet").column("notes"))
    for placeholder in set(PLACEHOLDERS.values()):
        in_file = pc.sum(pc.count_substring(notes, placeholder)).as_py()
        counted = sum(n for c, n in counts.items() if PLACEHOLDERS[c] == placeholder)
        assert in_file == counted, placeholder
    assert counts["name"] > 1_000 and counts["phone"] > 1_000 and counts["id_number"] > 500  # the contacts
    gazetteer = report["desensitized"]["gazetteer"]
    assert gazetteer["columns"] == ["owner_name", "owner_id_number", "owner_phone", "occupant_name",
                                    "occupant_id_number", "address", "building_id"]  # the dropped columns
    assert gazetteer["names"] >= len(corpus_names(corpus)["owner_name"]) and gazetteer["phones_and_id_numbers"] > 40_000
    assert gazetteer["place_columns"] == ["district", "neighbourhood"] and gazetteer["places"] > 0


@pytest.mark.django_db
def test_the_open_dataset_page_sample_shows_no_name(world, client):
    """The page a logged-in user sees for a published open release: its sample rows hold
    redacted contact notes, and no name of the corpus."""
    from django.conf import settings

    from releases.actions import publish_release

    w = add_release(world, seed=13)  # its first released rows carry four contact notes
    publish_release(actor=w.steward, release=w.release)
    client.force_login(w.applicant)
    html = client.get(f"/datasets/{w.roads.slug}/").content.decode()
    section = html.split('data-testid="sample-rows"', 1)[1].split("</table>", 1)[0]
    cells = [unescape(c).strip() for c in re.findall(r"<td>(.*?)</td>", section, re.S)]
    corpus = pq.read_table(settings.STATE_DIR / w.corpus.path)
    names = set().union(*corpus_names(corpus).values())
    # The page shows the release's first rows as written: their redacted names, all of them
    # (how many of the first rows carry a note depends on the release's own random key).
    from releases.actions import release_dir
    from releases.previews import release_sample

    first = release_sample(release_dir(w.release) / w.release.outputs["geoparquet"]["path"])
    written = sum("[姓名]" in str(v) for column in first.columns for v in column.to_pylist()) if first else 0
    assert sum("[姓名]" in c for c in cells) == written >= 1, cells
    assert names_in(cells, names, corpus_places(corpus)) == set()
    assert sorted(n for n in names if len(n) >= 3 and n in html) == []
